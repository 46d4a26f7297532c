"""HAProxy's runtime API on the lb hosts (the root-only socket haproxy.cfg declares), as the
deploy's and `python -m ops restart`'s rolling restarts of API servers use it: drain a server
before its restart (no new request goes to it, the ones under way finish), ready it after.

Commands reach the socket with netcat (a base package: netcat-openbsd, or Ncat on the RHEL
family). A host whose HAProxy is not running yet (the first deploy installs HAProxy after the
API servers) has no socket: there is nothing to drain there, and its answer says so ({}).
"""

import csv
import shlex
import time

from . import remote

SOCKET = "/run/haproxy/admin.sock"
# The backend of the API servers in haproxy.cfg.
BACKEND = "api_servers"
# What `answer` prints when the socket is absent (HAProxy not running on the host).
NO_SOCKET = "NO-HAPROXY-SOCKET"
# States `set server ... state` takes.
ADMIN_STATES = ("ready", "drain", "maint")


def command(runtime_command: str) -> str:
    """A shell command sending `runtime_command` to the socket and printing the answer. The
    host's nc closes its side once the command is sent: OpenBSD's (Debian family) with -N,
    Ncat (RHEL family) by default, where -N is no option."""
    return (f"if [ -S {SOCKET} ]; then nc='nc -N'; "
            f"nc --version 2>&1 | grep -q Ncat && nc=nc; echo {shlex.quote(runtime_command)} | "
            f"$nc -U {SOCKET}; else echo {NO_SOCKET}; fi")


def parse_servers(lines) -> dict[str, dict]:
    """{server: {"status": "UP" | "DOWN" | "DRAIN" | "MAINT" | ..., "sessions": current}} of
    BACKEND's API servers from the CSV of `show stat` (not the unchecked backup entries of
    haproxy.cfg's panic mode); {} when HAProxy is not running."""
    if not lines or lines[0].strip() == NO_SOCKET:
        return {}
    header = lines[0].lstrip("# ").strip()
    rows = csv.DictReader([header, *(line for line in lines[1:] if line.strip())])
    return {
        row["svname"]: {"status": row["status"], "sessions": int(row["scur"] or 0)}
        for row in rows
        if row.get("pxname") == BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")
        and row.get("bck") != "1"
    }


def servers(state, lb_host) -> dict[str, dict]:
    """The API servers as `lb_host`'s HAProxy sees them (parse_servers)."""
    result = remote.run(state, lb_host, command("show stat"), timeout=20)
    if not result.ok:
        raise RuntimeError(f"{lb_host.name}: HAProxy's runtime API: {result.error}")
    return parse_servers(result.stdout)


def set_state(state, lb_host, server: str, admin_state: str) -> bool:
    """Set `server`'s admin state in `lb_host`'s HAProxy; False when that HAProxy does not
    run or does not know the server yet (a host new to the web group)."""
    assert admin_state in ADMIN_STATES
    result = remote.run(
        state, lb_host, command(f"set server {BACKEND}/{server} state {admin_state}"), timeout=20
    )
    answer = " ".join(line.strip() for line in result.stdout if line.strip())
    if not result.ok:
        raise RuntimeError(f"{lb_host.name}: set {server} {admin_state}: {result.error}")
    if answer == NO_SOCKET or answer.startswith("No such"):
        return False
    if answer:
        raise RuntimeError(f"{lb_host.name}: set {server} {admin_state}: {answer}")
    return True


def drain(state, lb_hosts, server: str, timeout: float, say=print) -> None:
    """`server` drained in every lb host's HAProxy, then wait (up to `timeout` s) until no
    request is under way on it in any of them. Says so when no other API server is UP in an
    HAProxy (its clients then see errors until `server` is back)."""
    for lb in lb_hosts:
        others = {name: s["status"] for name, s in servers(state, lb).items() if name != server}
        if others and "UP" not in others.values():
            say(f"{lb.name}: no other API server is UP ({others}): requests fail until "
                f"{server} is back")
    drained = [lb for lb in lb_hosts if set_state(state, lb, server, "drain")]
    deadline = time.monotonic() + timeout
    while drained:
        busy = {lb.name: servers(state, lb).get(server, {}).get("sessions", 0) for lb in drained}
        busy = {name: sessions for name, sessions in busy.items() if sessions}
        if not busy:
            return
        if time.monotonic() > deadline:
            say(f"{server}: requests still under way after {timeout:.0f} s ({busy}): going on")
            return
        time.sleep(0.5)


def ready(state, lb_hosts, server: str, timeout: float) -> None:
    """`server` ready again in every lb host's HAProxy, and counted UP by each (its health
    checks pass); RuntimeError after `timeout` s."""
    known = [lb for lb in lb_hosts if set_state(state, lb, server, "ready")]
    deadline = time.monotonic() + timeout
    while known:
        known = [lb for lb in known if servers(state, lb).get(server, {}).get("status") != "UP"]
        if not known:
            return
        if time.monotonic() > deadline:
            names = ", ".join(lb.name for lb in known)
            raise RuntimeError(f"{server} not UP in the HAProxy of {names} after {timeout:.0f} s")
        time.sleep(0.5)


def set_ready_anyway(state, lb_hosts, server: str, say=print) -> None:
    """`server` ready in every HAProxy that answers, after a failed restart: what fails here
    is said, not raised (the restart's own failure is the one to report)."""
    for lb in lb_hosts:
        try:
            set_state(state, lb, server, "ready")
        except Exception as error:  # noqa: BLE001 - best effort, see the docstring
            say(f"{lb.name}: {server} could not be set ready again: {error}")
