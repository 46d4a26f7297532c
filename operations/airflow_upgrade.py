"""The step of an Airflow version change that spans hosts: stop every scheduler, DAG processor
and triggerer, migrate the database once with the new version, and, when the migration fails,
start them again on the old version (the venv symlink has not moved yet). The deploy runs it
as the migration operation of a version change (operations/airflow_db.py) and
`python -m ops upgrade` as its third step, both on pyinfra's connections to the hosts.
"""

from pyinfra.api import StringCommand

from facts.airflow_db import HELPER

from . import remote

# Seconds the migration may take (a schema change of a big metadata database is slow).
MIGRATION_TIMEOUT = 3600


class UpgradeError(Exception):
    """A step failed; the message says what was done about it."""


def _systemctl(state, hosts, verb, units) -> list[str]:
    """`systemctl VERB UNITS` on each host; the failures, one line each."""
    failures = []
    for host in hosts:
        result = remote.run(state, host, StringCommand("systemctl", verb, *units))
        if not result.ok:
            failures.append(f"{host.name}: systemctl {verb}: {result.error}")
    return failures


def migrate_with_schedulers_stopped(state, db_host, python, scheduler_hosts, units, say=print):
    """Stop `units` on `scheduler_hosts`, run `python HELPER migrate` on `db_host`; on a failure
    start the units again (on the version the symlink still selects) and raise UpgradeError."""
    say(f"stopping {', '.join(units)} on {', '.join(h.name for h in scheduler_hosts)}")
    failures = _systemctl(state, scheduler_hosts, "stop", units)
    if failures:
        failures += _systemctl(state, scheduler_hosts, "start", units)
        raise UpgradeError("could not stop the schedulers (started again): " + "; ".join(failures))
    say(f"airflow db migrate on {db_host.name} with {python}")
    result = remote.run(state, db_host, StringCommand(python, HELPER, "migrate"),
                        timeout=MIGRATION_TIMEOUT)
    if not result.ok:
        restarted = _systemctl(state, scheduler_hosts, "start", units)
        told = "; ".join(restarted) or "the schedulers run the old version again"
        raise UpgradeError(f"airflow db migrate failed on {db_host.name}: {result.error} ({told})")
    say("database migrated")
