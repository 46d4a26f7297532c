"""Schema of every setting the deploy knows: the names allowed in group_data/*.py,
in inventory group/host data and in `--data`.

One flat dict, one section per concern. A new setting goes into its section here
*and* into group_data/ with its default and a one-line comment; an unknown name
anywhere is rejected before a host is touched (`python -m ops check`).

`cluster_wide=True` marks a value every host must agree on (other hosts build URLs or
peer lists from it); the model rejects an inventory where hosts see different values.
"""

import difflib
from dataclasses import dataclass
from typing import Any

from pyinfra.api.arguments import all_argument_meta

from . import validators as v
from .database_url import database_url


@dataclass(frozen=True)
class Setting:
    check: v.Check
    description: str
    cluster_wide: bool = False


SETTINGS: dict[str, Setting] = {
    # --- Control machine --------------------------------------------------------------------------
    "secrets_file": Setting(
        v.text, "Generated secrets (JSON, 0600), relative to the project dir.", cluster_wide=True
    ),
    # --- Network access from the hosts ------------------------------------------------------------
    "http_proxy": Setting(v.optional(v.url("http", "https")), "HTTP(S) proxy for apt and pip."),
    "no_proxy": Setting(
        v.list_of(v.text), "Names bypassing the proxy (cluster addresses are added).",
        cluster_wide=True,
    ),
    "extra_ca_certs": Setting(v.list_of(v.text), "Control-machine PEM files trusted on hosts."),
    "apt_mirror": Setting(
        v.optional(v.url("http", "https")),
        "Debian mirror replacing the Debian hosts' apt sources (other systems keep their own).",
    ),
    "apt_security_mirror": Setting(
        v.url("http", "https"), "Debian security archive used with apt_mirror."
    ),
    # --- Host firewall ----------------------------------------------------------------------------
    "firewall": Setting(v.boolean, "nftables: each service port admits only its users."),
    "admin_sources": Setting(
        v.list_of(v.ipv4_network), "Operators' and monitoring networks: every service port."
    ),
    # --- Base system ------------------------------------------------------------------------------
    "base_packages": Setting(
        v.list_of(v.text),
        "More packages installed on every host (named as its package manager names them), "
        "besides those the deploy needs there (cluster/systems.py) and each role's."),
    "sysctl": Setting(
        v.mapping(v.text, v.either(v.integer(), v.text)), "Kernel settings on every host."
    ),
    # --- Airflow system user and paths ------------------------------------------------------------
    "airflow_user": Setting(v.system_name, "System user running Airflow."),
    "airflow_group": Setting(v.system_name, "System group running Airflow."),
    "airflow_home": Setting(v.absolute_path, "AIRFLOW_HOME (airflow.cfg, dags/, plugins/)."),
    "airflow_log_dir": Setting(v.absolute_path, "Log directory of every Airflow component."),
    "airflow_state_dir": Setting(v.absolute_path, "Pid files and task scratch space."),
    # --- Database ---------------------------------------------------------------------------------
    "external_database_url": Setting(
        database_url, "Metadata DB URL when there is no postgres group (no password).",
        cluster_wide=True,
    ),
    "postgres_port": Setting(v.port, "PostgreSQL port (postgres group).", cluster_wide=True),
    "postgres_database": Setting(
        v.system_name, "Metadata database name (postgres group).", cluster_wide=True
    ),
    "postgres_user": Setting(
        v.system_name, "Metadata database role (postgres group).", cluster_wide=True
    ),
    "celery_database_user": Setting(
        v.system_name, "Database role of the workers' Celery results.", cluster_wide=True
    ),
    # --- Ports ------------------------------------------------------------------------------------
    "redis_port": Setting(v.port, "Redis server port (redis group).", cluster_wide=True),
    "sentinel_port": Setting(v.port, "Redis Sentinel port (redis group).", cluster_wide=True),
    "api_port": Setting(v.port, "Airflow API server port (web group).", cluster_wide=True),
    "lb_https_port": Setting(v.port, "HTTPS port on the lb hosts.", cluster_wide=True),
    "lb_http_port": Setting(v.port, "HTTP port on the lb hosts (redirects to HTTPS)."),
    "lb_stats_port": Setting(v.port, "HAProxy stats port on the lb hosts."),
    # --- Load balancer ----------------------------------------------------------------------------
    "lb_vip": Setting(
        v.optional(v.ip_address), "Virtual IP shared by two lb hosts (keepalived).",
        cluster_wide=True,
    ),
    # --- Airflow (web, scheduler and worker hosts) ------------------------------------------------
    "airflow_version": Setting(v.text, "Airflow version (picks its files/airflow/*.lock)."),
    "airflow_venv": Setting(v.absolute_path, "Symlink to the venv of the version in use."),
    "uv_version": Setting(v.plain_text, "uv release that installs the Airflow lock."),
    "wheelhouse": Setting(
        v.boolean, "Hosts install Airflow from wheels the control machine uploads, no index."
    ),
    "parallelism": Setting(v.integer(1), "[core] parallelism per scheduler."),
    "max_active_tasks_per_dag": Setting(v.integer(1), "[core] max_active_tasks_per_dag."),
    "max_active_runs_per_dag": Setting(v.integer(1), "[core] max_active_runs_per_dag."),
    "default_queue": Setting(
        v.text, "[operators] default_queue; every worker consumes it.", cluster_wide=True
    ),
    "worker_concurrency": Setting(
        v.integer(1), "Task slots of each Celery worker process.", cluster_wide=True
    ),
    "celery_visibility_timeout": Setting(
        v.integer(1), "Seconds before the broker redelivers an unacknowledged task.",
        cluster_wide=True,
    ),
    "celery_publish_retry_seconds": Setting(
        v.integer(1), "Seconds a task publish is retried through a broker failover.",
        cluster_wide=True,
    ),
    "worker_log_server_port": Setting(
        v.port, "Task log server port on worker hosts.", cluster_wide=True
    ),
    "airflow_admin_user": Setting(
        v.plain_text, "Username of the Airflow admin (FAB).", cluster_wide=True
    ),
    "airflow_admin_email": Setting(
        v.plain_text, "E-mail address of the Airflow admin.", cluster_wide=True
    ),
    "serialized_dag_update_interval": Setting(
        v.integer(1), "[core] min_serialized_dag_update_interval (s)."
    ),
    # --- DAGs and plugins -------------------------------------------------------------------------
    "dags_dir": Setting(v.text, "Control-machine DAG folder synced to hosts.", cluster_wide=True),
    "plugins_dir": Setting(v.text, "Control-machine plugins folder synced to hosts.",
                           cluster_wide=True),
    "dags_git_url": Setting(v.optional(v.git_url), "Git repository of DAGs (GitDagBundle).",
                            cluster_wide=True),
    "dags_git_ref": Setting(v.plain_text, "Branch or tag of dags_git_url.", cluster_wide=True),
    "dags_git_subdir": Setting(v.optional(v.plain_text), "DAG folder inside the repository.",
                               cluster_wide=True),
    "dags_git_key": Setting(v.optional(v.text), "SSH key file for dags_git_url.",
                            cluster_wide=True),
    "dags_git_known_hosts": Setting(v.optional(v.text), "known_hosts file of the Git server.",
                                    cluster_wide=True),
    # --- web group --------------------------------------------------------------------------------
    "api_workers": Setting(v.integer(1), "uvicorn workers of each API server ([api] workers)."),
    "api_start_timeout": Setting(v.integer(1), "Seconds a (re)start waits for the API (s)."),
    "api_drain_timeout": Setting(v.integer(0), "Seconds a drained API server finishes requests."),
    # --- scheduler group --------------------------------------------------------------------------
    "scheduler_health_port": Setting(v.port, "Scheduler health server port."),
    "scheduler_start_timeout": Setting(v.integer(1), "Seconds a (re)start waits for health."),
    "dag_processor_parsing_processes": Setting(
        v.integer(1), "[dag_processor] parsing_processes."
    ),
    "task_heartbeat_timeout": Setting(
        v.integer(10), "[scheduler] task_instance_heartbeat_timeout (s)."
    ),
    "dag_bundle_refresh_interval": Setting(
        v.integer(1), "[dag_processor] refresh_interval: seconds between bundle refreshes."
    ),
    # --- worker group -----------------------------------------------------------------------------
    "worker_stop_timeout": Setting(v.integer(1), "Seconds a stopping worker may finish tasks."),
    "log_server_user": Setting(v.system_name, "System user of the task log server."),
    "autoscale_min_instances": Setting(v.integer(0), "Fewest worker instances on a host."),
    "autoscale_max_instances": Setting(v.integer(1), "Most worker instances on a host."),
    "autoscale_cooldown": Setting(v.integer(0), "Seconds of lower load before a scale-in."),
    "autoscale_interval": Setting(v.integer(1), "Seconds between two autoscaler rounds."),
    # --- redis group ------------------------------------------------------------------------------
    "redis_master_name": Setting(
        v.text, "Name Sentinel monitors the primary under (set in all.py only).",
        cluster_wide=True,
    ),
    "redis_maxmemory_mb": Setting(v.integer(1), "Memory limit of each redis-server (MiB)."),
    "redis_appendfsync": Setting(v.one_of("everysec", "always", "no"), "AOF fsync policy."),
    "redis_restart_delay": Setting(v.integer(0), "Seconds before restarting a crashed Redis."),
    "redis_min_replicas_to_write": Setting(
        v.integer(0), "Replicas that must be in sync for the primary to take writes."
    ),
    "redis_min_replicas_max_lag": Setting(
        v.integer(1), "Seconds of replica silence after which it is no longer in sync."
    ),
    "sentinel_down_after_ms": Setting(v.integer(1), "Sentinel down-after-milliseconds."),
    "sentinel_failover_timeout_ms": Setting(v.integer(1), "Sentinel failover-timeout (ms)."),
    "sentinel_parallel_syncs": Setting(v.integer(1), "Sentinel parallel-syncs."),
    # --- postgres group ---------------------------------------------------------------------------
    "postgres_connection_budget": Setting(
        v.mapping(v.text, v.integer(0)), "DB connections each Airflow process may hold."
    ),
    "postgres_reserved_connections": Setting(v.integer(0), "Connections on top of the budget."),
    # --- lb group ---------------------------------------------------------------------------------
    "lb_tls_cert": Setting(v.optional(v.text), "PEM certificate (+chain); None = generated CA."),
    "lb_tls_key": Setting(v.optional(v.text), "PEM private key of lb_tls_cert."),
    "lb_tls_ca": Setting(v.optional(v.text), "PEM of the CA that signed lb_tls_cert."),
    "lb_tls_names": Setting(v.list_of(v.text), "Extra names/addresses in the certificate."),
    "lb_stats_user": Setting(v.text, "User name of the HAProxy stats page."),
    "lb_check_interval_ms": Setting(v.integer(1), "API server health check interval (ms)."),
    "lb_check_fall": Setting(v.integer(1), "Failed checks in a row that mark a server down."),
    "lb_check_rise": Setting(v.integer(1), "Passed checks in a row that mark a server up."),
    "lb_timeout_client": Setting(v.integer(1), "HAProxy client inactivity timeout (s)."),
    "lb_timeout_server": Setting(v.integer(1), "HAProxy server response timeout (s)."),
    "lb_vrrp_router_id": Setting(v.integer(1, 255), "keepalived virtual_router_id."),
    "lb_vrrp_interface": Setting(v.optional(v.text), "VRRP interface; None = the host's own."),
    # --- pyinfra SSH connector (host data) --------------------------------------------------------
    "ssh_hostname": Setting(v.text, "Address pyinfra connects to; the host's cluster IP."),
    "ssh_port": Setting(v.port, "SSH port."),
    "ssh_user": Setting(v.text, "SSH user."),
    "ssh_password": Setting(v.secret_text, "SSH password."),
    "ssh_key": Setting(v.text, "SSH private key file."),
    "ssh_key_password": Setting(v.secret_text, "Passphrase of the SSH key."),
    "ssh_allow_agent": Setting(v.boolean, "Use a running SSH agent."),
    "ssh_look_for_keys": Setting(v.boolean, "Look for keys in ~/.ssh."),
    "ssh_forward_agent": Setting(v.boolean, "Forward the SSH agent."),
    "ssh_config_file": Setting(v.text, "SSH config file."),
    "ssh_known_hosts_file": Setting(v.text, "known_hosts file."),
    "ssh_strict_host_key_checking": Setting(
        v.one_of("yes", "no", "accept-new", "off"), "Host key policy."
    ),
    "ssh_paramiko_connect_kwargs": Setting(
        v.mapping(v.text, v.anything), "Extra keyword arguments for paramiko's connect()."
    ),
    "ssh_connect_retries": Setting(v.integer(0, 100), "Connection retries."),
    "ssh_connect_retry_min_delay": Setting(v.number, "Minimum delay between retries (s)."),
    "ssh_connect_retry_max_delay": Setting(v.number, "Maximum delay between retries (s)."),
    "ssh_file_transfer_protocol": Setting(v.one_of("sftp", "scp"), "File transfer protocol."),
    # --- pyinfra global arguments as host data (_sudo, _sudo_user, _env, ...) ---------------------
    # Taken from the pinned pyinfra so the list matches what it actually reads.
    **{
        name: Setting(v.anything, " ".join(meta.description.split()))
        for name, meta in all_argument_meta.items()
        if name.startswith("_")
    },
}


def check_setting(name: str, value: Any) -> str | None:
    """None when `name` is a known setting and `value` fits it, else the problem."""
    setting = SETTINGS.get(name)
    if setting is None:
        return f"unknown setting {name!r}{did_you_mean(name)}"
    problem = _control_characters(value) or setting.check(value)
    return problem and f"setting {name!r}: {problem}"


def _control_characters(value: Any) -> str | None:
    """Settings are written into config lines and units: a newline or other control
    character in any text of `value` (lists and dicts included) would start a line of its own."""
    if isinstance(value, str):
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            return "contains a newline or another control character"
    elif isinstance(value, (list, tuple)):
        return next(filter(None, map(_control_characters, value)), None)
    elif isinstance(value, dict):
        return next(filter(None, map(_control_characters, [*value, *value.values()])), None)
    return None


def did_you_mean(name: str) -> str:
    close = difflib.get_close_matches(name, SETTINGS, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def cluster_wide_names() -> list[str]:
    return [name for name, setting in SETTINGS.items() if setting.cluster_wide]
