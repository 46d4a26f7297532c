"""What the operator asked of this host, kept across restarts and reboots: the state file
(JSON, written whole and atomically). The operations commands (`python -m ops scale|autoscale|
drain|undrain`) change it through this host's `airflow-cluster-autoscaler`; the daemon reads
it every round. A missing file means autoscaling (the deploy never writes it, so a re-run
resets nothing).

    {"mode": "auto"}                       autoscaling
    {"mode": "fixed", "instances": 3}      autoscaling off, this many instances
    {"mode": "drained", "before": {...}}   left alone; `undrain` goes back to `before`
"""

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path

from .decision import AUTO, DRAINED, FIXED, Mode


class StateError(Exception):
    pass


def load(path: Path) -> tuple[Mode, Mode | None]:
    """(mode, the mode before the drain or None)."""
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return Mode(AUTO), None
    except ValueError as e:
        raise StateError(f"{path}: not JSON ({e})") from e
    if not isinstance(raw, dict):
        raise StateError(f"{path}: not a JSON object")
    before = raw.get("before")
    return _mode(raw, path), _mode(before, path) if isinstance(before, dict) else None


@contextlib.contextmanager
def locked(path: Path):
    """Held by the daemon for a whole round and by a command while it changes the mode and
    looks at the instances: neither acts on what the other is changing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f".{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save(path: Path, mode: Mode, before: Mode | None = None) -> None:
    document = _document(mode)
    if before is not None:
        document["before"] = _document(before)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(document, out)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)


def _document(mode: Mode) -> dict:
    if mode.kind == FIXED:
        return {"mode": FIXED, "instances": mode.instances}
    return {"mode": mode.kind}


def _mode(raw: dict, path: Path) -> Mode:
    kind = raw.get("mode")
    if kind == FIXED and isinstance(raw.get("instances"), int) and raw["instances"] >= 0:
        return Mode(FIXED, raw["instances"])
    if kind in (AUTO, DRAINED):
        return Mode(kind)
    raise StateError(f"{path}: unknown mode {raw!r}")
