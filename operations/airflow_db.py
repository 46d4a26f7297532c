"""The two operations on the metadata database: `airflow db migrate` when it is due, and the
FAB admin user with the secrets file's password (the hash is made and checked on the control
machine: cluster/passwords.py). Both read facts.airflow_db.AirflowDbStatus.

The operations sit in every Airflow host's sequence (tasks/airflow.py), so pyinfra's
ordering keeps every service (re)start after them, but only the host named `on` asks and
acts: one database check and at most one migration per run.
"""

import hashlib
import io
import weakref

from pyinfra import host
from pyinfra.api import FunctionCommand, QuoteString, StringCommand, operation

from cluster.passwords import make_password_hash, password_hash_matches
from facts.airflow_db import HELPER, AirflowDbStatus

from .airflow_upgrade import UpgradeError, migrate_with_schedulers_stopped
from .files import private_file

__all__ = ["HELPER", "admin_user", "conn_sha256", "migrated"]

# Where the admin password's hash waits for the helper, which deletes it (root-only: /run).
ADMIN_HASH_FILE = "/run/airflow-cluster-admin-hash"


# Host -> the status `migrated` read: `admin_user`, the next operation, reuses it instead of
# asking again (each answer imports Airflow on the host: ~5 s of every run, and of the serial
# part of a cold deploy). A migration leaves the admin's stored hash as it was (a fresh database
# has none before it and after it), so the answer holds after one too. pyinfra 3 caches no fact.
_STATUS_READ: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def conn_sha256(sql_alchemy_conn: str) -> str:
    """What the status fact reports for a configured database URL."""
    return hashlib.sha256(sql_alchemy_conn.encode()).hexdigest()


def _elsewhere(on: str | None, what: str) -> str:
    if on is None:
        return f"no API server or scheduler host in this run: {what} left as it is"
    return f"{on} checks {what}"


@operation()
def migrated(on: str | None, python: str, admin_user: str, conn: str, reinstalled: bool,
             upgrade: tuple[list[str], list[str]] | None = None):
    """`airflow db migrate` with `python` (the venv of the version to run) on host `on` when
    Airflow was just (re)installed, the configured database URL (`conn`) is not the one the
    database was last checked with, or migrations are pending; with it, or alone when only
    they are missing, Celery's result tables made and granted to the workers' role.

    `upgrade` = (scheduler hosts, their units) when the version in use changes: those are
    stopped first and, if the migration fails, started again on the old version
    (operations/airflow_upgrade.py)."""
    if host.name != on:
        host.noop(_elsewhere(on, "the database"))
        return
    _STATUS_READ.pop(host, None)  # none of an earlier run's
    if upgrade:
        yield FunctionCommand(_upgrade_migration, (python, *upgrade), {})
        return
    status = host.get_fact(AirflowDbStatus, python=python, admin_user=admin_user)
    _STATUS_READ[host] = (python, admin_user, status)
    if reinstalled or status["db"] != "current" or status["conn_sha256"] != conn_sha256(conn):
        # Then Celery's result tables, granted to the workers' role.
        yield StringCommand(python, HELPER, "migrate")
    elif not status["celery_results"]:
        yield StringCommand(python, HELPER, "celery-results")
    else:
        host.noop("no migration pending")


def _upgrade_migration(state, host, python, scheduler_names, units):
    schedulers = [state.inventory.get_host(name) for name in scheduler_names]
    try:
        migrate_with_schedulers_stopped(state, host, python, schedulers, units, say=host.log)
    except UpgradeError as error:
        host.log_styled(str(error), fg="red")
        return False
    return True


@operation()
def admin_user(on: str | None, python: str, user: str, email: str, password: str):
    """The FAB admin `user` exists (created once) with `password`, set as a hash made here
    only when the stored hash was not made from it."""
    if host.name != on:
        host.noop(_elsewhere(on, "the admin user"))
        return
    python_user_status = _STATUS_READ.pop(host, None)
    if python_user_status and python_user_status[:2] == (python, user):
        status = python_user_status[2]
    else:
        status = host.get_fact(AirflowDbStatus, python=python, admin_user=user)
    if password_hash_matches(password, status["admin_password_hash"]):
        host.noop(f"admin user {user!r} has the secrets file's password")
        return
    # A hash made here: the password itself never reaches the host. Uploaded into a root-only
    # file (created empty with its mode first), which the helper reads and deletes: never on
    # a command line, where every local user sees it.
    yield from private_file(io.StringIO(make_password_hash(password)), ADMIN_HASH_FILE)
    yield StringCommand(python, HELPER, "set-admin", QuoteString(user), QuoteString(email),
                        ADMIN_HASH_FILE)
