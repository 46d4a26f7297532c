"""`python -m ops upgrade --version X [--dry] [-y]`: a rolling Airflow upgrade (or a move to
another release with the same database schema), in the order Airflow requires:

1. install X on every Airflow host into a venv of its own (<airflow_venv>-X, from the shipped
   lock files/airflow/requirements-X.lock, its wheels uploaded first with setting wheelhouse),
   beside the running one, all hosts at once;
2. stop every scheduler, DAG processor and triggerer; `airflow db migrate` once, with X; if it
   fails, start them again on the old version and stop here (operations/airflow_upgrade.py);
3. switch the airflow_venv symlink to X on every Airflow host, and record
   `airflow_version = "X"` in the group_data file that sets it, so the next deploy keeps X;
   start the schedulers, DAG processors and triggerers, one host at a time;
4. roll the API servers, each drained in HAProxy (operations/api_server.py);
5. roll the workers: each host drained (running tasks finish), its log server and autoscaler
   restarted, undrained (its instances start on X).

`--dry` prints this plan for the inventory and changes nothing. The first failure stops the
upgrade and says where: before the migration nothing has changed but the new venvs; a failed
migration starts the schedulers again on the old version; after it, the schedulers are started
on what the hosts select and a re-run (or the deploy, which restarts what still runs the old
venv) finishes the rolls. A worker host the upgrade drained is undrained whatever happens.
"""

import hashlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
from pyinfra.facts.files import FindFiles, Link, Sha256File
from pyinfra.facts.server import LinuxDistribution

from autoscaler import paths as autoscaler_paths
from cluster.airflow_lock import install_commands, installed_lock, lock_file, versioned_venv
from cluster.groups import AIRFLOW_GROUPS
from cluster.model import Cluster
from cluster.wheelhouse import UPLOAD, WHEELHOUSE, Platform, missing_upload, unpack_commands
from cluster.wheelhouse import uv_path
from cluster.services import ROLE_UNITS, SCHEDULER_UNITS
from cluster.systems import system_of
from facts.cluster_status import AutoscalerStatus
from facts.python import SystemPython
from operations import remote
from operations.airflow_upgrade import UpgradeError, migrate_with_schedulers_stopped

from . import restart
from .restart import say
from .context import OpsContext
from .session import Session
from .workers import yes_option

# `airflow-cluster-autoscaler drain`: 3 when tasks outlasted the timeout and the instances
# were stopped warmly anyway (autoscaler/control.py): drained all the same.
DRAINED_AFTER_TIMEOUT = 3
VERSION_LINE = re.compile(r'^airflow_version\s*=\s*"[^"\n]*"', re.MULTILINE)


@dataclass(frozen=True)
class Step:
    title: str
    hosts: tuple[str, ...]


def airflow_hosts(cluster: Cluster) -> list[str]:
    """Every host of an Airflow group, in inventory order."""
    return [n for n, node in cluster.nodes.items() if set(AIRFLOW_GROUPS) & set(node.groups)]


def database_hosts(cluster: Cluster) -> list[str]:
    """The hosts that may open the metadata database (API server and scheduler hosts), in
    inventory order: worker hosts hold no password of it."""
    return [n for n, node in cluster.nodes.items() if node.control_plane]


def plan(cluster: Cluster, version: str) -> list[Step]:
    """The steps of an upgrade to `version`, in order (see the module docstring)."""
    venv = versioned_venv(cluster.settings["airflow_venv"], version)
    hosts = tuple(airflow_hosts(cluster))
    schedulers, web, workers = (tuple(cluster.groups[g]) for g in ("scheduler", "web", "worker"))
    return [
        Step(f"install Airflow {version} into {venv} (the running venv untouched)", hosts),
        Step("stop the schedulers, DAG processors and triggerers", schedulers),
        Step(f"airflow db migrate with {version} (on failure: start the old version again)",
             tuple(database_hosts(cluster)[:1])),
        Step(f"switch {cluster.settings['airflow_venv']} to {venv}", hosts),
        Step(f'record airflow_version = "{version}" in group_data', ()),
        Step("start the schedulers, DAG processors and triggerers, one host at a time",
             schedulers),
        Step("restart the API servers one at a time, drained in HAProxy", web),
        Step("drain, restart and undrain the worker hosts one at a time", workers),
    ]


@click.command("upgrade")
@click.option("--version", "version", required=True, help="Airflow version to run (a shipped lock).")
@click.option("--dry", is_flag=True, help="Print the plan; change nothing.")
@yes_option
@click.pass_obj
def command(ops: OpsContext, version: str, dry: bool, yes: bool) -> None:
    """Upgrade Airflow on every host, rolling, in the order Airflow requires."""
    inventory, cluster = ops.load(None)
    lock = lock_file(version, ops.project_dir)  # ClusterConfigError: no such lock
    version_file = _version_file(ops.project_dir)
    steps = plan(cluster, version)
    if dry:
        for number, step in enumerate(steps, 1):
            where = f" [{', '.join(step.hosts)}]" if step.hosts else ""
            click.echo(f"{number}. {step.title}{where}")
        return
    if not yes:
        click.confirm(f"Upgrade every Airflow host to {version}?", abort=True)
    session = Session(inventory)
    try:
        _upgrade(session, cluster, version, lock, lambda: _record(version_file, version))
    except Exception as error:  # noqa: BLE001 - every failure is reported, never a traceback
        raise click.ClickException(f"upgrade stopped: {error}") from error
    finally:
        session.close()
    say(f"Airflow {version} runs on every host; airflow_version recorded in {version_file}")


def _upgrade(session: Session, cluster: Cluster, version: str, lock: Path, record) -> None:
    settings = cluster.settings
    link, venv = settings["airflow_venv"], versioned_venv(settings["airflow_venv"], version)
    hosts = airflow_hosts(cluster)
    session.connect(hosts + list(cluster.groups["lb"]))
    if session.unreachable:
        raise UpgradeError("nothing changed: cannot reach " + "; ".join(
            f"{name} ({why})" for name, why in session.unreachable.items()))
    in_use = session.each(hosts, lambda name: session.fact(name, Link, path=link))
    not_links = [name for name, target in in_use.items() if not target]
    if not_links:
        raise UpgradeError(f"nothing changed: {link} is not a symlink to a versioned venv on "
                           f"{', '.join(not_links)}: run the deploy first")
    say("in use: " + ", ".join(f"{n} {v['link_target']}" for n, v in in_use.items()))

    if all(target["link_target"] == venv for target in in_use.values()):
        # A re-run after a failure in the rolls: installed and migrated already.
        say(f"every host already selects {venv}: rolling the services only")
        record()
        _roll(session, cluster)
        return

    say(f"1. installing Airflow {version} into {venv} on {len(hosts)} hosts")
    # Each host's system asked once, before any install (an unsupported one stops it here).
    pythons = session.each(hosts, lambda name: _python(session, name))
    uploads = _wheel_uploads(session, pythons, lock) if settings["wheelhouse"] else {}
    failures = {n: e for n, e in session.each(hosts, lambda name: _install(
        session, name, settings, version, venv, lock, uploads.get(name), pythons[name])
    ).items() if e}
    if failures:
        raise UpgradeError("install failed, nothing else changed: " + "; ".join(
            f"{n}: {e}" for n, e in failures.items()))

    schedulers = [session.host(n) for n in cluster.groups["scheduler"]]
    say("2. schedulers stopped, database migrated")
    migrate_with_schedulers_stopped(session.state, session.host(hosts[0]), f"{venv}/bin/python",
                                    schedulers, SCHEDULER_UNITS,
                                    say=lambda line: say(f"   {line}"))

    say(f"3. switching {link} to {venv}")
    try:
        for name in hosts:
            _checked(session, name, f"ln -sfn {shlex.quote(venv)} {shlex.quote(link)}.new && "
                                    f"mv -T {shlex.quote(link)}.new {shlex.quote(link)}")
    except UpgradeError as error:
        for name in cluster.groups["scheduler"]:
            restart.systemctl(session, name, "start", *SCHEDULER_UNITS)
        raise UpgradeError(f"{error} (the database is migrated; the schedulers were started "
                           "again on what each host selects: run the upgrade again)") from error
    record()
    _roll(session, cluster)


def _roll(session: Session, cluster: Cluster) -> None:
    """The starts of step 3, steps 4 and 5: every service on the venv the symlink selects."""
    for name in cluster.groups["scheduler"]:
        say(f"   {name}: (re)starting {', '.join(SCHEDULER_UNITS)}")
        restart.RESTARTS["scheduler"](session, cluster, name)
    say("4. API servers, one at a time, drained in HAProxy")
    for name in cluster.groups["web"]:
        say(f"   {name}")
        restart.RESTARTS["web"](session, cluster, name)
    say("5. worker hosts, one at a time: drain, restart, undrain")
    for name in cluster.groups["worker"]:
        _roll_worker(session, name)


def _wheel_uploads(session: Session, pythons: dict[str, str],
                   lock: Path) -> dict[str, Path | None]:
    """Per host (-> the interpreter its venv is made from), the bundle of the lock's wheels it
    lacks (None: it has them all), as the deploy uploads them (cluster/wheelhouse.py). One host
    after another: hosts of one platform share the control machine's downloads."""
    uploads = {}
    for name, python in pythons.items():
        platform = Platform.of(name, session.fact(name, SystemPython, python=python))
        on_host = session.fact(name, FindFiles, path=WHEELHOUSE, maxdepth=1)
        uploads[name] = missing_upload(lock, platform, on_host)[1]
    return uploads


def _python(session: Session, name) -> str:
    """The interpreter Airflow's venv is made from on host `name` (cluster/systems.py)."""
    return system_of(name, session.fact(name, LinuxDistribution)).python


def _install(session: Session, name, settings, version, venv, lock: Path,
             upload: Path | None, python: str) -> str | None:
    """Airflow `version` in `venv` (made on the system interpreter `python`) on host `name` (as
    tasks/airflow.py installs it), with the wheels of `upload` added to its wheelhouse first;
    None when done, else the error."""
    wanted = hashlib.sha256(lock.read_bytes()).hexdigest()
    if session.fact(name, Sha256File, path=installed_lock(venv)) == wanted:
        return None
    remote_lock = f"{settings['airflow_home']}/requirements-{version}.lock"
    if not remote.put(session.state, session.host(name), str(lock), remote_lock):
        return f"upload of {lock.name} failed"
    commands = [
        f"chgrp {shlex.quote(settings['airflow_group'])} {remote_lock} && chmod 0644 {remote_lock}",
    ]
    if upload:
        commands.insert(0, f"mkdir -p -m 0700 {WHEELHOUSE}")
        if not remote.put(session.state, session.host(name), str(upload), UPLOAD):
            return "upload of the wheels failed"
        commands += unpack_commands()
    wheelhouse = WHEELHOUSE if settings["wheelhouse"] else None
    commands += install_commands(venv, remote_lock, uv_path(settings["uv_version"]), wheelhouse,
                                 python)
    result = session.run(name, " && ".join(commands), timeout=1800)
    return None if result.ok else result.error


def _roll_worker(session: Session, name) -> None:
    """Drain the host (its instances stop once their tasks finish), restart its log server
    and autoscaler on the new venv, undrain it (the autoscaler starts instances on the new
    venv). A host the operator had drained stays drained; one this drained is undrained
    whatever fails."""
    command = str(autoscaler_paths.COMMAND)
    drained_before = session.fact(name, AutoscalerStatus, command=command).get("mode") == "drained"
    try:
        if not drained_before:
            say(f"   {name}: draining (running tasks finish first)")
            _checked(session, name, f"{command} drain || [ $? -eq {DRAINED_AFTER_TIMEOUT} ]",
                     timeout=7200)
        say(f"   {name}: log server and autoscaler restarted on the new version")
        restart.systemctl(session, name, "restart", *ROLE_UNITS["worker"])
        restart.settled(session, name, ROLE_UNITS["worker"])
    finally:
        if not drained_before:
            say(f"   {name}: undraining")
            _checked(session, name, f"{command} undrain", timeout=600)


def _checked(session: Session, name, command: str, timeout=600) -> None:
    result = session.run(name, command, timeout=timeout)
    if not result.ok:
        raise UpgradeError(f"{name}: {command}: {result.error}")


def _version_file(project_dir: Path) -> Path:
    """The one group_data file that sets airflow_version (the upgrade records X there)."""
    files = [p for p in sorted((project_dir / "group_data").glob("*.py"))
             if VERSION_LINE.search(p.read_text())]
    if len(files) != 1:
        raise click.ClickException(
            "airflow_version must be set in exactly one group_data file to record the upgrade; "
            f"found in: {', '.join(p.name for p in files) or 'none'}")
    return files[0]


def _record(path: Path, version: str) -> None:
    text = path.read_text()
    path.write_text(VERSION_LINE.sub(f'airflow_version = "{version}"', text, count=1))
