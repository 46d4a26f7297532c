"""The `web` role: the Airflow API server (UI, REST API and the Execution API the workers
call through the load balancer), behind HAProxy.

Runs after tasks/airflow.py (install, airflow.cfg, database). Restarted only when airflow.cfg,
the lock or its unit files change, one host at a time: the unit counts as started only once
`GET /api/v2/version` answers, so the other API server keeps serving meanwhile.
"""

from pyinfra.api import deploy

from tasks import airflow


@deploy("Airflow API server")
def apply(cluster, secrets, changes: airflow.Changes):
    tvars = airflow.airflow_vars(cluster, secrets)
    unit = "airflow-api-server.service"
    changed = airflow.unit_files(unit, tvars)
    airflow.service(unit, restart=changes.any or changed)
