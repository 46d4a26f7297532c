"""The metadata database as the deploy sees it: a fact asking one Airflow host whether
migrations are pending and what the admin user's password hash is, and the two operations
that act on the answer (the hash itself is made and checked on the control machine:
cluster/passwords.py).

The operations sit in every Airflow host's sequence, so pyinfra's ordering keeps every
service (re)start after them, but only the host named `on` asks and acts: one database
check and at most one migration per run.

The fact runs the helper `airflow-cluster-db status` (templates/usr/local/sbin/), which
never fails: before Airflow is installed or while the database is unreachable it answers
{"db": "unknown"}, and the deploy then migrates and sets the admin password.
"""

import hashlib
import json

import shlex

from pyinfra import host
from pyinfra.api import FactBase, MaskString, QuoteString, StringCommand, operation

from cluster.passwords import make_password_hash, password_hash_matches

HELPER = "/usr/local/sbin/airflow-cluster-db"
STATUS_MARKER = "AIRFLOW-CLUSTER-DB-STATUS "
UNKNOWN = {"db": "unknown", "conn_sha256": None, "admin_password_hash": None}


class AirflowDbStatus(FactBase):
    """{"db": "current" | "needed" | "unknown", "conn_sha256": sha256 of the configured
    sql_alchemy_conn or None, "admin_password_hash": the stored hash or None}."""

    def command(self, python, admin_user):
        # The helper runs under the venv's python: absent before the first install.
        return StringCommand(
            "if", "[", "-x", QuoteString(python), "]", "&&", "[", "-x", HELPER, "];",
            "then", HELPER, "status", QuoteString(admin_user), "2>/dev/null", "||", "true;", "fi",
        )

    def process(self, output):
        for line in reversed(output):
            if line.startswith(STATUS_MARKER):
                return {**UNKNOWN, **json.loads(line[len(STATUS_MARKER):])}
        return dict(UNKNOWN)

    @staticmethod
    def default():
        return dict(UNKNOWN)


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
        MaskString(shlex.quote(make_password_hash(password))),
    )
