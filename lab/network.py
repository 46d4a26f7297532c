"""The lab bridge, the subnet safety check, and the one host-wide sysctl the lab needs."""

import ipaddress
import json
import subprocess
from pathlib import Path

from lab.errors import LabError

VETH_PREFIX = "vb-lab-"  # systemd-nspawn names the host side of a container's veth vb-MACHINE


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _ip_json(*args: str) -> list[dict]:
    return json.loads(_ip("-j", *args).stdout or "[]")


def check_subnet_is_free(subnet: ipaddress.IPv4Network, bridge: str) -> None:
    """Refuse a lab subnet that overlaps any route of this machine (except the lab's bridge)."""
    for route in _ip_json("-4", "route", "show", "table", "all"):
        dst = route.get("dst", "")
        if dst == "default" or route.get("dev") == bridge:
            continue
        try:
            network = ipaddress.IPv4Network(dst, strict=False)
        except ValueError:
            continue
        if network.overlaps(subnet):
            raise LabError(
                f"lab subnet {subnet} overlaps the route {dst} dev {route.get('dev')} of this "
                "machine; choose other addresses in the inventory"
            )


def link_names() -> list[str]:
    return [link["ifname"] for link in _ip_json("link", "show")]


def bridge_state(bridge: str) -> dict:
    links = _ip_json("addr", "show", "dev", bridge) if bridge in link_names() else []
    if not links:
        return {"name": bridge, "state": "absent", "address": None}
    link = links[0]
    addresses = [f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == "inet"]
    up = "UP" in link.get("flags", [])
    return {"name": bridge, "state": "up" if up else "down", "address": addresses[0] if addresses else None}


def create_bridge(bridge: str, address: ipaddress.IPv4Address, subnet: ipaddress.IPv4Network) -> None:
    # STP stays off (the default), so ports forward at once instead of after 30 s of learning.
    _ip("link", "add", bridge, "type", "bridge")
    _ip("addr", "add", f"{address}/{subnet.prefixlen}", "dev", bridge)
    _ip("link", "set", bridge, "up")


def delete_bridge(bridge: str) -> None:
    if bridge in link_names():
        _ip("link", "del", bridge)


def delete_stale_veths() -> None:
    """Host-side veths a killed container left behind (normally they vanish with it)."""
    for name in link_names():
        if name.startswith(VETH_PREFIX):
            _ip("link", "del", name, check=False)


def set_overcommit_memory() -> None:
    # Not namespaced: setting it here is the only way the containers (Redis) get it.
    Path("/proc/sys/vm/overcommit_memory").write_text("1\n")
