"""Facts about a host's network: which interface holds an address (keepalived's VRRP
interface on the lb hosts, tasks/lb.py)."""

import shlex

from pyinfra.api import FactBase, StringCommand


class InterfaceOfAddress(FactBase):
    """The network interface holding `address`, or None."""

    def requires_command(self, *args, **kwargs):
        return "ip"

    def command(self, address):
        return StringCommand("ip", "-o", "addr", "show", "to", shlex.quote(address))

    def process(self, output):
        for line in output:
            fields = line.split()
            if len(fields) > 1:
                return fields[1].split("@")[0]
        return None
