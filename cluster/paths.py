"""Where the project lives, and how relative paths in settings are resolved."""

from pathlib import Path

# The directory holding deploy.py, inventory.py and group_data/.
PROJECT_DIR = Path(__file__).resolve().parent.parent


def project_path(path, project_dir=None) -> Path:
    """`path` as an absolute path; a relative one is taken from the project dir."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    return Path(project_dir or PROJECT_DIR).resolve() / path
