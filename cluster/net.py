"""How an address is written where a host name or a network is expected (IPv4 or IPv6)."""

import ipaddress


def url_host(address: str) -> str:
    """`address` as the host part of a URL or of `host:port`: IPv6 goes in brackets."""
    return f"[{address}]" if ":" in address else address


def endpoint(address: str, port: int) -> str:
    """`address:port`, bracketed for IPv6 (what redis-cli, HAProxy and URLs expect)."""
    return f"{url_host(address)}:{port}"


def host_network(address: str) -> str:
    """The network of exactly one address: a.b.c.d/32 or x::y/128 (pg_hba, firewalls)."""
    return str(ipaddress.ip_network(address))


def vip_outside_network(vip: str, address: str, network: str) -> str | None:
    """None when `vip` is on `network` (that of the lb host's `address`), else why not:
    keepalived adds the VIP on that interface, and only hosts of that network would reach it."""
    if ipaddress.ip_address(vip) in ipaddress.ip_network(network):
        return None
    return (f"lb_vip {vip} is outside the network {network} of the lb host's address "
            f"{address}: choose a free address in {network}, or set lb_vrrp_interface")
