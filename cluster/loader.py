"""Load an inventory file and the project's group_data exactly as the pyinfra CLI does,
for code that runs outside `pyinfra` (the operations CLI, tests)."""

from pathlib import Path

from pyinfra.api import State
from pyinfra.api.inventory import Inventory
from pyinfra.context import ctx_state
from pyinfra_cli.exceptions import CliError, UnexpectedExternalError
from pyinfra_cli.inventory import make_inventory

from .errors import ClusterConfigError
from .paths import PROJECT_DIR, project_path


def load_inventory(path="inventory.py", project_dir=None) -> Inventory:
    """The Inventory of `path` (relative paths: from the project dir) with group_data
    from `<project_dir>/group_data` and the inventory's own directory, like
    `pyinfra INVENTORY deploy.py` run from the project dir.

    pyinfra caches compiled files by name: in one process, a file edited after being
    loaded is not re-read.
    """
    project = Path(project_dir or PROJECT_DIR).resolve()
    inventory_file = project_path(path, project)
    # make_inventory treats a missing path as a comma-separated host list: refuse that here.
    if not inventory_file.is_file():
        raise ClusterConfigError(f"inventory file not found: {inventory_file}")

    # make_inventory executes the files through pyinfra_cli.util.exec_file, which records
    # the file being executed on the context State: give it a throwaway one.
    state = State()
    state.cwd = str(project)
    try:
        with ctx_state.use(state):
            return make_inventory(str(inventory_file), cwd=str(project))
    except UnexpectedExternalError as e:
        cause = e.exception
        raise ClusterConfigError(f"{e.filename}: {type(cause).__name__}: {cause}") from None
    except SyntaxError as e:
        raise ClusterConfigError(f"{e.filename} line {e.lineno}: {e.msg}") from None
    except CliError as e:
        raise ClusterConfigError(e.message) from None
