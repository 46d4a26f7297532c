"""The rolling restart of an API server, drained in HAProxy: the deploy's (tasks/web.py) and
`python -m ops restart web`'s. One operation per host, run with `_serial`, so one host at a
time goes through all of it:

1. drain: every lb host's HAProxy sends it no new request; the ones under way finish
   (up to `drain_timeout` s);
2. restart: the unit counts as started once the API server answers (its ExecStartPost);
3. ready: back in every HAProxy, and the next host waits until each counts it UP.

Clients of the public URL see no failed request. The lb hosts are reached over their own
connections (operations/remote.py), also in a run `--limit`ed to the web hosts.
"""

from pyinfra.api import FunctionCommand, StringCommand, operation

from . import haproxy, remote


def restart_drained(state, web_host, lb_names, unit, drain_timeout, up_timeout, say=print):
    """The whole restart of `unit` on `web_host` (steps 1-3 above); RuntimeError on failure.
    An lb host that cannot be reached is left out (it serves nothing); whatever fails after
    the drain, the server is set ready again in every HAProxy, so none keeps it out for good
    (one that does not answer is kept out by its health checks)."""
    lb_hosts = []
    for lb_host in (state.inventory.get_host(name) for name in lb_names):
        try:
            remote.connect(lb_host)
        except remote.Unreachable as error:
            say(f"{error}: {web_host.name} not drained there")
            continue
        lb_hosts.append(lb_host)
    try:
        haproxy.drain(state, lb_hosts, web_host.name, drain_timeout, say=say)
        result = remote.run(state, web_host, StringCommand("systemctl", "restart", unit))
        if not result.ok:
            raise RuntimeError(f"{web_host.name}: systemctl restart {unit}: {result.error}")
    except BaseException:
        haproxy.set_ready_anyway(state, lb_hosts, web_host.name, say=say)
        raise
    haproxy.ready(state, lb_hosts, web_host.name, up_timeout)


def _step(state, host, lb_names, unit, drain_timeout, up_timeout):
    """FunctionCommand body: False (the operation fails) with the reason logged."""
    try:
        restart_drained(state, host, lb_names, unit, drain_timeout, up_timeout,
                        say=lambda line: host.log(line))
    except Exception as error:  # noqa: BLE001 - reported as this operation's failure
        host.log_styled(f"drained restart failed: {error}", fg="red")
        return False
    return True


@operation(is_idempotent=False)
def restarted_drained(unit: str, lb_hosts: list[str], drain_timeout: float, up_timeout: float):
    """Restart `unit`, drained in the HAProxy of each of `lb_hosts` (see the module). Run it
    with `_serial=True`: one API server at a time."""
    yield StringCommand("systemctl", "daemon-reload")
    yield FunctionCommand(_step, (lb_hosts, unit, drain_timeout, up_timeout), {})
