"""The hosts as the operations commands reach them: pyinfra's own connections (the inventory's
SSH settings, `_sudo` and the rest of its connector arguments), several hosts at once.

A host that cannot be connected to is recorded with pyinfra's reason (`unreachable`), never
raised: the commands name it in their report and go on with the others.
"""

import gevent
from pyinfra.api import Config, FactBase, State
from pyinfra.api.exceptions import ConnectError

from operations import remote


class FactFailed(Exception):
    """A fact's command failed on a host that could be connected to."""


class Session:
    """pyinfra's State over `inventory`; hosts are connected on first use."""

    def __init__(self, inventory):
        config = Config()
        config.CONNECT_TIMEOUT = 10
        self.state = State(inventory, config)
        self.inventory = inventory
        # Host name -> why it could not be connected to.
        self.unreachable: dict[str, str] = {}

    def host(self, name):
        return self.inventory.get_host(name)

    def reachable(self, name) -> bool:
        """Connect `name` unless it is; False (reason in `unreachable`) when that fails."""
        host = self.host(name)
        if host.connected:
            return True
        if name in self.unreachable:
            return False
        try:
            host.connect(show_errors=False, raise_exceptions=True)
        except ConnectError as error:
            self.unreachable[name] = str(error.args[0] if error.args else error)
            return False
        except Exception as error:  # noqa: BLE001 - any failure to connect is the finding
            self.unreachable[name] = f"{type(error).__name__}: {error}"
            return False
        if not host.connected:
            self.unreachable[name] = "cannot connect"
            return False
        self.state.activate_host(host)
        return True

    def connect(self, names) -> list[str]:
        """Connect `names` at once; those that answer."""
        self.each(names, self.reachable)
        return [name for name in names if name not in self.unreachable]

    def each(self, names, function) -> dict:
        """{name: function(name)} for every name, run at once (greenlets)."""
        greenlets = {name: gevent.spawn(function, name) for name in names}
        gevent.joinall(list(greenlets.values()))
        return {name: greenlet.get() for name, greenlet in greenlets.items()}

    def run(self, name, command, timeout=60) -> remote.Result:
        """`command` on host `name` (as root, like the deploy); its output captured."""
        if not self.reachable(name):
            return remote.Result(False, [], [f"unreachable: {self.unreachable[name]}"])
        return remote.run(self.state, self.host(name), command, timeout=timeout)

    def fact(self, name, cls: type[FactBase], timeout=60, **kwargs):
        """pyinfra fact `cls` of host `name`: its command run and its output processed as
        pyinfra does, except that a command that fails raises FactFailed (and Unreachable a
        host that cannot be connected to) instead of giving the fact's default: a host that
        stops answering is not a host whose services are missing."""
        if not self.reachable(name):
            raise remote.Unreachable(f"{name}: {self.unreachable[name]}")
        fact = cls()
        command = fact.command(**kwargs) if callable(fact.command) else fact.command
        result = remote.run(self.state, self.host(name), command, timeout=timeout)
        if not result.ok:
            raise FactFailed(f"{name}: {cls.__name__}: {result.error}")
        return fact.process(result.stdout) if result.stdout else fact.default()

    def close(self) -> None:
        for host in self.inventory:
            if host.connected:
                host.disconnect()
