"""The pinned Airflow requirements lock every Airflow host installs (files/airflow/), and the
versioned virtualenv it is installed into.

A lock pins every distribution Airflow needs (`name==version`, an environment marker where one
applies) with the sha256 of each of its files on the package index, so a host installs exactly
these files whether they come from the index or the wheelhouse (cluster/wheelhouse.py).
`make lock-hashes` adds the hashes to a lock (uv pip compile --generate-hashes --no-deps).
"""

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .errors import ClusterConfigError
from .paths import PROJECT_DIR

HASH_OPTION = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class LockedPin:
    """One line of a lock: a distribution (PEP 503-normalized name), its version, its marker,
    and the sha256 of every file of it the lock accepts."""

    name: str
    version: str
    marker: Marker | None
    hashes: frozenset[str]

    def applies(self, environment: dict) -> bool:
        """Whether a host with these marker variables (facts/python.py) installs it."""
        return self.marker is None or self.marker.evaluate(environment)


def locked_pins(path: Path) -> list[LockedPin]:
    """The pins of the lock at `path`, in its order. A line that is not `name==version`
    (plus a marker and hashes) is an error: a lock must not leave anything to resolve."""
    text = re.sub(r"\\\n", " ", path.read_text())  # continuation lines
    pins = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = HASH_OPTION.sub("", line).strip()
        try:
            parsed = Requirement(requirement)
        except InvalidRequirement as error:
            raise ClusterConfigError(f"{path.name}: {requirement!r} is not a requirement: {error}")
        specs = list(parsed.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or parsed.extras or parsed.url:
            raise ClusterConfigError(f"{path.name}: {requirement!r} is not a pin (name==version)")
        pins.append(LockedPin(canonicalize_name(parsed.name), specs[0].version, parsed.marker,
                              frozenset(HASH_OPTION.findall(line))))
    return pins


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
    pins = {(pin.name, pin.version) for pin in locked_pins(path)}
    if ("apache-airflow", version) not in pins:
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


# uv's environment: trust store, cache, proxy for the index mode
# (templates/etc/airflow-cluster/uv.env.j2). uv reads no pip.conf.
UV_ENV = "/etc/airflow-cluster/uv.env"


def venv_command(uv: str, venv: str, system_python: str = "python3") -> str:
    """An empty venv at `venv` on the host's `system_python` (the release's interpreter,
    cluster/systems.py), made by uv when it has none: no python3-venv package (ensurepip) on
    the host and no pip in the venv, as uv installs."""
    return (f"[ -x {venv}/bin/python ] || {uv} venv --quiet --no-config --no-python-downloads "
            f"--python {system_python} {venv}")


def uv_install_command(uv: str, python: str, remote_lock: str, wheelhouse: str | None) -> str:
    """uv filling the venv of `python` with exactly the lock: no resolution, every file's hash
    checked against the lock. From the folder `wheelhouse` with no index at all, or (None)
    from the package index. Bytecode compiled now: the airflow user cannot write it into the
    root-owned venv, and every process would compile Airflow again when it starts."""
    args = [uv, "pip", "install", "--python", python, "--no-deps", "--require-hashes",
            "--compile-bytecode", "--no-progress", "--quiet"]
    if wheelhouse:
        args += ["--offline", "--no-index", "--find-links", wheelhouse]
    return " ".join(args + ["-r", remote_lock])


def install_commands(venv: str, remote_lock: str, uv: str, wheelhouse: str | None,
                     system_python: str = "python3") -> list[str]:
    """Shell commands that fill `venv` (made first on `system_python` if missing) with exactly
    the lock uploaded to `remote_lock` (the deploy's and `python -m ops upgrade`'s install),
    with the uv binary `uv` (cluster/wheelhouse.py)."""
    python = f"{venv}/bin/python"
    return [
        f"{{ [ -x {uv} ] && [ -f {UV_ENV} ]; }} || "
        f"{{ echo '{uv} is not installed: run the deploy first' >&2; exit 1; }}",
        venv_command(uv, venv, system_python),
        f". {UV_ENV} && {uv_install_command(uv, python, remote_lock, wheelhouse)}",
        f"{uv} pip check --python {python} --quiet",
        # Recorded last: an interrupted install is retried by the next run.
        f"install -m 0644 {remote_lock} {installed_lock(venv)}",
    ]
