"""The `web` role: the Airflow API server (UI, REST API and the Execution API the workers
call through the load balancer), behind HAProxy.

Runs after tasks/airflow.py (install, airflow.cfg, database). Restarted only when airflow.cfg,
the lock or its unit files change, one host at a time: the unit counts as started only once
`GET /api/v2/version` answers, so the other API server keeps serving meanwhile.
"""

from pyinfra.api import deploy

from tasks import airflow
from tasks.context import template_vars


@deploy("Airflow API server")
def apply(run, changes: airflow.Changes):
    tvars = template_vars(run)
    unit = "airflow-api-server.service"
    changed = airflow.unit_files(unit, tvars)
    airflow.service(unit, restart=changes.any or changed)
