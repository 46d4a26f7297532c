"""Starting, finding and stopping the lab proxy (lab/proxy.py) as a detached daemon."""

import socket
import sys
import time
from pathlib import Path

from lab import processes
from lab.errors import LabError
from lab.paths import LabPaths

PROXY_SCRIPT = Path(__file__).resolve().parent / "proxy.py"


def _is_lab_proxy(pid: int, argv: list[str] | None, paths: LabPaths) -> bool:
    """A lab/proxy.py process of this lab dir (started with the lab dir as its cwd)."""
    if not argv or not any(arg.endswith("lab/proxy.py") for arg in argv[:3]):
        return False
    try:
        return Path(f"/proc/{pid}/cwd").resolve() == paths.root.resolve()
    except OSError:
        return False


def proxy_pids(paths: LabPaths) -> list[int]:
    """The pid-file proxy, and any other proxy of this lab (a killed run's)."""
    pids = {pid for pid, argv in processes.iter_processes() if _is_lab_proxy(pid, argv, paths)}
    pid = processes.read_pid_file(paths.proxy_pid)
    if pid and _is_lab_proxy(pid, processes.cmdline(pid), paths):
        pids.add(pid)
    return sorted(pids)


def _listening(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def start_proxy(paths: LabPaths, listen: str, port: int, allowed_hosts: list[str]) -> int:
    argv = [sys.executable, str(PROXY_SCRIPT), "--listen", listen, "--port", str(port)]
    for host in allowed_hosts:
        argv += ["--allow", host]
    pid = processes.start_detached(argv, paths.proxy_log, paths.proxy_pid, cwd=paths.root)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _listening(listen, port):
            return pid
        if not processes.is_alive(pid):
            break
        time.sleep(0.1)
    log = paths.proxy_log.read_text(errors="replace") if paths.proxy_log.exists() else ""
    raise LabError(f"the lab proxy did not start listening on {listen}:{port}:\n{log[-2000:]}")


def stop_proxy(paths: LabPaths) -> None:
    processes.terminate(proxy_pids(paths), timeout=5)
    paths.proxy_pid.unlink(missing_ok=True)


def proxy_state(paths: LabPaths, listen: str, port: int) -> dict:
    pids = proxy_pids(paths)
    running = bool(pids) and _listening(listen, port)
    return {
        "state": "running" if running else "stopped",
        "address": f"{listen}:{port}",
        "pid": pids[0] if pids else None,
    }
