"""The `web` role: the Airflow API server (UI, REST API and the Execution API the workers
call through the load balancer), behind HAProxy.

Runs after tasks/airflow.py (install, airflow.cfg, database) and the schedulers. Restarted only
when airflow.cfg, the lock, the version, a plugin or its unit files change, one host at a time
and drained in every lb host's HAProxy first (operations/api_server.py): the unit counts as
started once `GET /api/v2/version` answers, and the next host waits until HAProxy counts this
one up again, so clients of the public URL see no failed request.
"""

from pyinfra.api import deploy
from pyinfra.operations import systemd

from cluster.services import API_SERVER
from operations import api_server
from tasks import airflow
from tasks.context import template_vars


@deploy("Airflow API server")
def apply(run, changes: airflow.Changes):
    tvars = template_vars(run)
    settings = tvars["settings"]
    api_server.restarted_drained(
        name=f"{API_SERVER} restarted (drained in HAProxy) if its config, lock, plugins or unit "
        "changed, one host at a time",
        unit=API_SERVER,
        lb_hosts=list(run.cluster.groups["lb"]),
        drain_timeout=settings["api_drain_timeout"],
        up_timeout=settings["api_start_timeout"],
        _serial=True,
        _if=airflow.rolling_restart_if(
            API_SERVER, changes.restart_if(*airflow.unit_files(API_SERVER, tvars))
        ),
    )
    systemd.service(name=f"{API_SERVER} running and enabled", service=API_SERVER, running=True,
                    enabled=True)
