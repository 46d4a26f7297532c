"""`check [INVENTORY]`: validate the cluster offline and print its topology.

No connection, no secret generation: safe to run anywhere, any time (CI, before a deploy).
"""

import textwrap
from pathlib import Path

import click

from cluster import secret_store
from cluster.dag_sources import check_local_files
from cluster.deploy_key import public_key_line
from cluster.model import Cluster
from cluster.paths import project_path

from .context import OpsContext

_LABEL_WIDTH = 15


@click.command("check")
@click.argument("inventory", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.pass_obj
def command(ops: OpsContext, inventory: Path | None) -> None:
    """Validate INVENTORY (default: inventory.py in the project dir) and group_data."""
    _, cluster = ops.load(inventory)
    check_local_files(cluster.dags)
    secrets_path = project_path(cluster.settings["secrets_file"], ops.project_dir)
    # Validates an existing secrets file too (mode, values) without creating it.
    missing = secret_store.missing_secrets(secrets_path)
    click.echo(summary(cluster, ops.inventory_path(inventory), secrets_path, missing))


def summary(cluster: Cluster, inventory: Path, secrets_path: Path, missing) -> str:
    lines = [f"Cluster is valid: {len(cluster.nodes)} hosts from {inventory}", "", "Groups"]
    for group, names in cluster.groups.items():
        members = ", ".join(f"{n} {cluster.node(n).address}" for n in names) or "(none)"
        lines.append(_row(f"  {group}", members))
    lines.append("")

    settings = cluster.settings
    redis = len(cluster.groups["redis"])
    lines.append(_row("Redis quorum", f"{cluster.broker.quorum} of {redis} sentinels "
                      f"(ports {settings['redis_port']}, {settings['sentinel_port']})"))
    db = cluster.database
    where = "external"
    if db.postgres_address:
        where = f"postgres group: {cluster.groups['postgres'][0]}"
    lines.append(_row("Database", f"{db.user}@{db.host}:{db.port}/{db.name} ({where})"))
    lines.append(_row("API backends", ", ".join(
        f"{name} {address}:{port}" for name, address, port in cluster.api_backends)))
    vip = (f"{cluster.lb_vip} (keepalived on {', '.join(cluster.groups['lb'])})"
           if cluster.lb_vip else "none (one lb host)")
    lines.append(_row("VIP", vip))
    lines.append(_row("Public URL", cluster.public_url))
    lines.append(_row("Execution API", cluster.execution_api_url))
    state = (f"{len(missing)} to generate at the next deploy" if missing else "complete")
    lines.append(_row("Secrets", f"{secrets_path} ({state})"))
    lines += _dag_lines(cluster)
    lines += _port_lines(cluster)
    return "\n".join(lines)


def _port_lines(cluster: Cluster) -> list[str]:
    """Each host's service ports (cluster/firewall.py): what the deploy's firewall admits,
    and what to open in one's own with `firewall = False`."""
    lines = ["", "Ports (TCP; each admits the hosts that use it and admin_sources, or anyone)"]
    for name, firewall in cluster.firewalls.items():
        ports = [f"{rule.port} {rule.service}" + (" (anyone)" if rule.sources is None else "")
                 for rule in firewall.rules]
        if firewall.vrrp_peers:
            ports.append(f"VRRP from {', '.join(firewall.vrrp_peers)}")
        lines.append(_row(f"  {name}", ", ".join(ports)))
    return lines


def _dag_lines(cluster: Cluster) -> list[str]:
    """Where DAGs come from and, for a Git repository over SSH, the key to register with it."""
    dags = cluster.dags
    lines = [_row("DAGs", f"{dags.dags_dir} (synced)")]
    git = dags.git
    if git is None:
        return lines
    where = f"{git.url} {git.ref}" + (f" {git.subdir}/" if git.subdir else "")
    lines.append(_row("DAG repository", where))
    if git.key_generated:
        if git.key.is_file():
            key = f"{public_key_line(git.key)} (grant it read access to {git.url})"
        else:
            key = f"generated at the next deploy into {git.key}.pub"
        lines.append(_row("Deploy key", key))
    return lines


def _row(label: str, text: str) -> str:
    return textwrap.fill(
        text, width=100, initial_indent=label.ljust(_LABEL_WIDTH),
        subsequent_indent=" " * _LABEL_WIDTH, break_on_hyphens=False,
    )
