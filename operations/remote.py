"""Commands on another host of the inventory, from code that runs on the control machine in
the middle of a deploy (a FunctionCommand of one host's operation reaching the lb hosts) or in
an operations command (ops/session.py): the host's own connection and connector arguments
(`_sudo`, `_su_user`... from its data), as pyinfra's operations and facts use them."""

from dataclasses import dataclass

from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from paramiko import SSHException
from pyinfra.api.command import StringCommand


@dataclass(frozen=True)
class Result:
    ok: bool
    stdout: list[str]
    stderr: list[str]

    @property
    def error(self) -> str:
        """One line telling why it failed: the last line of stderr (or stdout)."""
        lines = [line for line in self.stderr or self.stdout if line.strip()]
        return lines[-1].strip() if lines else "failed without output"


class Unreachable(Exception):
    """The host could not be connected to."""


def connect(host) -> None:
    """Connect `host` if it is not (a --limit run leaves the other hosts unconnected)."""
    if not host.connected:
        host.connect(reason="for a step another host's operation takes on it")
    if not host.connected:
        raise Unreachable(f"{host.name}: cannot connect")


def _connector_arguments(state, host, timeout=None) -> dict:
    """The host's own connector arguments (`_sudo`, `_su_user`, ... from its data)."""
    arguments, _ = pop_global_arguments(state, host, {})
    connector_arguments = {
        key: value for key, value in arguments.items() if key in CONNECTOR_ARGUMENT_KEYS
    }
    if timeout is not None:
        connector_arguments["_timeout"] = timeout
    return connector_arguments


def run(state, host, command: StringCommand | str, timeout: int | None = None) -> Result:
    """Run `command` on `host` (connecting it first); its output is captured, not printed.
    A host that cannot be connected to, or a connection that breaks on the way, is a failed
    Result, not an exception."""
    try:
        connect(host)
    except Unreachable as error:
        return Result(False, [], [str(error)])
    if isinstance(command, str):
        command = StringCommand(command)
    try:
        ok, output = host.run_shell_command(
            command, print_output=False, print_input=False,
            **_connector_arguments(state, host, timeout),
        )
    except (TimeoutError, OSError, SSHException) as error:
        return Result(False, [], [f"{type(error).__name__}: {str(error) or 'timed out'}"])
    return Result(bool(ok), list(output.stdout_lines), list(output.stderr_lines))


def put(state, host, src: str, dest: str) -> bool:
    """Upload the control machine's file `src` to `dest` on `host`, as pyinfra's files.put
    does (with the host's `_sudo`...); False when it fails."""
    try:
        connect(host)
        return bool(host.put_file(src, dest, **_connector_arguments(state, host)))
    except (Unreachable, TimeoutError, OSError, SSHException):
        return False
