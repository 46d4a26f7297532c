"""The two operations on the metadata database: `airflow db migrate` when it is due, and the
FAB admin user with the secrets file's password (the hash is made and checked on the control
machine: cluster/passwords.py). Both read facts.airflow_db.AirflowDbStatus.

The operations sit in every Airflow host's sequence (tasks/airflow.py), so pyinfra's
ordering keeps every service (re)start after them, but only the host named `on` asks and
acts: one database check and at most one migration per run.
"""

import hashlib
import shlex

from pyinfra import host
from pyinfra.api import HiddenValue, QuoteString, StringCommand, operation

from cluster.passwords import make_password_hash, password_hash_matches
from facts.airflow_db import HELPER, AirflowDbStatus

__all__ = ["HELPER", "admin_user", "conn_sha256", "migrated"]


def conn_sha256(sql_alchemy_conn: str) -> str:
    """What the status fact reports for a configured database URL."""
    return hashlib.sha256(sql_alchemy_conn.encode()).hexdigest()


@operation()
def migrated(on: str, python: str, admin_user: str, conn: str, reinstalled: bool):
    """`airflow db migrate` on host `on` when Airflow was just (re)installed, the configured
    database URL (`conn`) is not the one the database was last checked with, or migrations
    are pending."""
    if host.name != on:
        host.noop(f"{on} checks the database")
        return
    status = host.get_fact(AirflowDbStatus, python=python, admin_user=admin_user)
    if reinstalled or status["db"] != "current" or status["conn_sha256"] != conn_sha256(conn):
        yield StringCommand(HELPER, "migrate")
    else:
        host.noop("no migration pending")


@operation()
def admin_user(on: str, python: str, user: str, email: str, password: str):
    """The FAB admin `user` exists (created once) with `password`, set as a hash made here
    only when the stored hash was not made from it."""
    if host.name != on:
        host.noop(f"{on} checks the admin user")
        return
    status = host.get_fact(AirflowDbStatus, python=python, admin_user=user)
    if password_hash_matches(password, status["admin_password_hash"]):
        host.noop(f"admin user {user!r} has the secrets file's password")
        return
    yield StringCommand(
        HELPER,
        "set-admin",
        QuoteString(user),
        QuoteString(email),
        # A hash made here: the password itself never reaches the host.
        HiddenValue(shlex.quote(make_password_hash(password))),
    )
