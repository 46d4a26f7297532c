"""The lab hosts' only way out: Debian's tinyproxy as an allow-listing forward proxy.

Renders tinyproxy.conf and its filter file into the lab dir, runs `tinyproxy -d` (foreground,
so the pid we record is tinyproxy's) as a detached daemon whose stdout is the lab's proxy log.
apt uses plain http with absolute URIs; pip uses CONNECT to port 443.
"""

import os
import shutil
import socket
import sys
import time

from lab import processes
from lab.errors import LabError
from lab.paths import LabPaths

HTTP_PORT = 80
CONNECT_PORT = 443
# tinyproxy resolves the upstream name for every request. This machine's resolver drops part
# of a burst of lookups (of 30 at once, 16 answered after glibc's 5 s retry), so ten hosts'
# apt runs went in 5 s steps; glibc's own option makes the retry 1 s (measured: the same 30
# lookups 0 or 1.0 s).
RESOLVER_OPTIONS = "timeout:1 attempts:5"


def render_filter(allowed_hosts: list[str], http_port: int = HTTP_PORT,
                  connect_port: int = CONNECT_PORT) -> str:
    # FilterURLs: a rule sees the whole request target, so it can pin the port too (a host
    # rule alone would let `GET http://pypi.org:25/` through). The target is
    # `http://HOST[:80]/path` for plain http and `HOST[:443]` for CONNECT. Nothing but
    # `:port`, `/` or the end may follow the name: `http://pypi.org@evil.test/` goes to evil.test.
    lines = ["# Rendered by lab/tinyproxy.py: one rule per allowed host, ERE, whole target."]
    for host in allowed_hosts:
        name = host.replace(".", r"\.")  # host names are [a-z0-9.-]: only dots need escaping
        lines.append(f"^(http://{name}(:{http_port})?(/|$)|{name}(:{connect_port})?$)")
    return "\n".join(lines) + "\n"


def render_config(paths: LabPaths, listen: str, port: int, clients: str,
                  connect_port: int = CONNECT_PORT) -> str:
    return f"""\
# Rendered by lab/tinyproxy.py; rewritten on every `lab up`.
User nobody
Group nogroup
Listen {listen}
Port {port}
Allow {clients}
# No LogFile: tinyproxy logs to stdout, which is {paths.proxy_log.name}. Connect is the
# lowest level that logs each request line (with its Connect/Established lines).
LogLevel Connect
MaxClients 100
Timeout 600
# Only what the filter file allows; the filter runs before any name is resolved.
FilterDefaultDeny Yes
FilterURLs Yes
FilterType ere
Filter "{paths.proxy_filter}"
ConnectPort {connect_port}
"""


def _is_lab_proxy(pid: int, argv: list[str] | None, paths: LabPaths) -> bool:
    """tinyproxy with this lab dir's config."""
    return bool(argv) and argv[0].endswith("tinyproxy") and str(paths.proxy_config) in argv


def proxy_pids(paths: LabPaths) -> list[int]:
    """The pid-file proxy, and any other proxy of this lab (a killed run's)."""
    pids = {pid for pid, argv in processes.iter_processes() if _is_lab_proxy(pid, argv, paths)}
    pid = processes.read_pid_file(paths.proxy_pid)
    if pid and _is_lab_proxy(pid, processes.cmdline(pid), paths):
        pids.add(pid)
    return sorted(pids)


def _listening(address: str, port: int) -> bool:
    """A TCP socket listens on address:port (IPv4). Read from /proc rather than connecting:
    tinyproxy logs an error for every connection that closes without a request."""
    local = f"{int.from_bytes(socket.inet_aton(address), sys.byteorder):08X}:{port:04X}"
    with open("/proc/net/tcp") as table:
        return any(f[1] == local and f[3] == "0A" for f in (line.split() for line in table))


def start_proxy(paths: LabPaths, listen: str, port: int, clients: str, allowed_hosts: list[str],
                *, http_port: int = HTTP_PORT, connect_port: int = CONNECT_PORT) -> int:
    """Start tinyproxy on listen:port for clients (a network), to allowed_hosts only.
    The ports are parameters for the tests only: the lab allows 80 (http) and 443 (CONNECT)."""
    binary = shutil.which("tinyproxy")
    if binary is None:
        raise LabError("tinyproxy is not installed (make system-deps installs it)")
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.proxy_filter.write_text(render_filter(allowed_hosts, http_port, connect_port))
    paths.proxy_config.write_text(render_config(paths, listen, port, clients, connect_port))
    argv = [binary, "-d", "-c", str(paths.proxy_config)]
    pid = processes.start_detached(argv, paths.proxy_log, paths.proxy_pid, cwd=paths.root,
                                   env={**os.environ, "RES_OPTIONS": RESOLVER_OPTIONS})
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _listening(listen, port):
            return pid
        if not processes.is_alive(pid):
            break
        time.sleep(0.1)
    log = paths.proxy_log.read_text(errors="replace") if paths.proxy_log.exists() else ""
    raise LabError(f"tinyproxy did not start listening on {listen}:{port}:\n{log[-2000:]}")


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
