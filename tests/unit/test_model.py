"""The cluster model built in-process: its values, and that it is a pure function of the
inventory (so `--limit worker` renders what a full run renders)."""

import dataclasses
from pathlib import Path

import pytest
from pyinfra.api import Config, State
from pyinfra.api.exceptions import PyinfraError
from pyinfra.context import ctx_inventory, inventory as inventory_proxy

from cluster.model import Cluster, ClusterConfigError, Node, build_cluster, load_inventory
from tests.unit.support import GROUPS, LAB_ADDRESSES, api_inventory

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shipped():
    return build_cluster(load_inventory(project_dir=REPO), REPO)


def test_shipped_inventory_model(shipped):
    assert dict(shipped.groups) == {
        "redis": ("redis1", "redis2", "redis3"),
        "postgres": ("db1",),
        "web": ("web1", "web2"),
        "scheduler": ("web1", "web2"),
        "worker": ("worker1", "worker2"),
        "lb": ("lb1", "lb2"),
    }
    assert shipped.node("web1") == Node("web1", "172.29.213.41", ("web", "scheduler"))
    assert {name: node.address for name, node in shipped.nodes.items()} == LAB_ADDRESSES
    assert shipped.addresses("redis") == ("172.29.213.21", "172.29.213.22", "172.29.213.23")
    assert shipped.broker.quorum == 2
    assert shipped.database.postgres_address == "172.29.213.31"
    assert (shipped.database.host, shipped.database.port) == ("172.29.213.31", 5432)
    assert (shipped.database.name, shipped.database.user) == ("airflow", "airflow")
    assert list(shipped.api_backends) == [("web1", "172.29.213.41", 8080),
                                    ("web2", "172.29.213.42", 8080)]
    assert shipped.lb_vip == "172.29.213.10"
    assert shipped.public_host == "172.29.213.10"
    assert shipped.public_url == "https://172.29.213.10"
    assert shipped.execution_api_url == "https://172.29.213.10/execution/"
    assert shipped.no_proxy == ("localhost", "127.0.0.1", *LAB_ADDRESSES.values(), "172.29.213.10")
    assert shipped.settings["secrets_file"] == ".secrets/cluster.json"
    assert shipped.settings["http_proxy"] == "http://172.29.213.1:3128"  # host data wins


def test_model_is_frozen(shipped):
    with pytest.raises(dataclasses.FrozenInstanceError):
        shipped.lb_vip = "10.0.0.1"
    with pytest.raises(TypeError):
        shipped.nodes["x"] = Node("x", "10.0.0.1", ())
    with pytest.raises(TypeError):
        shipped.settings["api_port"] = 1


def test_pure_function_of_the_inventory(shipped):
    inventory = load_inventory(project_dir=REPO)
    assert build_cluster(inventory) == build_cluster(inventory) == shipped
    # A --limit run: the state only activates the workers; the model must not change.
    workers = inventory.get_group("worker")
    State(inventory, Config(), initial_limit=workers)
    assert build_cluster(inventory) == shipped
    # deploy.py passes pyinfra's context proxy, not the Inventory itself.
    with ctx_inventory.use(inventory):
        assert build_cluster(inventory_proxy) == shipped


def test_model_does_not_depend_on_how_the_inventory_was_made(shipped):
    # Same hosts and settings through pyinfra's API instead of files: same topology.
    model = build_cluster(api_inventory())
    assert model.groups == shipped.groups
    assert model.nodes == shipped.nodes
    assert model.no_proxy == shipped.no_proxy
    assert model.execution_api_url == shipped.execution_api_url


def test_custom_https_port_in_public_url():
    model = build_cluster(api_inventory(all_data={"lb_https_port": 8443}))
    assert model.public_url == "https://172.29.213.10:8443"
    assert model.execution_api_url == "https://172.29.213.10:8443/execution/"


def test_api_servers_are_readmitted_after_the_slowest_haproxy_rise():
    assert build_cluster(api_inventory()).api_readmit_seconds == 3.0  # (2 + 1) checks of 1 s
    slow = build_cluster(api_inventory(override={"lb_check_rise": 4, "lb_check_interval_ms": 500}))
    assert slow.api_readmit_seconds == 2.5


def test_single_lb_uses_its_address():
    model = build_cluster(api_inventory(groups={**GROUPS, "lb": ("lb1",)},
                                       all_data={"lb_vip": None}))
    assert model.lb_vip is None
    assert model.public_url == "https://172.29.213.11"
    assert "172.29.213.10" not in model.no_proxy


def test_five_redis_hosts_quorum_three():
    addresses = {**LAB_ADDRESSES, "redis4": "172.29.213.24", "redis5": "172.29.213.25"}
    groups = {**GROUPS, "redis": ("redis1", "redis2", "redis3", "redis4", "redis5")}
    assert build_cluster(api_inventory(groups=groups, addresses=addresses)).broker.quorum == 3


def test_external_database():
    url = "postgresql+psycopg2://af@db.example:6432/meta?sslmode=require"
    model = build_cluster(api_inventory(groups={**GROUPS, "postgres": ()},
                                        all_data={"external_database_url": url}))
    assert model.database.postgres_address is None
    assert (model.database.host, model.database.port) == ("db.example", 6432)
    assert (model.database.name, model.database.user) == ("meta", "af")
    assert model.database.options == "sslmode=require"
    assert model.groups["postgres"] == ()


def test_ipv6_is_refused_until_it_is_supported():
    """URLs, keepalived and the lab are IPv4 only: an IPv6 cluster is refused before any
    connection rather than deployed half-working."""
    addresses = {n: f"fd00::{i + 1}" for i, n in enumerate(LAB_ADDRESSES)}
    with pytest.raises(ClusterConfigError, match="is IPv6"):
        build_cluster(api_inventory(addresses=addresses, all_data={"lb_vip": "fd00::100"}))


def test_unknown_name_in_cli_data_overrides():
    with pytest.raises(ClusterConfigError, match=r"--data overrides: unknown setting 'api_prot'"):
        build_cluster(api_inventory(override={"api_prot": 1}))


def test_error_is_a_pyinfra_error_with_one_line():
    with pytest.raises(PyinfraError) as raised:
        build_cluster(api_inventory(groups={**GROUPS, "worker": ()}))
    assert str(raised.value) == "group 'worker' has no hosts: a cluster needs at least one"


def test_cluster_is_the_public_type(shipped):
    assert isinstance(shipped, Cluster)
