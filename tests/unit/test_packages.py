"""The packages each host gets in its one apt run (tasks/packages.py): the base packages and
those of each of its roles, and only those."""

from types import SimpleNamespace

from cluster.model import build_cluster
from tasks.packages import host_packages
from tests.unit.support import GROUPS, api_inventory


def packages(inventory, name):
    run = SimpleNamespace(cluster=build_cluster(inventory))
    host = inventory.get_host(name)
    return host_packages(run, host.groups, host.data.dict())


def test_each_host_gets_the_base_packages_and_its_roles_packages_only():
    inventory = api_inventory()
    base = inventory.get_host("db1").data.base_packages
    assert packages(inventory, "db1") == [*base, "postgresql-15", "nftables"]
    assert packages(inventory, "redis1") == [*base, "redis-server", "redis-sentinel",
                                             "redis-tools", "nftables"]
    # netcat-openbsd is a base package too: listed once.
    assert "netcat-openbsd" in base
    assert packages(inventory, "lb1") == [*base, "haproxy", "keepalived", "nftables"]
    # No Git DAG bundle in the shipped settings: no git.
    assert packages(inventory, "worker1") == [*base, "nftables"]


def test_one_load_balancer_needs_no_keepalived():
    inventory = api_inventory(groups={**GROUPS, "lb": ("lb1",)}, all_data={"lb_vip": None})
    assert "keepalived" not in packages(inventory, "lb1")


def test_airflow_hosts_reading_a_git_bundle_get_git_and_ssh_once():
    inventory = api_inventory(all_data={"dags_git_url": "https://git.example/dags.git",
                                        "base_packages": ["curl", "git"]})
    assert packages(inventory, "worker1") == ["curl", "git", "openssh-client", "nftables"]
    assert packages(inventory, "db1") == ["curl", "git", "postgresql-15", "nftables"]


def test_the_firewall_brings_nftables_and_none_without_it():
    inventory = api_inventory(all_data={"firewall": False})
    assert "nftables" not in packages(inventory, "worker1")
