"""`python -m lab up|down|status|ssh HOST [CMD...]|console HOST CMD...|kill|stop|start|
isolate|heal HOST`: a thin click layer over lab.api."""

import json
import os
import sys
from contextlib import contextmanager

import click

from lab import api
from lab.errors import LabError
from lab.paths import DEFAULT_INVENTORY

inventory_option = click.option(
    "--inventory", "inventory", type=click.Path(dir_okay=False), default=None,
    help=f"pyinfra inventory file listing the lab hosts [default: {DEFAULT_INVENTORY}]",
)


def _inventory(ctx: click.Context, own: str | None) -> str:
    # Accepted before or after the command name: `lab --inventory X up` or `lab up --inventory X`.
    return own or ctx.obj or str(DEFAULT_INVENTORY)


@click.group()
@inventory_option
@click.pass_context
def main(ctx: click.Context, inventory: str | None) -> None:
    """Local lab of systemd-nspawn hosts for the Airflow deploy (LAB_DIR: state dir)."""
    ctx.obj = inventory


@main.command()
@inventory_option
@click.option("--timeout", type=float, default=api.DEFAULT_BOOT_TIMEOUT, show_default=True,
              help="seconds to wait for every host to answer SSH")
@click.option("--fresh", is_flag=True,
              help="wipe every host's disk and boot all from the base image")
@click.pass_context
def up(ctx, inventory, timeout, fresh):
    """Boot every inventory host (no-op if the lab is already up). Stopped or killed hosts
    boot on their own disks; only --fresh (or `down`) starts from the base image."""
    with _errors():
        result = api.up(_inventory(ctx, inventory), timeout=timeout, fresh=fresh)
    _print_status(result)


def _host_command(name, function, help_text, **options):
    @main.command(name=name, help=help_text)
    @inventory_option
    @click.argument("host")
    @click.pass_context
    def command(ctx, inventory, host):
        with _errors():
            function(host, _inventory(ctx, inventory), **options)

    return command


@main.command()
@inventory_option
@click.argument("hosts", nargs=-1, required=True)
@click.pass_context
def kill(ctx, inventory, hosts):
    """Pull the plugs of HOSTS at the same moment: every process dies at once, no shutdown."""
    with _errors():
        api.kill(*hosts, inventory_path=_inventory(ctx, inventory))


_host_command("stop", api.stop, "Shut HOST down cleanly; its disk stays.")
_host_command("start", api.start, "Boot HOST again on its disk, as it was.")
_host_command("isolate", api.isolate, "Cut HOST off the lab network (a partition).")
_host_command("heal", api.heal, "Put an isolated HOST back on the lab network.")


@main.command()
@inventory_option
def down(inventory):
    """Stop every lab host and the proxy, remove the bridge and upper dirs."""
    with _errors():
        api.down()


@main.command()
@inventory_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def status(ctx, inventory, as_json):
    """Each host's address, state and SSH reachability; bridge and proxy."""
    with _errors():
        result = api.status(_inventory(ctx, inventory))
    if as_json:
        click.echo(json.dumps(result, indent=2))
    else:
        _print_status(result)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@inventory_option
@click.argument("host")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def ssh(ctx, inventory, host, command):
    """Open a shell on HOST, or run COMMAND there (like ssh)."""
    with _errors():
        interactive = not command and sys.stdin.isatty()
        argv = api.ssh_argv(host, _inventory(ctx, inventory), interactive=interactive)
    os.execvp(argv[0], argv + list(command))


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@inventory_option
@click.argument("host")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def console(ctx, inventory, host, command):
    """Run COMMAND inside HOST through its namespaces, not the network (reaches an isolated
    host), e.g. `python -m lab console redis1 redis-cli ping`."""
    with _errors():
        argv = api.console_argv(host, _inventory(ctx, inventory))
    os.execvp(argv[0], argv + list(command))


@contextmanager
def _errors():
    """LabError -> a clean CLI error (message, exit status 1) instead of a traceback."""
    try:
        yield
    except LabError as error:
        raise click.ClickException(str(error))


def _print_status(result: dict) -> None:
    width = max(len(host["name"]) for host in result["hosts"])
    for host in result["hosts"]:
        ssh = "ssh ok" if host["ssh"] else "no ssh"
        click.echo(f"{host['name']:<{width}}  {host['address']:<15}  {host['state']:<8}  {ssh}"
                   + ("" if host.get("disk", True) else "  (no disk)"))
    if result.get("suite"):
        click.echo(f"hosts run Debian {result['suite']}")
    bridge, proxy = result["bridge"], result["proxy"]
    click.echo(f"bridge {bridge['name']}: {bridge['state']} {bridge['address'] or ''}".rstrip())
    click.echo(f"proxy {proxy['address']}: {proxy['state']}")
