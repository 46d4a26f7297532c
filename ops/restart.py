"""`python -m ops restart ROLE [--limit HOST,...] [-y]`: a rolling restart of a role's services,
one host at a time, each healthy again before the next; the first failure stops it, naming the
host and what was and was not restarted.

    web        each API server drained in every lb host's HAProxy, restarted, ready again
               and counted UP by each HAProxy (operations/api_server.py: the deploy's own)
    scheduler  scheduler, DAG processor and triggerer; the scheduler counts as started once
               its health server answers (its unit), all three must then stay active
    worker     the running worker instances by Celery's warm shutdown (running tasks finish
               first), the log server and the autoscaler; then every instance the host should
               run is up and its Celery worker answers
"""

import time

import click
from pyinfra.api import StringCommand

from autoscaler import paths as autoscaler_paths
from cluster.services import API_SERVER, ROLE_UNITS, SCHEDULER_UNITS, WORKER_INSTANCES
from facts.cluster_status import AutoscalerStatus, ServiceStates
from operations import api_server

from .context import OpsContext
from .session import Session
from .workers import yes_option

ROLES = ("web", "scheduler", "worker")
# Seconds a restarted host may take to be healthy again.
HEALTHY_TIMEOUT = 300
# Seconds its services must stay active after the restart (a crash at start shows by then).
SETTLE = 5


class RestartFailed(Exception):
    pass


def say(line: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')} {line}")


@click.command("restart")
@click.argument("role", type=click.Choice(ROLES))
@click.option("--limit", "limit", default=None, metavar="HOST,...",
              help="Only these hosts of the role (in inventory order).")
@yes_option
@click.pass_obj
def command(ops: OpsContext, role: str, limit: str | None, yes: bool) -> None:
    """Restart ROLE's services host by host, each healthy before the next."""
    inventory, cluster = ops.load(None)
    hosts = _hosts(cluster.groups[role], limit, role)
    if not yes:
        click.confirm(f"Restart {role} on {', '.join(hosts)}, one host at a time?", abort=True)
    session = Session(inventory)
    try:
        needed = hosts + (list(cluster.groups["lb"]) if role == "web" else [])
        session.connect(needed)
        if session.unreachable:
            raise click.ClickException(
                "nothing restarted: cannot reach " + "; ".join(
                    f"{name} ({why})" for name, why in session.unreachable.items()))
        done = []
        for number, name in enumerate(hosts, 1):
            say(f"[{number}/{len(hosts)}] {name}: restarting {role}")
            try:
                RESTARTS[role](session, cluster, name)
            except Exception as error:  # noqa: BLE001 - every failure stops the roll here
                left = hosts[number:]
                raise click.ClickException(
                    f"stopped at {name}: {error}. Restarted: {', '.join(done) or 'none'}; "
                    f"not restarted: {', '.join(left) or 'none'}") from error
            done.append(name)
            say(f"[{number}/{len(hosts)}] {name}: healthy")
    finally:
        session.close()
    say(f"{role} restarted on {len(hosts)} host(s)")


def _hosts(members, limit, role) -> list[str]:
    if not members:
        raise click.UsageError(f"the inventory has no {role} host")
    if limit is None:
        return list(members)
    wanted = [name.strip() for name in limit.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in members]
    if unknown or not wanted:
        raise click.BadParameter(
            f"{', '.join(unknown) or limit!r}: not a {role} host ({role} hosts: "
            f"{', '.join(members)})", param_hint="--limit")
    return [name for name in members if name in wanted]


def _restart_web(session: Session, cluster, name) -> None:
    data = session.host(name).data
    api_server.restart_drained(
        session.state, session.host(name), list(cluster.groups["lb"]), API_SERVER,
        drain_timeout=data.get("api_drain_timeout"), up_timeout=data.get("api_start_timeout"),
        say=lambda line: say(f"  {line}"),
    )
    settled(session, name, ROLE_UNITS["web"])


def _restart_scheduler(session: Session, cluster, name) -> None:
    systemctl(session, name, "restart", *SCHEDULER_UNITS)
    settled(session, name, SCHEDULER_UNITS)


def _restart_worker(session: Session, cluster, name) -> None:
    say("  worker instances: warm shutdown (running tasks finish first), then start")
    systemctl(session, name, "try-restart", WORKER_INSTANCES, *ROLE_UNITS["worker"])
    settled(session, name, ROLE_UNITS["worker"])
    deadline = time.monotonic() + HEALTHY_TIMEOUT
    while True:
        status = session.fact(name, AutoscalerStatus, command=str(autoscaler_paths.COMMAND))
        problem = _worker_problem(status)
        if problem is None:
            return
        if time.monotonic() > deadline:
            raise RestartFailed(problem)
        time.sleep(2)


def _worker_problem(status) -> str | None:
    if "error" in status:
        return f"autoscaler: {status['error']}"
    wanted = status["fixed_instances"] if status["mode"] == "fixed" else status["min_instances"]
    if status["mode"] == "drained":
        wanted = 0
    if len(status["running"]) < wanted:
        return f"{len(status['running'])} worker instance(s) running, {wanted} wanted"
    celery = status.get("celery") or {}
    if "error" in celery:
        return f"Celery: {celery['error']}"
    silent = [worker for worker, answer in celery.items() if not answer["online"]]
    return f"Celery workers not answering: {', '.join(silent)}" if silent else None


def systemctl(session: Session, name, *args) -> None:
    """`systemctl ARGS` on `name`. A failed start is not the end: the units restart on failure
    (systemd sometimes fails a start at once, e.g. 219/CGROUP while the old process's cgroup
    is still being torn down), so whether they came up is for `settled` to say."""
    result = session.run(name, StringCommand("systemctl", *args), timeout=3600)
    if not result.ok:
        say(f"  {name}: systemctl {' '.join(args)}: {result.error} (waiting for systemd's retry)")


def settled(session: Session, name, units, timeout=HEALTHY_TIMEOUT) -> None:
    """Every unit of `units` active, and still active SETTLE seconds later, within `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        states = session.fact(name, ServiceStates, patterns=list(units))
        down = {unit: states.get(unit, "missing") for unit in units
                if states.get(unit) != "active"}
        if not down:
            time.sleep(SETTLE)
            states = session.fact(name, ServiceStates, patterns=list(units))
            if all(states.get(unit) == "active" for unit in units):
                return
        elif time.monotonic() > deadline:
            raise RestartFailed(", ".join(f"{unit} {state}" for unit, state in down.items()))
        time.sleep(2)


RESTARTS = {"web": _restart_web, "scheduler": _restart_scheduler, "worker": _restart_worker}
