"""The pinned Airflow requirements lock every Airflow host installs (files/airflow/), and the
versioned virtualenv it is installed into."""

from pathlib import Path

from .errors import ClusterConfigError
from .paths import PROJECT_DIR


def shipped_versions(project_dir=None) -> list[str]:
    """The Airflow versions with a shipped lock, sorted as text."""
    locks = (Path(project_dir or PROJECT_DIR) / "files" / "airflow").glob("requirements-*.lock")
    return sorted(p.name.removeprefix("requirements-").removesuffix(".lock") for p in locks)


def lock_file(version: str, project_dir=None) -> Path:
    """The shipped lock of Airflow `version`; it must pin apache-airflow to that version."""
    project = Path(project_dir or PROJECT_DIR)
    path = project / "files" / "airflow" / f"requirements-{version}.lock"
    if not path.is_file():
        shipped = [f"requirements-{v}.lock" for v in shipped_versions(project)]
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


# Where a venv records the lock it was filled from: the install runs again only when the
# shipped lock differs from it.
INSTALLED_LOCK = "airflow-cluster-installed.lock"


def installed_lock(venv: str) -> str:
    return f"{venv}/{INSTALLED_LOCK}"


# uv, in a venv of its own: the deploy installs setting uv_version there with pip
# (tasks/airflow.py).
UV_VENV = "/opt/airflow-cluster/uv"
UV = f"{UV_VENV}/bin/uv"
# uv's environment: proxy, trust store, cache (templates/etc/airflow-cluster/uv.env.j2). uv
# reads no pip.conf.
UV_ENV = "/etc/airflow-cluster/uv.env"


def install_commands(venv: str, remote_lock: str) -> list[str]:
    """Shell commands that fill the existing `venv` with exactly the lock uploaded to
    `remote_lock` (the deploy's and `python -m ops upgrade`'s install)."""
    python = f"{venv}/bin/python"
    return [
        f"{{ [ -x {UV} ] && [ -f {UV_ENV} ]; }} || "
        f"{{ echo 'uv is not installed: run the deploy first' >&2; exit 1; }}",
        # Exactly the lock: no resolution, no constraints file from the internet. Compiled
        # now: the airflow user cannot write bytecode into the root-owned venv, and every
        # process would compile Airflow again when it starts.
        f". {UV_ENV} && {UV} pip install --python {python} --no-deps --compile-bytecode "
        f"--no-progress --quiet -r {remote_lock}",
        f"{UV} pip check --python {python} --quiet",
        # Recorded last: an interrupted install is retried by the next run.
        f"install -m 0644 {remote_lock} {installed_lock(venv)}",
    ]
