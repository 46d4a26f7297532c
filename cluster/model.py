"""The validated cluster model: what every host needs to know about the others.

Built from the inventory and its settings only, never from a host's facts, so a
`--limit worker` run computes exactly what a full run computes. `build_cluster`
raises ClusterConfigError, with one line naming the problem, before any connection.
"""

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pyinfra.api.inventory import Inventory

from .broker import Broker, build_broker
from .dag_sources import DagSources, build_dag_sources
from .database import Database, build_database
from .errors import ClusterConfigError
from .firewall import Firewall, host_firewall
from .groups import CONTROL_PLANE_GROUPS, REQUIRED_GROUPS, ROLE_GROUPS
from .loader import load_inventory
from .net import url_host
from .paths import PROJECT_DIR, project_path
from .ports import host_ports
from .role_checks import check_role_settings
from .settings import check_setting, cluster_wide_names
from .tls import TlsSettings, tls_settings

__all__ = ["Cluster", "ClusterConfigError", "Node", "build_cluster", "load_inventory"]

# A host name is a DNS name (RFC 1123): Celery worker names, /etc/hosts, certificates.
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$",
    re.IGNORECASE,
)

# Settings the model itself reads; group_data/all.py ships a default for each.
REQUIRED_SETTINGS = (
    "secrets_file", "no_proxy", "api_port", "lb_https_port", "redis_port", "sentinel_port",
    "redis_master_name", "postgres_port", "postgres_database", "postgres_user",
    "celery_database_user",
    "dags_dir", "plugins_dir", "dags_git_url", "dags_git_ref", "dags_git_subdir", "dags_git_key",
    "dags_git_known_hosts", "airflow_admin_user", "airflow_admin_email", "default_queue",
)


@dataclass(frozen=True)
class Node:
    name: str
    # The host's cluster IP (its ssh_hostname): services bind to it, peers connect to it.
    address: str
    # The role groups the host is in, in ROLE_GROUPS order.
    groups: tuple[str, ...]

    @property
    def control_plane(self) -> bool:
        """An API server or scheduler host: it holds the cluster's secrets (groups.py)."""
        return bool(set(CONTROL_PLANE_GROUPS) & set(self.groups))


@dataclass(frozen=True)
class Cluster:
    """Every value a host needs to know about the others, computed once from the inventory.
    Templates and tasks print these values; none of them is computed a second time."""

    nodes: Mapping[str, Node]
    # Every role group -> its host names in inventory order (empty tuple when absent).
    groups: Mapping[str, tuple[str, ...]]
    # Cluster-wide settings: the resolved data of the inventory's first host. Only
    # `cluster_wide` settings are guaranteed equal on every host; read others per host.
    settings: Mapping[str, Any]
    # The address keepalived moves between the two lb hosts (None with one lb host).
    lb_vip: str | None
    # Where clients reach the cluster: the VIP, or the single lb host's address.
    public_host: str
    # https://<public host>[:<lb_https_port>]
    public_url: str
    # Where workers reach the Execution API: through the load balancer.
    execution_api_url: str
    # HAProxy's backends: (name, address, api_port) of every web host.
    api_backends: tuple[tuple[str, str, int], ...]
    # Seconds HAProxy takes to count an API server that answers again as up (lb_check_rise
    # checks lb_check_interval_ms apart, plus one interval for where the checks fall): a
    # rolling restart waits that long before it stops the next API server.
    api_readmit_seconds: float
    # keepalived's VRRP priority of each lb host: by host order, which decides only when both
    # start together (both are BACKUP with nopreempt).
    vrrp_priorities: Mapping[str, int]
    # Proxy exceptions: the configured ones, then every cluster address and the VIP.
    no_proxy: tuple[str, ...]
    # The Celery broker: Redis servers and sentinels, quorum, master name.
    broker: Broker
    # The metadata database: where it is, pg_hba entries, max_connections.
    database: Database
    # The load balancer's certificate: which files (generated or the user's), which names.
    tls: TlsSettings
    # Where DAGs and plugins come from: the synced folders and, optionally, a Git repository.
    dags: DagSources
    # Each host's firewall: which addresses each of its service ports admits.
    firewalls: Mapping[str, Firewall]
    # The Celery queues every worker consumes (its `--queues`); the autoscalers size the
    # workers by their load.
    worker_queues: tuple[str, ...]

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def addresses(self, group: str) -> tuple[str, ...]:
        return tuple(self.nodes[name].address for name in self.groups[group])


def build_cluster(inventory: Inventory, project_dir=None) -> Cluster:
    """The validated model of `inventory` (a pure function of it and the project dir, which
    relative paths in settings are taken from)."""
    _check_group_names(inventory)
    _check_settings(inventory)
    _check_cluster_wide_settings(inventory)

    groups = {g: tuple(h.name for h in inventory.groups.get(g, ())) for g in ROLE_GROUPS}
    _check_group_sizes(groups)
    nodes = _build_nodes(inventory)
    _check_worker_hosts(nodes)

    # Each host's resolved data, read once (pyinfra merges it anew on every read).
    host_settings = {name: inventory.get_host(name).data.dict() for name in nodes}
    settings = host_settings[next(iter(nodes))]  # the inventory's first host's
    for name in REQUIRED_SETTINGS:
        if name not in settings:
            raise ClusterConfigError(f"setting {name!r} is not set: define it in group_data/all.py")
    role_settings = {g: {n: host_settings[n] for n in groups[g]} for g in groups}
    check_role_settings(role_settings)
    ports = {}
    for node in nodes.values():
        try:
            ports[node.name] = host_ports(node.groups, host_settings[node.name])
        except ClusterConfigError as e:
            raise ClusterConfigError(f"host {node.name!r}: {e}") from None

    def addresses_of(group):
        return tuple(nodes[name].address for name in groups[group])

    lb_vip = _lb_vip(settings.get("lb_vip"), groups["lb"], nodes)
    firewalls = {
        n.name: host_firewall(n.address, n.groups, ports[n.name],
                              host_settings[n.name]["admin_sources"], addresses_of, lb_vip)
        for n in nodes.values()
    }
    public_host = lb_vip or addresses_of("lb")[0]
    https_port = settings["lb_https_port"]
    port_part = f":{https_port}" if https_port != 443 else ""
    public_url = f"https://{url_host(public_host)}{port_part}"
    postgres_settings = next(iter(role_settings["postgres"].values()), None)
    project = Path(project_dir or PROJECT_DIR)
    secrets_dir = project_path(settings["secrets_file"], project).parent
    return Cluster(
        nodes=MappingProxyType(nodes),
        groups=MappingProxyType(groups),
        settings=MappingProxyType(settings),
        lb_vip=lb_vip,
        public_host=public_host,
        public_url=public_url,
        execution_api_url=public_url + "/execution/",
        api_backends=tuple((n, nodes[n].address, settings["api_port"]) for n in groups["web"]),
        api_readmit_seconds=max(
            ((lb["lb_check_rise"] + 1) * lb["lb_check_interval_ms"] / 1000
             for lb in role_settings["lb"].values()), default=0.0),
        vrrp_priorities=MappingProxyType({n: 150 - 50 * i for i, n in enumerate(groups["lb"])}),
        no_proxy=_no_proxy(settings["no_proxy"], nodes, lb_vip),
        broker=build_broker(settings, addresses_of("redis")),
        database=build_database(settings, groups, addresses_of, postgres_settings),
        tls=tls_settings(
            role_settings["lb"],
            lb_addresses=addresses_of("lb"),
            lb_vip=lb_vip,
            public_host=public_host,
            directory=secrets_dir / "tls",
            project_dir=project,
        ),
        dags=build_dag_sources(settings, secrets_dir, project),
        firewalls=MappingProxyType(firewalls),
        worker_queues=(settings["default_queue"],),
    )


def _no_proxy(configured, nodes, lb_vip) -> tuple[str, ...]:
    names = [*configured, *(n.address for n in nodes.values())]
    if lb_vip:
        names.append(lb_vip)
    return tuple(dict.fromkeys(names))


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
    """A group of hosts that is not a role, or data for one, is a misspelt role. (pyinfra puts
    every host in a group named after the inventory file, and in 'all'.)"""
    everyone = {host.name for host in inventory}
    for group, hosts in inventory.groups.items():
        if hosts and group not in ROLE_GROUPS and {h.name for h in hosts} != everyone:
            raise ClusterConfigError(
                f"group {group!r} ({', '.join(h.name for h in hosts)}) is not a role; "
                f"roles: {', '.join(ROLE_GROUPS)}"
            )
    known = sorted(ROLE_GROUPS)
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


def _check_worker_hosts(nodes: Mapping[str, Node]) -> None:
    """Task code runs on worker hosts as the airflow user, which could read whatever an API
    server or a scheduler on the same host must hold (the fernet key, the JWT secret...)."""
    for node in nodes.values():
        if "worker" in node.groups and node.control_plane:
            shared = " and ".join(g for g in CONTROL_PLANE_GROUPS if g in node.groups)
            raise ClusterConfigError(
                f"host {node.name!r} is in group 'worker' and in {shared}: task code on a worker "
                "host could read the secrets an API server or scheduler holds; give the workers "
                "hosts of their own"
            )


def _hosts(names: tuple[str, ...]) -> str:
    return f"{len(names)} host{'s' * (len(names) != 1)} ({', '.join(names)})"


def _build_nodes(inventory: Inventory) -> dict[str, Node]:
    nodes: dict[str, Node] = {}
    owners: dict[ipaddress.IPv4Address | ipaddress.IPv6Address, str] = {}
    for host in inventory:
        if not _HOST_NAME.match(host.name):
            raise ClusterConfigError(
                f"host name {host.name!r} is not a DNS name (letters, digits and '-' in "
                "dot-separated labels of at most 63): Celery and /etc/hosts use it"
            )
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
        if address.version != 4:
            raise ClusterConfigError(
                f"host {host.name!r}: ssh_hostname {hostname!r} is IPv6, which the deploy does "
                "not support yet: use the hosts' IPv4 addresses"
            )
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
    address = ipaddress.ip_address(vip)
    if address.version != 4:
        raise ClusterConfigError(f"lb_vip {vip} is IPv6: use an IPv4 address like the hosts'")
    if (address.is_loopback or address.is_multicast or address.is_link_local
            or address.is_unspecified or address.is_reserved):
        raise ClusterConfigError(
            f"lb_vip {vip} is not a unicast address clients can reach: use a free address "
            "on the lb hosts' network"
        )
    vip = str(address)
    for node in nodes.values():
        if node.address == vip:
            raise ClusterConfigError(
                f"lb_vip {vip} is the address of host {node.name!r}: the VIP must be a free address"
            )
    return vip
