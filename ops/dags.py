"""`python -m ops dags`: the DAGs Airflow knows, by bundle, and the DAG files it could not
import, read from the REST API at the public URL (as the admin user of the secrets file).

Exit 0 when every DAG file imports, 1 when some do not (each named with its error), 2 when the
API cannot be asked."""

import json

import click

from cluster import secret_store

from .airflow_api import AirflowApi, ApiError
from .context import OpsContext


@click.command("dags")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON document instead.")
@click.pass_obj
def command(ops: OpsContext, as_json: bool) -> None:
    """List the DAGs and the DAG import errors."""
    _, cluster = ops.load(None)
    secrets = secret_store.load(cluster.settings["secrets_file"], project_dir=ops.project_dir)
    try:
        api = AirflowApi.of(cluster)
        api.login(secrets["admin_password"])
        dags = api.collection("/api/v2/dags?order_by=dag_id", "dags")
        errors = api.collection("/api/v2/importErrors?order_by=filename", "import_errors")
    except (ApiError, OSError) as e:
        error = click.ClickException(f"the API at {cluster.public_url} cannot be asked: {e}")
        error.exit_code = 2
        raise error from e
    report = summary(dags, errors)
    click.echo(json.dumps(report, indent=2) if as_json else render(report))
    if report["import_errors"]:
        raise SystemExit(1)


def summary(dags, errors) -> dict:
    """The stable document of `--json`: every DAG and every import error."""
    return {
        "dags": [
            {
                "dag_id": d["dag_id"],
                "bundle": d.get("bundle_name"),
                "paused": d.get("is_paused"),
                "stale": d.get("is_stale"),
                "last_parsed": d.get("last_parsed_time"),
            }
            for d in dags
        ],
        "import_errors": [
            {
                "bundle": e.get("bundle_name"),
                "file": e.get("filename"),
                "error": (e.get("stack_trace") or "").strip(),
                "since": e.get("timestamp"),
            }
            for e in errors
        ],
    }


def render(report) -> str:
    lines = [f"DAGs ({len(report['dags'])})"]
    for dag in report["dags"]:
        state = "stale" if dag["stale"] else "paused" if dag["paused"] else "active"
        lines.append(f"  {dag['dag_id']:<40} {dag['bundle'] or '-':<14} {state}")
    errors = report["import_errors"]
    lines += ["", f"Import errors ({len(errors)})" if errors else "Import errors: none"]
    for error in errors:
        last = error["error"].splitlines()[-1] if error["error"] else "(no message)"
        lines.append(f"  {error['bundle'] or '-'}: {error['file']}: {last}")
    return "\n".join(lines)
