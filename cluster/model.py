"""The validated cluster model: what every host needs to know about the others.

Built from the inventory and its settings only, never from a host's facts, so a
`--limit worker` run computes exactly what a full run computes. `build_cluster`
raises ClusterConfigError, with one line naming the problem, before any connection.
"""

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pyinfra.api.inventory import Inventory

from .database_url import parse_database_url
from .errors import ClusterConfigError
from .loader import load_inventory
from .settings import check_setting, cluster_wide_names

__all__ = ["Cluster", "ClusterConfigError", "Node", "build_cluster", "load_inventory"]

# Inventory groups that decide what runs where (see DESIGN.md).
ROLE_GROUPS = ("redis", "postgres", "web", "scheduler", "worker", "lb")
REQUIRED_GROUPS = ("redis", "web", "scheduler", "worker", "lb")
# Settings the model itself reads; group_data/all.py ships a default for each.
REQUIRED_SETTINGS = ("secrets_file", "no_proxy", "api_port", "lb_https_port")
# Until group_data/all.py defines them (postgres group only).
DEFAULT_DATABASE = {"postgres_database": "airflow", "postgres_user": "airflow"}


@dataclass(frozen=True)
class Node:
    name: str
    # The host's cluster IP (its ssh_hostname): services bind to it, peers connect to it.
    address: str
    # The role groups the host is in, in ROLE_GROUPS order.
    groups: tuple[str, ...]


@dataclass(frozen=True)
class Cluster:
    nodes: Mapping[str, Node]
    # Every role group -> its host names in inventory order (empty tuple when absent).
    groups: Mapping[str, tuple[str, ...]]
    # Cluster-wide settings: the resolved data of the inventory's first host. Only
    # `cluster_wide` settings are guaranteed equal on every host; read others per host.
    settings: Mapping[str, Any]
    # The address keepalived moves between the two lb hosts (None with one lb host).
    lb_vip: str | None
    # Address of the `postgres` host; None when the database is external.
    postgres_address: str | None
    database_host: str
    database_port: int
    database_name: str
    database_user: str
    # Extra libpq parameters from external_database_url, e.g. "sslmode=require".
    database_options: str

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def addresses(self, group: str) -> tuple[str, ...]:
        return tuple(self.nodes[name].address for name in self.groups[group])

    @property
    def redis_quorum(self) -> int:
        """Sentinels that must agree a primary is down: a majority of the redis group."""
        return len(self.groups["redis"]) // 2 + 1

    @property
    def api_backends(self) -> list[tuple[str, str, int]]:
        port = self.settings["api_port"]
        return [(name, self.nodes[name].address, port) for name in self.groups["web"]]

    @property
    def public_host(self) -> str:
        return self.lb_vip or self.addresses("lb")[0]

    @property
    def public_url(self) -> str:
        host = self.public_host
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
        port = self.settings["lb_https_port"]
        return f"https://{host}" if port == 443 else f"https://{host}:{port}"

    @property
    def execution_api_url(self) -> str:
        """Where workers reach the Execution API: through the load balancer."""
        return self.public_url + "/execution/"

    @property
    def no_proxy(self) -> tuple[str, ...]:
        """Proxy exceptions: the configured ones, then every cluster address and the VIP."""
        names = [*self.settings["no_proxy"], *(n.address for n in self.nodes.values())]
        if self.lb_vip:
            names.append(self.lb_vip)
        return tuple(dict.fromkeys(names))


def build_cluster(inventory: Inventory) -> Cluster:
    """The validated model of `inventory` (a pure function of it)."""
    _check_group_names(inventory)
    _check_settings(inventory)
    _check_cluster_wide_settings(inventory)

    groups = {g: tuple(h.name for h in inventory.groups.get(g, ())) for g in ROLE_GROUPS}
    _check_group_sizes(groups)
    nodes = _build_nodes(inventory)

    settings = next(iter(inventory)).data.dict()
    for name in REQUIRED_SETTINGS:
        if name not in settings:
            raise ClusterConfigError(f"setting {name!r} is not set: define it in group_data/all.py")

    lb_vip = _lb_vip(settings.get("lb_vip"), groups["lb"], nodes)
    database = _database(settings, groups["postgres"], nodes)
    return Cluster(
        nodes=MappingProxyType(nodes),
        groups=MappingProxyType(groups),
        settings=MappingProxyType(settings),
        lb_vip=lb_vip,
        **database,
    )


def _data_sources(inventory: Inventory):
    """(where, data) for every place a setting can be defined, most general first."""
    yield "group_data/all.py", inventory.get_data()
    for group, data in inventory.group_data.items():
        yield f"data of group {group!r}", data
    for host in inventory:
        yield f"host data of {host.name!r}", inventory.get_host_data(host.name)
    yield "--data overrides", inventory.get_override_data()


def _check_settings(inventory: Inventory) -> None:
    # Includes group_data files of groups with no hosts: a typo there must not wait
    # until the group gets its first host.
    for where, data in _data_sources(inventory):
        for name, value in data.items():
            problem = check_setting(name, value)
            if problem:
                raise ClusterConfigError(f"{where}: {problem}")


def _check_group_names(inventory: Inventory) -> None:
    """Data for a group with no hosts that is not a role is a misspelt group_data file."""
    known = sorted(set(ROLE_GROUPS) | {g for g, hosts in inventory.groups.items() if hosts})
    for group, data in inventory.group_data.items():
        if data and group not in ROLE_GROUPS and not inventory.groups.get(group):
            raise ClusterConfigError(
                f"group_data/{group}.py is for group {group!r}, which is not in the inventory; "
                f"known groups: {', '.join(known)}"
            )


def _check_cluster_wide_settings(inventory: Inventory) -> None:
    hosts = list(inventory)
    missing = object()
    for name in cluster_wide_names():
        expected = hosts[0].data.get(name, missing) if hosts else missing
        for host in hosts[1:]:
            value = host.data.get(name, missing)
            if value != expected:
                shown = [("unset" if v is missing else repr(v)) for v in (expected, value)]
                raise ClusterConfigError(
                    f"setting {name!r} must be the same on every host: {shown[0]} on "
                    f"{hosts[0].name}, {shown[1]} on {host.name}; set it once in group_data/all.py"
                )


def _check_group_sizes(groups: dict[str, tuple[str, ...]]) -> None:
    for group in REQUIRED_GROUPS:
        if not groups[group]:
            raise ClusterConfigError(f"group {group!r} has no hosts: a cluster needs at least one")
    redis, lb, postgres = groups["redis"], groups["lb"], groups["postgres"]
    if len(redis) < 3 or len(redis) % 2 == 0:
        raise ClusterConfigError(
            f"group 'redis' has {_hosts(redis)}: Sentinel needs an odd number, "
            "at least 3, to elect a primary by majority"
        )
    if len(lb) > 2:
        raise ClusterConfigError(
            f"group 'lb' has {_hosts(lb)}: 1 or 2 are supported (2 share lb_vip via keepalived)"
        )
    if len(postgres) > 1:
        raise ClusterConfigError(
            f"group 'postgres' has {_hosts(postgres)}: only one PostgreSQL host is supported "
            "(no replication); keep one or use an external database (external_database_url)"
        )


def _hosts(names: tuple[str, ...]) -> str:
    return f"{len(names)} host{'s' * (len(names) != 1)} ({', '.join(names)})"


def _build_nodes(inventory: Inventory) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    owners: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
    for host in inventory:
        hostname = host.data.get("ssh_hostname")
        if hostname is None:
            raise ClusterConfigError(
                f"host {host.name!r} has no ssh_hostname: set it to the host's cluster IP address"
            )
        try:
            address = ipaddress.ip_address(hostname)
        except ValueError:
            raise ClusterConfigError(
                f"host {host.name!r}: ssh_hostname {hostname!r} is not an IP address "
                "(services bind to it)"
            ) from None
        if address in owners:
            raise ClusterConfigError(
                f"hosts {owners[address]!r} and {host.name!r} have the same address {address}"
            )
        owners[address] = host.name
        groups = tuple(g for g in ROLE_GROUPS if g in host.groups)
        nodes[host.name] = Node(host.name, str(address), groups)
    return nodes


def _lb_vip(vip: str | None, lb_hosts: tuple[str, ...], nodes: dict[str, Node]) -> str | None:
    if len(lb_hosts) < 2:
        return None  # one lb host: no keepalived, clients use its own address
    if vip is None:
        raise ClusterConfigError(
            f"group 'lb' has 2 hosts ({', '.join(lb_hosts)}) but lb_vip is not set: "
            "set it to a free address on their network"
        )
    vip = str(ipaddress.ip_address(vip))
    for node in nodes.values():
        if node.address == vip:
            raise ClusterConfigError(
                f"lb_vip {vip} is the address of host {node.name!r}: the VIP must be a free address"
            )
    return vip


def _database(settings: Mapping[str, Any], postgres_hosts, nodes) -> dict[str, Any]:
    url = settings.get("external_database_url")
    if postgres_hosts and url:
        raise ClusterConfigError(
            f"both a 'postgres' group ({postgres_hosts[0]}) and external_database_url are set: "
            "keep one"
        )
    if postgres_hosts:
        if "postgres_port" not in settings:
            raise ClusterConfigError(
                "setting 'postgres_port' is not set: define it in group_data/all.py"
            )
        address = nodes[postgres_hosts[0]].address
        return dict(
            postgres_address=address,
            database_host=address,
            database_port=settings["postgres_port"],
            database_name=settings.get("postgres_database", DEFAULT_DATABASE["postgres_database"]),
            database_user=settings.get("postgres_user", DEFAULT_DATABASE["postgres_user"]),
            database_options="",
        )
    if not url:
        raise ClusterConfigError(
            "no database: add a 'postgres' group to the inventory or set external_database_url"
        )
    try:
        parsed = parse_database_url(url)
    except ValueError as e:  # already checked with the settings; kept for direct callers
        raise ClusterConfigError(f"setting 'external_database_url': {e}") from None
    return dict(
        postgres_address=None,
        database_host=parsed.host,
        database_port=parsed.port,
        database_name=parsed.name,
        database_user=parsed.user,
        database_options=parsed.query,
    )
