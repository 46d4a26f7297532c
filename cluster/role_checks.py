"""Checks of the settings a role reads on its own hosts (relations between tunables, values
that hosts of one role must share, files the role needs on the control machine). Called by
the model, so `ops check` and the deploy refuse the same inputs before any connection."""

import re
from collections.abc import Mapping
from typing import Any

from .airflow_lock import lock_file
from .broker import check_redis_settings
from .database import check_postgres_settings
from .errors import ClusterConfigError
from .groups import AIRFLOW_GROUPS

# Settings both lb hosts must agree on, or VRRP breaks.
SHARED_VRRP_SETTINGS = ("lb_vrrp_router_id",)
# The stats page's user sits unquoted in haproxy.cfg's `stats auth`.
_STATS_USER = re.compile(r"^[A-Za-z0-9._-]+$")

HostSettings = Mapping[str, Mapping[str, Any]]


def check_role_settings(role_settings: Mapping[str, HostSettings]) -> None:
    """`role_settings`: role group -> host name -> that host's settings."""
    redis_hosts = role_settings["redis"]
    for settings in redis_hosts.values():
        check_redis_settings(settings, replicas=len(redis_hosts) - 1)
    for settings in role_settings["postgres"].values():
        check_postgres_settings(settings)
    _check_lb(role_settings["lb"])
    for name, settings in role_settings["worker"].items():
        _check_autoscale(name, settings)
        _check_log_server_user(name, settings)
    versions = {
        s["airflow_version"] for g in AIRFLOW_GROUPS for s in role_settings[g].values()
    }
    for version in sorted(versions):
        lock_file(version)


def _check_autoscale(name: str, settings: Mapping[str, Any]) -> None:
    low, high = settings["autoscale_min_instances"], settings["autoscale_max_instances"]
    if low > high:
        raise ClusterConfigError(
            f"{name}: autoscale_min_instances ({low}) is above autoscale_max_instances ({high})"
        )
    # A task still running in a warm stop must not be handed to another worker meanwhile.
    stop, visible = settings["worker_stop_timeout"], settings["celery_visibility_timeout"]
    if stop >= visible:
        raise ClusterConfigError(
            f"{name}: worker_stop_timeout ({stop}) must be below celery_visibility_timeout "
            f"({visible}): the broker would hand a task still finishing in a warm stop to "
            "another worker"
        )


def _check_log_server_user(name: str, settings: Mapping[str, Any]) -> None:
    user = settings["log_server_user"]
    if user in (settings["airflow_user"], "root"):
        raise ClusterConfigError(
            f"{name}: log_server_user is {user!r}: the task log server holds [api] secret_key, "
            "which the task code must not read; give it a user of its own"
        )


def _check_lb(lb_hosts: HostSettings) -> None:
    for name in SHARED_VRRP_SETTINGS:
        values = {host: settings.get(name) for host, settings in lb_hosts.items()}
        if len(set(values.values())) > 1:
            raise ClusterConfigError(
                f"lb hosts disagree on {name!r} ({values}): set it once in group_data/lb.py"
            )
    for settings in lb_hosts.values():
        if not _STATS_USER.match(settings["lb_stats_user"]):
            raise ClusterConfigError("lb_stats_user: letters, digits, '.', '_' or '-' only")
