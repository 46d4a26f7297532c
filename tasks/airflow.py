"""Airflow on every web, scheduler and worker host: install -> configure -> database.

- Install: a root-owned virtualenv (setting: airflow_venv) filled from the pinned lock
  files/airflow/requirements-<airflow_version>.lock with `pip install --no-deps`, so every
  node gets identical versions without Airflow's constraints file. The installed lock is kept
  in the venv; pip runs again only when the lock differs from it.
- Configure: airflow.cfg (0640 root:airflow, it holds secrets), the load balancer's CA for the
  Execution API calls, the `airflow` CLI wrapper, the database helper, and the repository's
  dags/ on scheduler and worker hosts.
- Database: on one host of the run, `airflow db migrate` when Airflow was (re)installed, the
  database URL changed or migrations are pending; then the admin user, created once, its
  password kept equal to the secrets file. Both sit in every Airflow host's sequence of
  operations, so no service anywhere (re)starts before they are done.

The role tasks restart their services when `Changes.any` (lock or config) or their own unit
files changed, and only then.
"""

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path

import gevent.lock
from pyinfra import host
from pyinfra.api import MaskString, QuoteString, StringCommand, deploy
from pyinfra.context import ctx_state
from pyinfra.facts.files import Sha256File
from pyinfra.operations import files, pip, server, systemd

from cluster import datatier, tls
from cluster.errors import ClusterConfigError
from cluster.paths import PROJECT_DIR
from tasks.airflow_db import HELPER, AirflowDbStatus, conn_sha256, make_password_hash
from tasks.airflow_db import password_hash_matches
from tasks.context import template_vars

AIRFLOW_GROUPS = ("web", "scheduler", "worker")
UNIT_DIR = "/etc/systemd/system"
DROP_IN_TEMPLATE = "templates/etc/systemd/system/airflow-UNIT.service.d/10-airflow-cluster.conf.j2"
# Where the installed lock is recorded: pip runs again only when the shipped lock differs.
INSTALLED_LOCK = "airflow-cluster-installed.lock"


@dataclass(frozen=True)
class Changes:
    """What this run changes under every Airflow service of the host (known before it runs)."""

    install: bool
    config: bool

    @property
    def any(self) -> bool:
        return self.install or self.config


def lock_file(settings) -> Path:
    """The shipped lock of `airflow_version`; it must pin apache-airflow to that version."""
    version = settings["airflow_version"]
    path = PROJECT_DIR / "files" / "airflow" / f"requirements-{version}.lock"
    if not path.is_file():
        shipped = sorted(p.name for p in path.parent.glob("requirements-*.lock"))
        raise ClusterConfigError(
            f"airflow_version {version!r}: no lock file {path.relative_to(PROJECT_DIR)} "
            f"(shipped: {', '.join(shipped) or 'none'})"
        )
    pins = {line.strip().lower() for line in path.read_text().splitlines()}
    if f"apache-airflow=={version}" not in pins:
        raise ClusterConfigError(f"{path.name} does not pin apache-airflow=={version}")
    return path


def config_secrets(cluster, secrets):
    """The `secrets` the Airflow templates see: the secrets file plus the secret-bearing
    connection values cluster/datatier.py derives from it (database and broker URLs, the
    sentinel transport options)."""
    return {
        **secrets,
        "sql_alchemy_conn": datatier.sql_alchemy_conn(cluster, secrets),
        "celery_result_backend": datatier.celery_result_backend(cluster, secrets),
        "celery_broker_url": datatier.broker_url(cluster, secrets),
        "celery_broker_transport_options": datatier.broker_transport_options(cluster, secrets),
    }


def airflow_vars(cluster, secrets):
    """template_vars for the Airflow templates (see config_secrets)."""
    return template_vars(cluster, config_secrets(cluster, secrets))


@deploy("Airflow")
def apply(cluster, secrets) -> Changes:
    tvars = airflow_vars(cluster, secrets)
    settings = tvars["settings"]
    installed = _install(settings)
    configured = _configure(cluster, settings, tvars)
    if {"scheduler", "worker"} & set(host.groups):
        _dags(settings)
    _database(cluster, secrets, settings, reinstalled=installed)
    return Changes(install=installed, config=configured)


def _install(settings) -> bool:
    version, venv = settings["airflow_version"], settings["airflow_venv"]
    lock = lock_file(settings)
    remote_lock = f"{settings['airflow_home']}/requirements-{version}.lock"
    files.put(
        name=f"requirements lock of Airflow {version}",
        src=str(lock),
        dest=remote_lock,
        user="root",
        group=settings["airflow_group"],
        mode="0644",
    )
    pip.virtualenv(name="virtualenv", path=venv, python="python3", venv=True)
    installed_lock = f"{venv}/{INSTALLED_LOCK}"
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    if host.get_fact(Sha256File, path=installed_lock) == wanted:
        return False
    server.shell(
        name=f"install Airflow {version} from the lock",
        commands=[
            # Exactly the lock: no resolution, no constraints file from the internet.
            f"{venv}/bin/pip install --disable-pip-version-check --no-input -q --no-deps "
            f"-r {remote_lock}",
            f"{venv}/bin/pip check --disable-pip-version-check",
            # Recorded last: an interrupted install is retried by the next run.
            f"install -m 0644 {remote_lock} {installed_lock}",
        ],
    )
    return True


def _configure(cluster, settings, tvars) -> bool:
    home, group = settings["airflow_home"], settings["airflow_group"]
    config = files.template(
        name="airflow.cfg (holds secrets: 0640)",
        src="templates/opt/airflow/airflow.cfg.j2",
        dest=f"{home}/airflow.cfg",
        user="root",
        group=group,
        mode="0640",
        **tvars,
    )
    ca = _lb_ca(cluster, settings)
    # Logs live in airflow_log_dir (writable); AIRFLOW_HOME/logs leads there.
    files.link(name="AIRFLOW_HOME/logs", path=f"{home}/logs", target=settings["airflow_log_dir"])
    files.template(
        name="airflow CLI wrapper (runs as the airflow user)",
        src="templates/usr/local/bin/airflow.j2",
        dest="/usr/local/bin/airflow",
        mode="0755",
        **tvars,
    )
    files.template(
        name="database helper of the deploy",
        src="templates/usr/local/sbin/airflow-cluster-db.j2",
        dest=HELPER,
        mode="0750",
        **tvars,
    )
    return config.will_change or ca.will_change


def _lb_ca(cluster, settings):
    """The CA the Task SDK trusts for the Execution API behind the load balancer ([api]
    ssl_ca_file): the generated or supplied lb CA, or the system trust store when the lb
    certificate is publicly trusted."""
    dest = f"{settings['airflow_home']}/lb-ca.pem"
    ca = tls.ca_certificate_path(cluster)
    if ca is None:
        return files.link(
            name="load balancer CA: the system trust store",
            path=dest,
            target="/etc/ssl/certs/ca-certificates.crt",
        )
    return files.put(
        name="load balancer CA",
        src=str(ca),
        dest=dest,
        user="root",
        group=settings["airflow_group"],
        mode="0644",
    )


def _dags(settings):
    files.sync(
        name="DAGs from the repository",
        src="dags/",
        dest=f"{settings['airflow_home']}/dags",
        user="root",
        group=settings["airflow_group"],
        mode="0640",
        dir_mode="0750",
        delete=True,
        exclude=["*.pyc"],
        exclude_dir=["__pycache__"],
    )


@dataclass(frozen=True)
class DatabasePlan:
    """What the database step does in this run, decided once, on the database host."""

    migrate: bool
    # A new password hash for the admin user, or None when the stored one matches.
    admin_hash: str | None


# One plan per pyinfra run (keyed by its State). pyinfra prepares the hosts concurrently (one
# greenlet each): the first Airflow host to get here asks its database, the others wait for
# its answer. The operations then run on that first host only (_run_once).
_PLANS: dict[int, DatabasePlan] = {}
_PLAN_LOCK = gevent.lock.Semaphore()


def _database_plan(cluster, secrets, settings, reinstalled) -> DatabasePlan:
    key = id(ctx_state.get())
    with _PLAN_LOCK:
        if key not in _PLANS:
            status = host.get_fact(
                AirflowDbStatus,
                python=f"{settings['airflow_venv']}/bin/python",
                admin_user=settings["airflow_admin_user"],
            )
            wanted_conn = conn_sha256(datatier.sql_alchemy_conn(cluster, secrets))
            admin_ok = password_hash_matches(
                secrets["admin_password"], status["admin_password_hash"]
            )
            _PLANS[key] = DatabasePlan(
                migrate=reinstalled
                or status["db"] != "current"
                or status["conn_sha256"] != wanted_conn,
                admin_hash=None if admin_ok else make_password_hash(secrets["admin_password"]),
            )
    return _PLANS[key]


def _database(cluster, secrets, settings, reinstalled):
    """Called on every Airflow host: the operations run once (on the host that made the plan)
    but sit in every host's sequence, so no host (re)starts a service before they are done."""
    plan = _database_plan(cluster, secrets, settings, reinstalled)
    if plan.migrate:
        server.shell(
            name="airflow db migrate (one host, before any service restarts)",
            commands=[f"{HELPER} migrate"],
            _run_once=True,
        )
    if plan.admin_hash:
        admin = settings["airflow_admin_user"]
        server.shell(
            name=f"admin user {admin!r}: created once, password from the secrets file",
            commands=[
                StringCommand(
                    HELPER,
                    "set-admin",
                    QuoteString(admin),
                    QuoteString(settings["airflow_admin_email"]),
                    # A hash made here: the password itself never reaches the host.
                    MaskString(shlex.quote(plan.admin_hash)),
                )
            ],
            _run_once=True,
        )


# --- helpers of the role tasks (web, scheduler, worker) -------------------------------------


def unit_files(unit, tvars, template=None) -> bool:
    """Render /etc/systemd/system/<unit> and its drop-in (user, environment, sandbox);
    True when either will change."""
    unit_op = files.template(
        name=f"unit {unit}",
        src=template or f"templates/etc/systemd/system/{unit}.j2",
        dest=f"{UNIT_DIR}/{unit}",
        mode="0644",
        **tvars,
    )
    files.directory(name=f"{unit}.d", path=f"{UNIT_DIR}/{unit}.d", mode="0755")
    drop_in = files.template(
        name=f"{unit}: user, environment and sandbox",
        src=DROP_IN_TEMPLATE,
        dest=f"{UNIT_DIR}/{unit}.d/10-airflow-cluster.conf",
        mode="0644",
        **tvars,
    )
    return unit_op.will_change or drop_in.will_change


def service(unit, restart: bool):
    """`unit` running and enabled. With `restart` (its config, the lock or its unit files
    change in this run): reloaded into systemd and restarted first, one host at a time; the
    API server and scheduler units start only once healthy, so that is a rolling restart."""
    if restart:
        systemd.service(
            name=f"{unit} restarted (config, lock or unit changed), one host at a time",
            service=unit,
            running=True,
            restarted=True,
            daemon_reload=True,
            _serial=True,
        )
    systemd.service(name=f"{unit} running and enabled", service=unit, running=True, enabled=True)
