"""Facts about the PostgreSQL server the deploy installs (tasks/postgres.py): the stored
password verifier of a role, compared on the control machine with the secrets file's
password (cluster/passwords.py), so the password itself never reaches the host."""

from pyinfra.api import FactBase, QuoteString, StringCommand


class RolePasswordVerifier(FactBase):
    """The stored SCRAM verifier of `role` (pg_authid.rolpassword); None when there is none."""

    def requires_command(self, role):
        return "psql"

    def command(self, role):
        sql = f"SELECT rolpassword FROM pg_catalog.pg_authid WHERE rolname = '{role}'"
        return StringCommand("psql", "-AtXq", "-c", QuoteString(sql))

    def process(self, output):
        return output[0] if output and output[0] else None
