"""The `scheduler` role: scheduler (with its health server), DAG processor and triggerer.

Runs after tasks/airflow.py (install, airflow.cfg, DAGs, database). Each service restarts only
when airflow.cfg, the lock or its unit files change, one host at a time; the scheduler counts
as started only once its health server answers, so another scheduler keeps scheduling.
"""

from pyinfra import host
from pyinfra.api import deploy

from cluster.services import SCHEDULER_UNITS
from tasks import airflow
from tasks.context import template_vars


@deploy("Airflow scheduler")
def apply(run, changes: airflow.Changes):
    tvars = template_vars(run)
    # host.loop: each unit's operations keep their own identity across hosts.
    for unit in host.loop(SCHEDULER_UNITS):
        airflow.service(unit, changes.restart_if(*airflow.unit_files(unit, tvars)))
