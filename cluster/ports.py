"""The TCP ports each role's services listen on, from the settings: one table, read by the
model's check that no two services of a host share a port."""

from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ClusterConfigError

# Airflow's triggerer serves its task logs here ([logging] trigger_log_server_port, left at
# Airflow's default): the scheduler hosts run the triggerer.
TRIGGER_LOG_SERVER_PORT = 8794

# Role -> (service, setting holding its port, or the fixed port).
ROLE_PORTS: dict[str, tuple[tuple[str, str | int], ...]] = {
    "redis": (("Redis", "redis_port"), ("Sentinel", "sentinel_port")),
    "postgres": (("PostgreSQL", "postgres_port"),),
    "web": (("API server", "api_port"),),
    "scheduler": (("scheduler health server", "scheduler_health_port"),
                  ("triggerer log server", TRIGGER_LOG_SERVER_PORT)),
    "worker": (("worker log server", "worker_log_server_port"),),
    "lb": (("HTTPS front", "lb_https_port"), ("HTTP redirect", "lb_http_port"),
           ("HAProxy stats page", "lb_stats_port")),
}


def host_ports(groups: Iterable[str], settings: Mapping[str, Any]) -> dict[int, str]:
    """Port -> service of a host in `groups` with `settings`, SSH included. Raises
    ClusterConfigError when two of them share a port."""
    ports = {settings.get("ssh_port", 22): "SSH server"}
    for group in groups:
        for service, source in ROLE_PORTS.get(group, ()):
            port = settings[source] if isinstance(source, str) else source
            if port in ports:
                raise ClusterConfigError(
                    f"port {port} is both the {ports[port]}'s and the {service}'s "
                    f"({_setting_of(source)}): give one of them another port"
                )
            ports[port] = service
    return ports


def _setting_of(source: str | int) -> str:
    return f"setting {source}" if isinstance(source, str) else "Airflow's default"
