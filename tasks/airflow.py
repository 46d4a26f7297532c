"""Airflow on every web, scheduler and worker host: install (early in the run, `install`) ->
configure -> database (`apply`).

- Install: a root-owned virtualenv per Airflow version, <airflow_venv>-<airflow_version>,
  filled from the pinned, hashed lock files/airflow/requirements-<airflow_version>.lock with
  `uv pip install --no-deps --require-hashes --compile-bytecode` (uv_version, its binary
  uploaded by the control machine), so every node gets identical files without Airflow's
  constraints file. With setting wheelhouse (the default) the wheels come from the control
  machine too and the host installs with no package index (cluster/wheelhouse.py). The
  installed lock is kept in the venv; uv runs again only when the lock differs from it. A new
  version's venv is filled while the services run on the old one, mostly from uv's cache of
  the last one.
- Version: the symlink airflow_venv selects the venv in use. When it changes (an upgrade),
  every scheduler, DAG processor and triggerer is stopped, the database migrated with the new
  version (a failed migration starts them again on the old one and stops the run), the
  symlink switched on every Airflow host, and the role tasks restart their services: the
  schedulers first, then the API servers (drained) and the workers (warm). A process keeps the
  venv it started with: units run console scripts (whose interpreter is the versioned venv's)
  or resolve the symlink when they start. A version change needs every Airflow host in the
  run: a `--limit` run that would leave some on the old version is refused before it starts.
  A host where any process still runs from another venv (a run stopped after the switch)
  has its services restarted, so the next run finishes what a failed one left.
- Configure: airflow.cfg (0640 root:airflow, it holds secrets), the environment of the Airflow
  processes, the load balancer's CA for the Execution API calls, the `airflow` CLI wrapper and
  the database helper.
- DAGs and plugins (cluster/dag_sources.py): dags_dir synced to the scheduler and worker hosts,
  with dags_git_url the Git DAG bundle's credentials there too, and plugins_dir synced to every
  Airflow host. Airflow finds new, changed and deleted DAG files by itself within
  dag_bundle_refresh_interval, so a DAG change restarts nothing; a plugin change restarts every
  Airflow service (plugins are loaded at start).
- Database: on one host of the run (its first API server or scheduler host; a run with none
  leaves the database alone), `airflow db migrate` when Airflow was (re)installed, the
  database URL changed or migrations are pending, and Celery's result tables granted to the
  workers' role; then the admin user, created once, its password kept equal to the secrets
  file. Both sit in
  every Airflow host's sequence of operations (operations/airflow_db.py), so no service anywhere
  (re)starts before they are done.

The role tasks restart their services when the venv, the config or the plugins
(`Changes.restart_if`) or their own unit files changed, and only then.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.facts.files import File, FindFiles, Link, Sha256File
from pyinfra.facts.systemd import SystemdStatus
from pyinfra.operations import files, server, systemd

from cluster.airflow_lock import INSTALLED_LOCK, UV_ENV, install_commands, installed_lock
from cluster.airflow_lock import lock_file
from cluster.airflow_lock import versioned_venv
from cluster.wheelhouse import UPLOAD, WHEELHOUSE, Platform, missing_upload, unpack_commands
from cluster.wheelhouse import uv_binary, uv_path
from cluster.dag_sources import HOST_GIT_DIR, HOST_GIT_KEY, HOST_GIT_KNOWN_HOSTS, DagSources
from cluster.errors import ClusterConfigError
from cluster.groups import AIRFLOW_GROUPS
from cluster.services import SCHEDULER_UNITS
from facts.airflow_venv import RunningVenvs
from facts.python import SystemPython
from operations import airflow_db
from operations import files as cluster_files
from operations.files import validated_file
from tasks.context import host_release, template_vars

UNIT_DIR = "/etc/systemd/system"
# Where deploys before the shipped uv binary installed uv with pip.
OLD_UV_VENV = "/opt/airflow-cluster/uv"
DROP_IN_TEMPLATE = "templates/etc/systemd/system/airflow-UNIT.service.d/10-airflow-cluster.conf.j2"


@dataclass(frozen=True)
class Changes:
    """What this run changes under every Airflow service of the host: the install, known
    before the run, and the operations whose changes restart every service, asked when the
    run gets there (pyinfra's `_if`: no file is compared twice, nor while preparing)."""

    # The venv in use changes (a new version, or its lock reinstalled), or some process still
    # runs from another one.
    install: bool
    # airflow.cfg, the environment, the lb CA, the Git credentials; plugins are loaded when a
    # process starts: every Airflow service restarts for them too.
    operations: tuple

    def restart_if(self, *own):
        """`_if` of a service's restart: the install, or any of these operations or its
        `own` (its unit files, say) changed something on the host."""
        install, operations = self.install, (*self.operations, *own)
        return lambda: install or any(op.did_change() for op in operations)


@dataclass(frozen=True)
class Install:
    """What `install` found and did on the host."""

    venv: str
    # The symlink airflow_venv moves to `venv` in this run; `upgrade`: from another version.
    switch: bool
    upgrade: bool
    # uv (re)filled `venv` in this run.
    installed: bool
    # Processes still run from another venv (a run that stopped after the switch).
    stale: bool


@deploy("Airflow install")
def install(run) -> Install:
    """The slow step, on every Airflow host at once right after the common role (deploy.py):
    it needs no other role."""
    tvars = template_vars(run)
    settings = tvars["settings"]
    venv = versioned_venv(settings["airflow_venv"], settings["airflow_version"])
    in_use = host.get_fact(Link, path=settings["airflow_venv"])
    # None: nothing installed yet; False: a venv directory of a deploy before versioned venvs.
    switch = not in_use or in_use["link_target"] != venv
    upgrade = switch and in_use is not None
    if upgrade:
        _refuse_partial_upgrade(run, settings, in_use)
    stale = any(v != venv for v in host.get_fact(RunningVenvs, link=settings["airflow_venv"]))
    installed = _install(settings, tvars, venv)
    return Install(venv=venv, switch=switch, upgrade=upgrade, installed=installed, stale=stale)


@deploy("Airflow")
def apply(run, install: Install) -> Changes:
    tvars = template_vars(run)
    settings = tvars["settings"]
    venv, switch = install.venv, install.switch
    configured = _configure(run, settings, tvars)
    if {"scheduler", "worker"} & set(host.groups):
        _dags(run.cluster.dags, settings)
    # Every Airflow host: all of them read the bundle list (airflow.cfg), and GitPython, which
    # the git provider imports, needs the git program.
    configured += _git_access(run, settings)
    plugins = _plugins(run.cluster.dags, settings)
    _database(run, venv, reinstalled=install.installed or switch, upgrade=install.upgrade)
    if switch:
        files.link(
            name=f"Airflow {settings['airflow_version']} in use ({settings['airflow_venv']})",
            path=settings["airflow_venv"],
            target=venv,
            # A venv directory of an older deploy is moved aside (<path>.<timestamp>).
            force=True,
        )
    return Changes(install=switch or install.installed or install.stale,
                   operations=(*configured, plugins))


def _refuse_partial_upgrade(run, settings, in_use) -> None:
    """A version change on only some Airflow hosts would migrate the database under the
    others: the run must hold them all."""
    active = {h.name for h in inventory.get_active_hosts()}
    left_out = [n for g in AIRFLOW_GROUPS for n in run.cluster.groups[g] if n not in active]
    if left_out:
        now = in_use["link_target"] if in_use else f"a venv directory at {settings['airflow_venv']}"
        raise ClusterConfigError(
            f"{host.name} moves from {now} to Airflow {settings['airflow_version']}, but the run "
            f"leaves out {', '.join(sorted(set(left_out)))}: run the deploy without --limit, or "
            "`python -m ops upgrade`"
        )


def _install(settings, tvars, venv) -> bool:
    version = settings["airflow_version"]
    lock = lock_file(version)
    remote_lock = f"{settings['airflow_home']}/requirements-{version}.lock"
    cluster_files.put(
        name=f"requirements lock of Airflow {version}",
        src=str(lock),
        dest=remote_lock,
        user="root",
        group=settings["airflow_group"],
        mode="0644",
    )
    uv = _uv(settings, tvars)
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    if host.get_fact(Sha256File, path=installed_lock(venv)) == wanted:
        return False
    if settings["wheelhouse"]:
        _upload_wheels(lock)
    server.shell(
        name=f"install Airflow {version} from the lock"
        + (" (wheelhouse, no index)" if settings["wheelhouse"] else " (package index)"),
        commands=install_commands(venv, remote_lock, uv,
                                  WHEELHOUSE if settings["wheelhouse"] else None,
                                  tvars["release"].python),
    )
    return True


_PLATFORMS: dict[str, Platform] = {}


def _platform() -> Platform:
    """The host's Python platform, asked once per run (for uv's binary and the wheels)."""
    if host.name not in _PLATFORMS:
        python = host_release().python
        _PLATFORMS[host.name] = Platform.of(host.name, host.get_fact(SystemPython, python=python))
    return _PLATFORMS[host.name]


def _uv(settings, tvars) -> str:
    """uv, which installs the lock (cluster/airflow_lock.py), from the control machine, and
    its environment; the path of its binary."""
    cluster_files.template(
        name="uv's environment (trust store, cache, proxy)",
        src="templates/etc/airflow-cluster/uv.env.j2",
        dest=UV_ENV,
        mode="0600",
        **tvars,
    )
    uv = uv_path(settings["uv_version"])
    # Versioned: present means this release (no checksum of 40 MB on every run).
    if not host.get_fact(File, path=uv):
        cluster_files.put(
            name=f"uv {settings['uv_version']} (from the control machine)",
            src=str(uv_binary(settings["uv_version"], _platform())),
            dest=uv,
            mode="0755",
        )
    files.directory(name="no uv venv (earlier deploys installed uv with pip)", path=OLD_UV_VENV,
                    present=False)
    return uv


def _upload_wheels(lock) -> None:
    """The lock's wheels this host lacks, from the control machine's wheelhouse
    (cluster/wheelhouse.py): one tar, unpacked file by file into WHEELHOUSE."""
    on_host = host.get_fact(FindFiles, path=WHEELHOUSE, maxdepth=1)
    count, upload = missing_upload(lock, _platform(), on_host)
    files.directory(name="wheelhouse", path=WHEELHOUSE, mode="0700")
    if upload is None:
        return
    cluster_files.put(
        name=f"the wheels of {lock.name} this host lacks (of {count})",
        src=str(upload),
        dest=UPLOAD,
        mode="0600",
    )
    server.shell(name="wheels into the wheelhouse", commands=unpack_commands())


def _configure(run, settings, tvars) -> tuple:
    home, group = settings["airflow_home"], settings["airflow_group"]
    config = cluster_files.template(
        name="airflow.cfg (holds secrets: 0640)",
        src="templates/opt/airflow/airflow.cfg.j2",
        dest=f"{home}/airflow.cfg",
        user="root",
        group=group,
        mode="0640",
        **tvars,
    )
    ca = _lb_ca(run.tls.ca, settings, tvars["packaging"].ca_bundle)
    # Logs live in airflow_log_dir (writable); AIRFLOW_HOME/logs leads there.
    files.link(name="AIRFLOW_HOME/logs", path=f"{home}/logs", target=settings["airflow_log_dir"])
    environment = cluster_files.template(
        name="environment of the Airflow processes",
        src="templates/opt/airflow/environment.j2",
        dest=f"{home}/environment",
        user="root",
        group=group,
        mode="0640",
        **tvars,
    )
    cluster_files.template(
        name="airflow CLI wrapper (runs as the airflow user)",
        src="templates/usr/local/bin/airflow.j2",
        dest="/usr/local/bin/airflow",
        mode="0755",
        **tvars,
    )
    cluster_files.template(
        name="database helper of the deploy",
        src="templates/usr/local/sbin/airflow-cluster-db.j2",
        dest=airflow_db.HELPER,
        mode="0750",
        installed_lock=INSTALLED_LOCK,
        **tvars,
    )
    return (config, ca, environment)


def _lb_ca(ca, settings, system_bundle):
    """The CA the Task SDK trusts for the Execution API behind the load balancer ([api]
    ssl_ca_file): the generated or supplied lb CA (`ca`, a file on the control machine), or
    the system trust store when the lb certificate is publicly trusted (`ca` None)."""
    dest = f"{settings['airflow_home']}/lb-ca.pem"
    if ca is None:
        return files.link(
            name="load balancer CA: the system trust store",
            path=dest,
            target=system_bundle,
        )
    return cluster_files.put(
        name="load balancer CA",
        src=str(ca),
        dest=dest,
        user="root",
        group=settings["airflow_group"],
        mode="0644",
    )


def _synced(name, src: Path, dest: str, settings):
    """`dest` holds exactly the files of the control machine's folder `src` (root-owned,
    readable by the airflow group). Files are uploaded only when they differ, so an
    unchanged folder changes nothing and makes Airflow parse or load nothing again."""
    return files.sync(
        name=name,
        src=f"{src}/",
        dest=dest,
        user="root",
        group=settings["airflow_group"],
        mode="0640",
        dir_mode="0750",
        delete=True,
        exclude=["*.pyc"],
        exclude_dir=["__pycache__", "*/__pycache__"],  # the pattern matches one level
    )


def _dags(dags: DagSources, settings):
    """The dags-folder bundle. The DAG processors see a new or deleted file at their next
    bundle refresh (dag_bundle_refresh_interval) and re-parse a changed one (newer mtime)."""
    _synced("DAGs (dags_dir)", dags.dags_dir, f"{settings['airflow_home']}/dags", settings)


def _plugins(dags: DagSources, settings):
    """plugins_dir on every Airflow host; when a plugin changes, services restart."""
    return _synced(
        "plugins (plugins_dir)", dags.plugins_dir, f"{settings['airflow_home']}/plugins", settings
    )


def _git_access(run, settings) -> tuple:
    """What the Airflow processes need to read dags_git_url: git, and over SSH the key and the
    Git server's host keys (cluster/dag_sources.py); each file gone when not needed any more.
    The operations on files the running processes read."""
    git = run.cluster.dags.git
    if git is None:
        files.directory(name="no Git DAG bundle: no deploy key", path=HOST_GIT_DIR,
                        present=False)
        return ()
    # git and ssh: installed with the host's packages (tasks/packages.py).
    group = settings["airflow_group"]
    files.directory(name="Git DAG bundle credentials", path=HOST_GIT_DIR, user="root",
                    group=group, mode="0750")
    key = known_hosts = None
    if run.dags_git_key:
        # validated_file: never printed, not even with --diff.
        key = validated_file(name="Git deploy key", content=run.dags_git_key.read_text(),
                             dest=HOST_GIT_KEY, user="root", group=group, mode="0640")
    else:
        files.file(name="no Git deploy key", path=HOST_GIT_KEY, present=False)
    if git.known_hosts:
        known_hosts = cluster_files.put(name="Git server host keys", src=str(git.known_hosts),
                                dest=HOST_GIT_KNOWN_HOSTS, mode="0644")
    else:
        files.file(name="no pinned Git host keys", path=HOST_GIT_KNOWN_HOSTS, present=False)
    return tuple(op for op in (key, known_hosts) if op is not None)


def database_host(cluster) -> str | None:
    """The host that checks and migrates the database in this run: the first API server or
    scheduler host of the run (a `--limit` run included), in inventory order; None when the
    run has none (`--limit worker`: worker hosts cannot open the metadata database)."""
    active = set(inventory.get_active_hosts())  # a set: its order is not the inventory's
    for candidate in inventory:
        if candidate in active and cluster.node(candidate.name).control_plane:
            return candidate.name
    return None


def _database(run, venv, reinstalled, upgrade):
    on, python = database_host(run.cluster), f"{venv}/bin/python"
    schedulers = run.cluster.groups["scheduler"]
    # Cluster-wide: the same admin whichever host a --limit run checks the database from.
    admin = run.cluster.settings["airflow_admin_user"]
    airflow_db.migrated(
        name="airflow db migrate (one host, before any service restarts)",
        on=on,
        python=python,
        admin_user=admin,
        conn=run.connections.sql_alchemy_conn,
        reinstalled=reinstalled,
        upgrade=(list(schedulers), list(SCHEDULER_UNITS)) if upgrade else None,
    )
    airflow_db.admin_user(
        name=f"admin user {admin!r}: created once, password from the secrets file",
        on=on,
        python=python,
        user=admin,
        email=run.cluster.settings["airflow_admin_email"],
        password=run.secrets["admin_password"],
    )


# --- helpers of the role tasks (web, scheduler, worker) -------------------------------------


def unit_files(unit, tvars, template=None) -> tuple:
    """Render /etc/systemd/system/<unit> and its drop-in (user, environment, sandbox); the
    two operations."""
    unit_op = cluster_files.template(
        name=f"unit {unit}",
        src=template or f"templates/etc/systemd/system/{unit}.j2",
        dest=f"{UNIT_DIR}/{unit}",
        mode="0644",
        **tvars,
    )
    drop_in = cluster_files.template(  # its directory made by the operation (mkdir -p: 0755)
        name=f"{unit}: user, environment and sandbox",
        src=DROP_IN_TEMPLATE,
        dest=f"{UNIT_DIR}/{unit}.d/10-airflow-cluster.conf",
        mode="0644",
        **tvars,
    )
    return (unit_op, drop_in)


def rolling_restart_if(unit, restart_if):
    """The `_if` of `unit`'s restart, one host at a time: `restart_if()` where the unit runs.
    Where it does not (a first deploy, a stopped service), its `running and enabled` operation
    starts it next, on every host at once. systemd re-reads the unit files first either way."""
    systemd.daemon_reload(name=f"systemd re-reads {unit} if its files changed", _if=restart_if)

    def restart():
        return restart_if() and host.get_fact(SystemdStatus, services=[unit]).get(unit, False)

    return restart


def service(unit, restart_if):
    """`unit` running and enabled. When `restart_if()` (its config, the lock, a plugin or its
    unit files changed in this run: Changes.restart_if) and it runs: restarted first, one host
    at a time; the API server and scheduler units start only once healthy, so that is a
    rolling restart."""
    systemd.service(
        name=f"{unit} restarted if its config, lock, plugins or unit changed, one host at a time",
        service=unit,
        running=True,
        restarted=True,
        _serial=True,
        _if=rolling_restart_if(unit, restart_if),
    )
    systemd.service(name=f"{unit} running and enabled", service=unit, running=True, enabled=True)
