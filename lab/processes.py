"""Detached daemons with pid files, and finding processes by their command line in /proc."""

import os
import signal
import subprocess
import time
from pathlib import Path

# Popen objects of daemons started by this Python process: kept so they can be reaped
# (no zombies in a long-lived test process) and so Python does not warn about them.
_children: dict[int, subprocess.Popen] = {}


def start_detached(argv: list[str], log_path: Path, pid_path: Path, cwd: Path,
                   env: dict[str, str] | None = None) -> int:
    """Start argv in its own session, output to log_path, survive this process (with `env`,
    else this process's environment)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        child = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=env,
            start_new_session=True,
        )
    _children[child.pid] = child
    pid_path.write_text(f"{child.pid}\n")
    return child.pid


def read_pid_file(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def cmdline(pid: int) -> list[str] | None:
    """The argv of a live process, None if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    if not raw:  # zombies and kernel threads have no command line
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0")


def iter_processes():
    """(pid, argv) of every live process."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            argv = cmdline(int(entry.name))
            if argv:
                yield int(entry.name), argv


def is_alive(pid: int) -> bool:
    _reap(pid)
    return cmdline(pid) is not None


def _reap(pid: int) -> None:
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]


def terminate(pids, timeout: float) -> None:
    """SIGTERM, wait up to timeout for all to exit, then SIGKILL the rest."""
    pids = [pid for pid in set(pids) if is_alive(pid)]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        time.sleep(0.1)
        pids = [pid for pid in pids if is_alive(pid)]
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        time.sleep(0.05)
        pids = [pid for pid in pids if is_alive(pid)]


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
