"""The host firewall (nftables), computed once from the model: which addresses each service
port of a host admits. A service admits the hosts of the groups that use it and the operators'
`admin_sources`; SSH and the load balancer's public ports admit anyone; everything else that
arrives uninvited is refused (templates/etc/airflow-cluster/firewall.nft.j2, tasks/firewall.py).
"""

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .net import host_network

# Service (cluster/ports.py's names) -> the groups whose hosts connect to it; None: anyone.
USERS: dict[str, tuple[str, ...] | None] = {
    "SSH server": None,
    # Celery (broker), the autoscalers and the health DAG; replication and the sentinels.
    "Redis": ("web", "scheduler", "worker", "redis"),
    "Sentinel": ("web", "scheduler", "worker", "redis"),
    # The metadata role (API servers, schedulers) and the workers' Celery results role.
    "PostgreSQL": ("web", "scheduler", "worker"),
    # HAProxy's backends and health checks.
    "API server": ("lb",),
    # Operators and monitoring only (the host's own checks come over loopback).
    "scheduler health server": (),
    "HAProxy stats page": (),
    # The API servers fetch task and trigger logs.
    "worker log server": ("web",),
    "triggerer log server": ("web",),
    # The cluster's public entry.
    "HTTPS front": None,
    "HTTP redirect": None,
}


@dataclass(frozen=True)
class Rule:
    service: str
    port: int
    # Networks admitted (each host as a /32), in inventory order; None: anyone; empty: no one.
    sources: tuple[str, ...] | None


@dataclass(frozen=True)
class Firewall:
    """What one host's firewall admits."""

    rules: tuple[Rule, ...]
    # The other lb hosts' addresses, whose VRRP advertisements keepalived must hear.
    vrrp_peers: tuple[str, ...]


def admin_networks(values: Iterable[str]) -> tuple[str, ...]:
    """admin_sources as networks (an address is its /32), checked: IPv4 only."""
    return tuple(str(ipaddress.IPv4Network(v, strict=False)) for v in values)


def host_firewall(address: str, groups: Iterable[str], ports: Mapping[int, str],
                  admin_sources: Iterable[str], addresses_of, lb_vip: str | None) -> Firewall:
    """The firewall of the host at `address` in `groups` serving `ports` (port -> service:
    cluster/ports.py host_ports); `addresses_of(group)` gives each group's addresses (the
    model's)."""
    admins = admin_networks(admin_sources)
    rules = []
    for port, service in ports.items():
        users = USERS[service]
        if users is None:
            rules.append(Rule(service, port, None))
            continue
        clients = [host_network(a) for g in users for a in addresses_of(g)]
        rules.append(Rule(service, port, tuple(dict.fromkeys([*clients, *admins]))))
    peers = ()
    if "lb" in groups and lb_vip is not None:
        peers = tuple(a for a in addresses_of("lb") if a != address)
    return Firewall(rules=tuple(rules), vrrp_peers=peers)

