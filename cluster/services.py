"""The systemd services each role runs, as the operations commands and the lab's health checks
look for them (the role tasks install them: tasks/<role>.py)."""

# Active on every host of the group. Worker instances (WORKER_INSTANCES) are the autoscaler's:
# at least autoscale_min_instances of them run on a healthy worker host.
ROLE_UNITS = {
    "redis": ("redis-server.service", "redis-sentinel.service"),
    "postgres": ("postgresql@*-main.service",),
    "lb": ("haproxy.service", "keepalived.service"),
    "web": ("airflow-api-server.service",),
    "scheduler": (
        "airflow-scheduler.service",
        "airflow-dag-processor.service",
        "airflow-triggerer.service",
    ),
    "worker": ("airflow-worker-logs.service", "airflow-cluster-autoscaler.service"),
}
WORKER_INSTANCES = "airflow-worker@*.service"


def host_units(groups, vip: bool = True) -> list[str]:
    """The unit patterns a host of `groups` runs (keepalived only with a VIP)."""
    units = [unit for group in ROLE_UNITS if group in groups for unit in ROLE_UNITS[group]]
    return [unit for unit in units if vip or unit != "keepalived.service"]
