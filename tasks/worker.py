"""The `worker` role: Celery workers airflow-worker@N, each the Celery worker `worker<N>@<host>`,
the host's task log server the API servers read, and the autoscaler that starts and stops the
instances (airflow-cluster-autoscaler.service, the `autoscaler` package; settings autoscale_*).

Runs after tasks/airflow.py (install, airflow.cfg, DAGs, database). The deploy never starts or
stops an instance itself, so a re-run leaves the autoscaler's count (and a drained host) as it
is: when airflow.cfg, the lock, the plugins or the unit files change, the running instances are
restarted, one host at a time, and a stop is Celery's warm shutdown: running tasks finish first
(KillMode=mixed, TimeoutStopSec = worker_stop_timeout).
"""

import io
import zipfile

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.files import FindLinks
from pyinfra.operations import files, server, systemd

from autoscaler import paths
from cluster.paths import PROJECT_DIR
from cluster.services import AUTOSCALER, LOG_SERVER, WORKER_INSTANCES, WORKER_TEMPLATE
from operations import files as cluster_files
from operations import system
from tasks import airflow
from tasks.context import template_vars

PACKAGE = PROJECT_DIR / "autoscaler"


@deploy("Airflow worker")
def apply(run, changes: airflow.Changes):
    tvars = template_vars(run)
    tvars["autoscaler"] = autoscaler_vars(run, tvars["settings"])
    airflow.service(LOG_SERVER, changes.restart_if(*_log_server(tvars)))
    restart_if = changes.restart_if(*airflow.unit_files(WORKER_TEMPLATE, tvars))
    _instances_not_enabled()
    systemd.daemon_reload(name="systemd reloaded if the worker unit changed", _if=restart_if)
    server.shell(
        name="running worker instances restarted if their config, lock, plugins or unit "
        "changed (warm stop), one host at a time",
        # try-restart: only the instances that run; the autoscaler owns the count.
        commands=[f"systemctl try-restart '{WORKER_INSTANCES}'"],
        _serial=True,
        _if=restart_if,
    )
    _autoscaler(tvars, changes)


def _log_server(tvars) -> tuple:
    """The task log server's user, its own configuration (the only file of a worker host with
    [api] secret_key) and its unit files: the operations that restart it."""
    settings = tvars["settings"]
    user, airflow_group = settings["log_server_user"], settings["airflow_group"]
    server.group(name=f"{user} group", group=user, system=True)
    system.system_user(
        name=f"{user} user (reads the task logs through the {airflow_group} group)",
        user=user,
        group=user,
        groups=[airflow_group],
        home="/nonexistent",
        shell="/usr/sbin/nologin",
    )
    config = cluster_files.template(
        name="log server configuration (holds [api] secret_key: 0640, its user's group only)",
        src="templates/opt/airflow/logserver.cfg.j2",
        dest=f"{settings['airflow_home']}/logserver.cfg",
        user="root",
        group=user,
        mode="0640",
        **tvars,
    )
    identity = cluster_files.template(
        name=f"{LOG_SERVER}: its own user and configuration",
        src=f"templates/etc/systemd/system/{LOG_SERVER}.d/20-log-server-user.conf.j2",
        dest=f"{airflow.UNIT_DIR}/{LOG_SERVER}.d/20-log-server-user.conf",
        mode="0644",
        **tvars,
    )
    return (*airflow.unit_files(LOG_SERVER, tvars), config, identity)


def _instances_not_enabled() -> None:
    """Instances start by the autoscaler only, also after a reboot: no instance stays enabled
    from an older deploy (it enabled airflow-worker@1..N)."""
    wants = f"{airflow.UNIT_DIR}/multi-user.target.wants"
    for link in host.get_fact(FindLinks, path=wants, maxdepth=1, fname="airflow-worker@*.service"):
        files.link(name=f"{link} removed (the autoscaler starts instances)", path=link,
                   present=False)


def autoscaler_vars(run, settings) -> dict:
    """What the autoscaler's templates print besides the usual names."""
    return {
        "command": str(paths.COMMAND),
        "archive": str(paths.ARCHIVE),
        "state_dir_name": paths.DIR_NAME,
        # The workers' own, visibility timeout included: the drain's Celery client polls for
        # replies, and Kombu then re-queues every unacknowledged message older than it.
        "transport_options": {
            **run.connections.celery_broker_transport_options,
            "visibility_timeout": settings["celery_visibility_timeout"],
        },
    }


def package_archive() -> bytes:
    """The autoscaler package as one zip, the same bytes for the same sources (sorted names,
    fixed times, stored): one upload compared by checksum, not a sync file by file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for source in sorted(PACKAGE.glob("*.py")):
            info = zipfile.ZipInfo(f"autoscaler/{source.name}", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            archive.writestr(info, source.read_bytes())
    return buffer.getvalue()


def _autoscaler(tvars, changes: airflow.Changes) -> None:
    package = cluster_files.put(
        name="autoscaler package (one zip)",
        src=io.BytesIO(package_archive()),
        dest=str(paths.ARCHIVE),
        user="root",
        group="root",
        mode="0644",
    )
    files.directory(name="no autoscaler package directory (earlier deploys synced one)",
                    path=str(paths.LIB_DIR / "autoscaler"), present=False)
    config = cluster_files.template(
        name="autoscaler settings (hold the broker password: 0600)",
        src="templates/etc/airflow-cluster/autoscaler.json.j2",
        dest=str(paths.CONFIG),
        user="root",
        group="root",
        mode="0600",
        **tvars,
    )
    command = cluster_files.template(
        name="airflow-cluster-autoscaler command",
        src="templates/usr/local/sbin/airflow-cluster-autoscaler.j2",
        dest=str(paths.COMMAND),
        mode="0755",
        **tvars,
    )
    unit = cluster_files.template(
        name=f"unit {AUTOSCALER}",
        src=f"templates/etc/systemd/system/{AUTOSCALER}.j2",
        dest=f"{airflow.UNIT_DIR}/{AUTOSCALER}",
        mode="0644",
        **tvars,
    )
    # It runs on the Airflow venv's Kombu and Celery: a new venv restarts it too.
    install = changes.install
    systemd.service(
        name=f"{AUTOSCALER} restarted if its code, settings, unit or the venv changed",
        service=AUTOSCALER,
        running=True,
        restarted=True,
        daemon_reload=True,
        _if=lambda: install or any(op.did_change() for op in (package, config, command, unit)),
    )
    systemd.service(name=f"{AUTOSCALER} running and enabled", service=AUTOSCALER, running=True,
                    enabled=True)
