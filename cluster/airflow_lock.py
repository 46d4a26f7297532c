"""The pinned Airflow requirements lock every Airflow host installs (files/airflow/), and the
versioned virtualenv it is installed into."""

from pathlib import Path

from .errors import ClusterConfigError
from .paths import PROJECT_DIR


def lock_file(version: str, project_dir=None) -> Path:
    """The shipped lock of Airflow `version`; it must pin apache-airflow to that version."""
    project = Path(project_dir or PROJECT_DIR)
    path = project / "files" / "airflow" / f"requirements-{version}.lock"
    if not path.is_file():
        shipped = sorted(p.name for p in path.parent.glob("requirements-*.lock"))
        raise ClusterConfigError(
            f"airflow_version {version!r}: no lock file {path.relative_to(project)} "
            f"(shipped: {', '.join(shipped) or 'none'})"
        )
    pins = {line.strip().lower() for line in path.read_text().splitlines()}
    if f"apache-airflow=={version}" not in pins:
        raise ClusterConfigError(f"{path.name} does not pin apache-airflow=={version}")
    return path


def versioned_venv(link: str, version: str) -> str:
    """The virtualenv Airflow `version` is installed into, beside the symlink `link`
    (setting airflow_venv) that selects the one in use: /opt/airflow/venv-3.3.2."""
    return f"{link.rstrip('/')}-{version}"
