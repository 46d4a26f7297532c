"""PostgreSQL role passwords, set without showing them to the host's other users: pyinfra's
postgres.role puts the password (here a SCRAM verifier) into psql's command line, which every
local user can read in the process list. Run as root: the upload then goes straight into a
file already private (with _su_user, pyinfra would stage it in /tmp first)."""

import io

from pyinfra import host
from pyinfra.api import StringCommand, operation

from cluster.passwords import scram_verifier, scram_verifier_matches
from facts.postgres import RolePasswordVerifier

from .files import private_file

# Where the statement waits for psql, which runs as the postgres user: made for it, 0600.
STATEMENT_FILE = "/run/postgresql/airflow-cluster-role-password.sql"


@operation()
def role_password(role: str, password: str):
    """`role`'s password is `password`: its SCRAM verifier (made here: the password never
    reaches the host) set only when the stored one was not made from it. The statement is
    uploaded into a file only the postgres user reads, run with psql -f and deleted."""
    stored = host.get_fact(RolePasswordVerifier, role=role, _su_user="postgres")
    if scram_verifier_matches(password, stored):
        host.noop(f"role {role} has the secrets file's password")
        return
    identifier = '"' + role.replace('"', '""') + '"'
    statement = f"ALTER ROLE {identifier} PASSWORD '{scram_verifier(password)}';\n"
    yield from private_file(io.StringIO(statement), STATEMENT_FILE, "postgres", "postgres")
    yield StringCommand("runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-v",
                        "ON_ERROR_STOP=1", "-f", STATEMENT_FILE, ";", "status=$?;", "rm", "-f",
                        STATEMENT_FILE, ";", "exit", "$status")
