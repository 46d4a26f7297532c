"""What the operator asked of this host, kept across restarts and reboots: the state file
(JSON, written whole and atomically). The operations commands (`python -m ops scale|autoscale|
drain|undrain`) change it through this host's `airflow-cluster-autoscaler`; the daemon reads
it every round. A missing file means autoscaling (the deploy never writes it, so a re-run
resets nothing).

    {"mode": "auto"}                       autoscaling
    {"mode": "fixed", "instances": 3}      autoscaling off, this many instances
    {"mode": "drained", "before": {...}}   left alone; `undrain` goes back to `before`
"""

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
    return _mode(raw, path), _mode(raw["before"], path) if raw.get("before") else None


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
