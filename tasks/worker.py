"""The `worker` role: Celery workers airflow-worker@1..N (setting: worker_instances), each the
Celery worker `worker<N>@<host>`, and the host's task log server the API servers read.

Runs after tasks/airflow.py (install, airflow.cfg, DAGs, database). A worker restarts only when
airflow.cfg, the lock or its unit files change, one host at a time, and a stop is Celery's warm
shutdown: running tasks finish first (KillMode=mixed, TimeoutStopSec = worker_stop_timeout).
Instances above worker_instances are left alone (an autoscaler may run them).
"""

from pyinfra import host
from pyinfra.api import deploy

from tasks import airflow
from tasks.context import template_vars

WORKER_TEMPLATE = "airflow-worker@.service"
LOG_SERVER = "airflow-worker-logs.service"


@deploy("Airflow worker")
def apply(run, changes: airflow.Changes):
    tvars = template_vars(run)
    settings = tvars["settings"]
    logs_changed = airflow.unit_files(LOG_SERVER, tvars)
    airflow.service(LOG_SERVER, restart=changes.any or logs_changed)
    worker_changed = airflow.unit_files(WORKER_TEMPLATE, tvars)
    for number in host.loop(range(1, settings["worker_instances"] + 1)):
        airflow.service(
            f"airflow-worker@{number}.service", restart=changes.any or worker_changed
        )
