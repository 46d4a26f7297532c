"""The `python -m ops` command group. Each command lives in its own module and is
registered in COMMANDS below."""

from pathlib import Path

import click
from pyinfra.api.exceptions import PyinfraError

from cluster.paths import PROJECT_DIR

from . import check, dags, failover_drill, restart, settings_doc, status, upgrade, workers
from .context import OpsContext

COMMANDS = (check.command, dags.command, settings_doc.command, status.command,
            restart.command, upgrade.command,
            failover_drill.command, *workers.COMMANDS)


class OpsGroup(click.Group):
    """Reports a configuration problem as one `error: ...` line and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PyinfraError as e:  # ClusterConfigError and friends: a message, not a bug
            click.echo(f"error: {e}", err=True)
            ctx.exit(1)


@click.group(cls=OpsGroup)
@click.option(
    "--project-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=PROJECT_DIR,
    show_default=True,
    help="Directory holding deploy.py and group_data/.",
)
@click.pass_context
def main(ctx: click.Context, project_dir: Path) -> None:
    """Operate the Airflow cluster described by the inventory."""
    ctx.obj = OpsContext(project_dir=project_dir.resolve())


for _command in COMMANDS:
    main.add_command(_command)
