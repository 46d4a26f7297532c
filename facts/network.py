"""Facts about a host's network: which interface holds an address, and on which network
(keepalived's VRRP interface on the lb hosts and the check that the VIP is on that network,
tasks/lb.py)."""

import ipaddress
import shlex

from pyinfra.api import FactBase, StringCommand


class InterfaceOfAddress(FactBase):
    """{"interface": name, "network": "a.b.c.0/24"}: the interface holding `address` and the
    network of that address as configured there; None when no interface holds it."""

    def requires_command(self, *args, **kwargs):
        return "ip"

    def command(self, address):
        return StringCommand("ip", "-o", "addr", "show", "to", shlex.quote(address))

    def process(self, output):
        for line in output:
            fields = line.split()
            if len(fields) > 3:
                return {
                    "interface": fields[1].split("@")[0],
                    "network": str(ipaddress.ip_interface(fields[3]).network),
                }
        return None
