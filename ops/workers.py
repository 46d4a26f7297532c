"""`python -m ops workers|scale|autoscale|drain|undrain`: the worker hosts' instances, steered
through each host's autoscaler (airflow-cluster-autoscaler, over SSH as the deploy connects).

    workers                          every worker host: mode, instances, the last decision
    scale HOST --instances N         autoscaling off on HOST, N instances (within min/max)
    autoscale on|off HOST            off: the current count stays fixed
    drain HOST [--timeout S]         stop consuming, wait for the running tasks, stop the
                                     instances (warmly); the autoscaler leaves HOST alone
    undrain HOST                     back to the mode HOST had before the drain

Every command but `workers` asks for confirmation unless -y. The host's exit status is
passed on (drain: 3 when the timeout passed; the instances were still stopped warmly).
"""

import json

import click

from autoscaler import paths

from . import remote
from .context import OpsContext

COMMAND = str(paths.COMMAND)


def _worker(ops: OpsContext, name: str):
    """The host data of worker host `name`, or a usage error."""
    inventory, cluster = ops.load(None)
    if name not in cluster.groups["worker"]:
        raise click.BadParameter(
            f"{name!r} is not a worker host (worker hosts: {', '.join(cluster.groups['worker'])})",
            param_hint="HOST",
        )
    return inventory.get_host(name).data


def _run_on(name, data, *args) -> None:
    done = remote.run(name, data, [COMMAND, *args])
    if done.returncode:
        raise SystemExit(done.returncode)


def _confirm(yes: bool, question: str) -> None:
    if not yes:
        click.confirm(question, abort=True)


yes_option = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")


@click.command("scale")
@click.argument("host")
@click.option("--instances", type=int, required=True, help="Worker instances to run.")
@yes_option
@click.pass_obj
def scale(ops: OpsContext, host: str, instances: int, yes: bool) -> None:
    """Turn autoscaling off on HOST and run INSTANCES worker instances there."""
    data = _worker(ops, host)
    low, high = data.get("autoscale_min_instances"), data.get("autoscale_max_instances")
    if not low <= instances <= high:
        raise click.BadParameter(
            f"{instances} is outside {low}..{high} (autoscale_min/max_instances)",
            param_hint="--instances",
        )
    _confirm(yes, f"Fix {host} at {instances} worker instance(s), autoscaling off?")
    _run_on(host, data, "scale", str(instances))


@click.command("autoscale")
@click.argument("switch", type=click.Choice(["on", "off"]))
@click.argument("host")
@yes_option
@click.pass_obj
def autoscale(ops: OpsContext, switch: str, host: str, yes: bool) -> None:
    """Turn autoscaling on or off (keeping the current count) on HOST."""
    data = _worker(ops, host)
    _confirm(yes, f"Turn autoscaling {switch} on {host}?")
    _run_on(host, data, "autoscale", switch)


@click.command("drain")
@click.argument("host")
@click.option("--timeout", type=click.IntRange(0), default=None,
              help="Seconds to wait for running tasks [default: worker_stop_timeout].")
@yes_option
@click.pass_obj
def drain(ops: OpsContext, host: str, timeout: int | None, yes: bool) -> None:
    """Stop HOST's workers taking tasks, let the running ones finish, stop the instances."""
    data = _worker(ops, host)
    _confirm(yes, f"Drain {host} (its workers take no new task until undrain)?")
    args = ["drain"] + (["--timeout", str(timeout)] if timeout is not None else [])
    _run_on(host, data, *args)


@click.command("undrain")
@click.argument("host")
@yes_option
@click.pass_obj
def undrain(ops: OpsContext, host: str, yes: bool) -> None:
    """Let HOST's workers run again, in the mode it had before the drain."""
    data = _worker(ops, host)
    _confirm(yes, f"Undrain {host}?")
    _run_on(host, data, "undrain")


@click.command("workers")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead.")
@click.pass_obj
def workers(ops: OpsContext, as_json: bool) -> None:
    """Each worker host's mode, instances and the autoscaler's last decision."""
    inventory, cluster = ops.load(None)
    report, failed = {}, False
    for name in cluster.groups["worker"]:
        done = remote.run(name, inventory.get_host(name).data, [COMMAND, "status"], capture=True)
        if done.returncode:
            failed = True
            report[name] = {"error": (done.stderr or done.stdout).strip() or "unreachable"}
        else:
            report[name] = json.loads(done.stdout)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for name, status in report.items():
            click.echo(_line(name, status))
    if failed:
        raise SystemExit(2)


def _line(name, status) -> str:
    if "error" in status:
        return f"{name:<12} unreachable: {status['error']}"
    mode = status["mode"]
    if mode == "fixed":
        mode = f"fixed at {status['fixed_instances']}"
    last = status.get("last_round") or {}
    stopping = f", stopping {status['stopping']}" if status["stopping"] else ""
    return (f"{name:<12} {mode:<12} instances {status['running']}{stopping} "
            f"({status['min_instances']}..{status['max_instances']}); "
            f"last: {last.get('reason', '-')}")


COMMANDS = (workers, scale, autoscale, drain, undrain)
