"""The lab's hosts: every inventory host name and its `ssh_hostname` address."""

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from lab.errors import LabError


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str

    @property
    def machine(self) -> str:
        """The systemd-nspawn machine name (also names the host-side veth, vb-lab-NAME)."""
        return f"lab-{self.name}"


def load_hosts(inventory_path) -> list[LabHost]:
    """Load the inventory with pyinfra's own loader, so the lab sees what a deploy sees."""
    from pyinfra.api import State
    from pyinfra.context import ctx_state
    from pyinfra_cli.inventory import make_inventory

    path = Path(inventory_path).resolve()
    if not path.is_file():
        raise LabError(f"inventory not found: {path}")
    # pyinfra's file loader records the file being executed on the current State.
    with ctx_state.use(State()):
        inventory = make_inventory(str(path), cwd=str(path.parent))

    hosts = []
    for host in inventory:
        address = host.data.get("ssh_hostname")
        if not address:
            raise LabError(f"inventory host {host.name} has no ssh_hostname address")
        try:
            ipaddress.IPv4Address(address)
        except ValueError:
            raise LabError(f"inventory host {host.name}: ssh_hostname {address!r} is not an IPv4 address")
        hosts.append(LabHost(host.name, address))
    if not hosts:
        raise LabError(f"inventory {path} lists no hosts")
    return hosts


def lab_subnet(hosts: list[LabHost]) -> ipaddress.IPv4Network:
    """The one /24 every host sits in; the bridge takes its .1."""
    subnets = {ipaddress.IPv4Interface(f"{h.address}/24").network for h in hosts}
    if len(subnets) != 1:
        raise LabError(f"lab addresses must share one /24, found {sorted(map(str, subnets))}")
    subnet = subnets.pop()
    reserved = {subnet.network_address, subnet.network_address + 1, subnet.broadcast_address}
    seen = {}
    for host in hosts:
        address = ipaddress.IPv4Address(host.address)
        if address in reserved:
            raise LabError(f"{host.name}: {address} is reserved (network, bridge .1 or broadcast)")
        if address in seen:
            raise LabError(f"{host.name} and {seen[address]} share the address {address}")
        seen[address] = host.name
    return subnet


def bridge_address(subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    return subnet.network_address + 1
