"""The wheelhouse: the files a host installs Airflow from, fetched once by the control machine.

With setting `wheelhouse` on (the default), the control machine downloads the wheels of the
lock for the hosts' platform (`pip download`, only those missing from its cache), checks each
against the lock's sha256 hashes, and uploads to each Airflow host the ones it lacks (one tar,
unpacked into WHEELHOUSE); the host installs with `uv pip install --offline --no-index
--find-links WHEELHOUSE --require-hashes`: no package index, no proxy. Wheels stay on the host
for the next version's install (~75 MB per Airflow version).

uv itself is shipped the same way in both modes: its binary, taken from uv's wheel for the
host's architecture, uploaded as UV_DIR/uv-<uv_version>.

The cache is .cache/wheelhouse/<platform>/ in the project, one folder per Python ABI, glibc
and architecture, shared by every lock (a new Airflow version downloads only what changed).
"""

import hashlib
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from gevent.lock import RLock
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import Version

from .airflow_lock import LockedPin, locked_pins
from .errors import ClusterConfigError
from .paths import PROJECT_DIR

CACHE = PROJECT_DIR / ".cache" / "wheelhouse"
# On each Airflow host (root-owned; only root's uv reads it).
WHEELHOUSE = "/var/cache/airflow-cluster/wheelhouse"
# Where an upload is unpacked before its wheels are moved into WHEELHOUSE one by one, so an
# interrupted unpack never leaves a truncated wheel there.
INCOMING = "/var/cache/airflow-cluster/wheelhouse.incoming"
UPLOAD = "/var/cache/airflow-cluster/wheelhouse-upload.tar"
UV_DIR = "/opt/airflow-cluster"
# Bundles of a cache folder older than this are deleted when a new one is made.
BUNDLE_MAX_AGE = 24 * 3600
PIP_TIMEOUT = 1800


def uv_path(uv_version: str) -> str:
    """The uv binary on a host: versioned, so a new uv_version lands beside the old one and
    checking that the file exists is enough."""
    return f"{UV_DIR}/uv-{uv_version}"


@dataclass(frozen=True)
class Platform:
    """What decides which wheels run on a host: its Python, C library and architecture
    (facts/python.py SystemPython)."""

    markers: dict
    glibc: tuple[int, int]

    @classmethod
    def of(cls, host_name: str, fact: dict | None) -> "Platform":
        if fact is None:
            raise ClusterConfigError(
                f"{host_name} has no python3: Airflow runs on the system Python; install it first")
        libc, version = fact["libc"]
        if libc != "glibc":
            raise ClusterConfigError(f"{host_name}: C library {libc or 'unknown'}, not glibc: "
                                     "no wheels of the lock run there")
        major, minor = (int(part) for part in version.split(".")[:2])
        return cls(markers=fact["markers"], glibc=(major, minor))

    @property
    def python(self) -> str:
        return self.markers["python_version"]  # "3.11"

    @property
    def machine(self) -> str:
        return self.markers["platform_machine"]  # "x86_64"

    @property
    def key(self) -> str:
        """Its cache folder's name, e.g. cp311-manylinux_2_36_x86_64."""
        return f"cp{self.python.replace('.', '')}-manylinux_{self.glibc[0]}_{self.glibc[1]}_{self.machine}"

    def platform_tags(self) -> list[str]:
        """The manylinux tags that run on this glibc, newest first (pip download does not
        expand them itself): PEP 600's manylinux_2_N and the older aliases of PEP 513/571/599."""
        arch = self.machine
        tags = [f"manylinux_2_{minor}_{arch}" for minor in range(self.glibc[1], 4, -1)]
        if self.glibc >= (2, 17):
            tags.append(f"manylinux2014_{arch}")
        if arch in ("x86_64", "i686"):
            if self.glibc >= (2, 12):
                tags.append(f"manylinux2010_{arch}")
            tags.append(f"manylinux1_{arch}")
        return tags


# One host at a time in a platform's folder: pyinfra prepares every host at once (a greenlet
# each), and two `pip download`s of one wheel into one folder replace each other's file (seen
# on a cold cache: FileNotFoundError from pip's copy). The next host then finds it there.
_FOLDER_LOCKS: dict[Path, RLock] = {}


def _folder_lock(folder: Path) -> RLock:
    return _FOLDER_LOCKS.setdefault(folder, RLock())


def wheels_for(lock: Path, platform: Platform, cache: Path = CACHE) -> list[Path]:
    """The wheel of every pin of `lock` that applies on `platform`, from the cache, the missing
    ones downloaded first; each one's sha256 is one the lock accepts."""
    pins = [pin for pin in locked_pins(lock) if pin.applies(platform.markers)]
    folder = cache / platform.key
    with _folder_lock(folder):
        found = verified_wheels(pins, folder)
        missing = [pin for pin in pins if pin not in found]
        if missing:
            _download(missing, platform, folder, what=f"the wheels of {lock.name}")
            found = verified_wheels(pins, folder)
            missing = [pin for pin in pins if pin not in found]
    if missing:
        raise ClusterConfigError(
            f"{lock.name}: no wheel for {platform.key} matches the lock's hashes: "
            + ", ".join(f"{pin.name}=={pin.version}" for pin in missing))
    return [found[pin] for pin in pins]


def verified_wheels(pins: list[LockedPin], folder: Path) -> dict[LockedPin, Path]:
    """The wheel in `folder` of each pin whose sha256 the lock accepts (a file with another
    hash, from a changed lock or a broken download, is not one)."""
    by_release: dict[tuple, list[Path]] = {}
    for path in sorted(folder.glob("*.whl")) if folder.is_dir() else []:
        try:
            name, version, _build, _tags = parse_wheel_filename(path.name)
        except InvalidWheelFilename:
            continue
        by_release.setdefault((name, version), []).append(path)
    found = {}
    for pin in pins:
        for path in by_release.get((pin.name, Version(pin.version)), []):
            if _sha256(path) in pin.hashes:
                found[pin] = path
                break
    return found


_SHA256: dict[tuple, str] = {}


def _sha256(path: Path) -> str:
    """sha256 of a file, remembered for the run (every host checks the same wheels)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256:
        with path.open("rb") as file:
            _SHA256[key] = hashlib.file_digest(file, "sha256").hexdigest()
    return _SHA256[key]


def _download(pins: list[LockedPin], platform: Platform, folder: Path, what: str) -> None:
    """pip download of exactly these pins (with their hashes, markers already evaluated for
    the host: pip would evaluate them for the control machine's Python)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{pin.name}=={pin.version}" + "".join(f" --hash=sha256:{h}" for h in sorted(pin.hashes))
             for pin in pins]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=folder) as requirements:
        requirements.write("\n".join(lines) + "\n")
        requirements.flush()
        _pip_download(["--require-hashes", "-r", requirements.name], platform, folder, what)


def _pip_download(args: list[str], platform: Platform, folder: Path, what: str) -> None:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
               "--no-deps", "--only-binary=:all:", "--implementation", "cp",
               "--python-version", platform.python, "--dest", str(folder)]
    for tag in platform.platform_tags():
        command += ["--platform", tag]
    try:
        subprocess.run(command + args, check=True, capture_output=True, text=True,
                       timeout=PIP_TIMEOUT)
    except subprocess.CalledProcessError as error:
        tail = "\n".join((error.stderr or error.stdout).strip().splitlines()[-5:])
        raise ClusterConfigError(f"could not download {what} for {platform.key}:\n{tail}")
    except subprocess.TimeoutExpired:
        raise ClusterConfigError(f"downloading {what} for {platform.key} took over "
                                 f"{PIP_TIMEOUT} s")


def uv_binary(uv_version: str, platform: Platform, cache: Path = CACHE) -> Path:
    """uv's binary for the host's architecture, taken from its wheel (downloaded once)."""
    folder = cache / platform.key
    binary = folder / f"uv-{uv_version}"
    with _folder_lock(folder):
        if binary.is_file():
            return binary
        folder.mkdir(parents=True, exist_ok=True)
        wheels = list(folder.glob(f"uv-{uv_version}-*.whl"))
        if not wheels:
            _pip_download([f"uv=={uv_version}"], platform, folder, what=f"uv {uv_version}")
            wheels = list(folder.glob(f"uv-{uv_version}-*.whl"))
        member = f"uv-{uv_version}.data/scripts/uv"
        with zipfile.ZipFile(wheels[0]) as wheel, tempfile.NamedTemporaryFile(
                dir=folder, delete=False) as out:
            out.write(wheel.read(member))
        Path(out.name).chmod(0o755)
        Path(out.name).rename(binary)  # whole or not at all
        return binary


def missing_upload(lock: Path, platform: Platform, on_host: list[str],
                   cache: Path = CACHE) -> tuple[int, Path | None]:
    """For a host whose WHEELHOUSE holds the files `on_host` (paths, as pyinfra's FindFiles
    answers): how many wheels the lock has for it, and the bundle of those it lacks (None: it
    has them all). The deploy and `ops upgrade` both upload this."""
    wheels = wheels_for(lock, platform, cache)
    present = {PurePosixPath(path).name for path in on_host}
    missing = [wheel for wheel in wheels if wheel.name not in present]
    return len(wheels), (bundle(missing, wheels[0].parent) if missing else None)


def bundle(wheels: list[Path], folder: Path) -> Path:
    """One uncompressed tar of `wheels` (already compressed) to upload, made once per set of
    wheels and kept in `folder`/bundles for every host that lacks the same set."""
    names = sorted(w.name for w in wheels)
    digest = hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]
    bundles = folder / "bundles"
    path = bundles / f"{digest}.tar"
    if path.is_file():
        return path
    bundles.mkdir(parents=True, exist_ok=True)
    for old in bundles.glob("*.tar"):
        if time.time() - old.stat().st_mtime > BUNDLE_MAX_AGE:
            old.unlink(missing_ok=True)
    with tempfile.NamedTemporaryFile(dir=bundles, suffix=".part", delete=False) as part:
        with tarfile.open(fileobj=part, mode="w") as tar:
            for wheel in sorted(wheels):
                tar.add(wheel, arcname=wheel.name)
    Path(part.name).rename(path)
    return path


def unpack_commands() -> list[str]:
    """Shell commands that move the wheels of UPLOAD into WHEELHOUSE (each file whole)."""
    return [
        f"rm -rf {INCOMING} && mkdir -m 0700 {INCOMING}",
        f"tar -x --no-same-owner -f {UPLOAD} -C {INCOMING}",
        f"find {INCOMING} -maxdepth 1 -name '*.whl' -exec mv -t {WHEELHOUSE} {{}} +",
        f"rm -rf {INCOMING} {UPLOAD}",
    ]
