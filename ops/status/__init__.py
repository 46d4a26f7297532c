"""`python -m ops status [--json]`: the whole cluster on one screen, as an operator checks it
after a change or an outage: every host's services, Redis as the sentinels see it (with
replication lag), HAProxy's view of the API servers and the VIP, the worker hosts' instances
and Celery workers, queued and running tasks, Airflow's own health report.

Exit status 0 when healthy, 1 when anything is degraded (each problem named), the same with
`--json` (assess.py describes the document)."""

import json

import click

from cluster import secret_store

from ..context import OpsContext
from ..session import Session
from .assess import assess
from .collect import collect
from .render import render


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print the report as a JSON document.")
@click.pass_obj
def command(ops: OpsContext, as_json: bool) -> None:
    """Every host, service, Redis, HAProxy, worker and Airflow component; exit 1 if degraded."""
    inventory, cluster = ops.load(None)
    secrets = secret_store.load(cluster.settings["secrets_file"], project_dir=ops.project_dir)
    session = Session(inventory)
    try:
        report = assess(collect(session, cluster, secrets["admin_password"]))
    finally:
        session.close()
    click.echo(json.dumps(report, indent=2) if as_json else render(report))
    if not report["healthy"]:
        raise SystemExit(1)
