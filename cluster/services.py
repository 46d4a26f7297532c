"""The systemd services each role runs: the role tasks install them under these names
(tasks/<role>.py), the operations commands and the lab's health checks look for them."""

from .systems import REDIS, Release, postgres_layout

# The web role.
API_SERVER = "airflow-api-server.service"
# The scheduler role: stopped together while an upgrade migrates the database.
SCHEDULER_UNITS = (
    "airflow-scheduler.service",
    "airflow-dag-processor.service",
    "airflow-triggerer.service",
)
# The worker role: the host's task log server and its autoscaler, and the Celery workers,
# instances of a template unit that the autoscaler starts and stops.
LOG_SERVER = "airflow-worker-logs.service"
AUTOSCALER = "airflow-cluster-autoscaler.service"
WORKER_TEMPLATE = "airflow-worker@.service"
WORKER_INSTANCES = "airflow-worker@*.service"
# The Airflow components GET /api/v2/monitor/health reports on.
AIRFLOW_COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")

# Active on every host of the group. Worker instances are the autoscaler's: at least
# autoscale_min_instances of them run on a healthy worker host.
ROLE_UNITS = {
    "redis": ("redis-server.service", "redis-sentinel.service"),
    "postgres": ("postgresql@*-main.service",),
    "lb": ("haproxy.service", "keepalived.service"),
    "web": (API_SERVER,),
    "scheduler": SCHEDULER_UNITS,
    "worker": (LOG_SERVER, AUTOSCALER),
}


def host_units(groups, vip: bool = True, release: Release | None = None) -> list[str]:
    """The unit patterns a host of `groups` runs (keepalived only with a VIP): on `release`,
    its Redis and PostgreSQL units as its packages name them (cluster/systems.py); without
    one, Debian's (any PostgreSQL version)."""
    table = dict(ROLE_UNITS)
    if release is not None:
        redis = REDIS[release.family]
        table["redis"] = (redis.server_unit, redis.sentinel_unit)
        table["postgres"] = (f"{postgres_layout(release).service}.service",)
    units = [unit for group in table if group in groups for unit in table[group]]
    return [unit for unit in units if vip or unit != "keepalived.service"]
