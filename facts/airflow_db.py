"""The metadata database as one Airflow host sees it: whether migrations are pending, which
database URL it was last checked with, and the admin user's stored password hash
(operations/airflow_db.py acts on the answer).

The fact runs the helper `airflow-cluster-db status` (templates/usr/local/sbin/), which
never fails: before Airflow is installed or while the database is unreachable it answers
{"db": "unknown"}, and the deploy then migrates and sets the admin password.
"""

import json

from pyinfra.api import FactBase, QuoteString, StringCommand

# The deploy's database helper on every Airflow host (rendered by tasks/airflow.py).
HELPER = "/usr/local/sbin/airflow-cluster-db"
STATUS_MARKER = "AIRFLOW-CLUSTER-DB-STATUS "
UNKNOWN = {"db": "unknown", "conn_sha256": None, "admin_password_hash": None,
           "celery_results": None}


class AirflowDbStatus(FactBase):
    """{"db": "current" | "needed" | "unknown", "conn_sha256": sha256 of the configured
    sql_alchemy_conn or None, "admin_password_hash": the stored hash or None,
    "celery_results": whether the workers' role may use Celery's result tables, or None}."""

    def command(self, python, admin_user):
        # The helper runs under `python`, a venv's (absent before its install): Airflow of
        # that venv answers.
        return StringCommand(
            "if", "[", "-x", QuoteString(python), "]", "&&", "[", "-x", HELPER, "];",
            "then", QuoteString(python), HELPER, "status", QuoteString(admin_user),
            "2>/dev/null", "||", "true;", "fi",
        )

    def process(self, output):
        for line in reversed(output):
            if line.startswith(STATUS_MARKER):
                return {**UNKNOWN, **json.loads(line[len(STATUS_MARKER):])}
        return dict(UNKNOWN)

    @staticmethod
    def default():
        return dict(UNKNOWN)
