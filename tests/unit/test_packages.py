"""The packages each host gets in its one apt or dnf run (tasks/packages.py): its family's base
packages, its release's Python, setting base_packages and those of each of its roles, and
only those; and the RHEL family's module streams."""

from types import SimpleNamespace

import pytest

from cluster.model import build_cluster
from cluster.systems import PACKAGING, RELEASES
from tasks.packages import host_packages, module_streams
from tests.unit.support import GROUPS, api_inventory

DEBIAN12, DEBIAN13 = RELEASES["debian", "12"], RELEASES["debian", "13"]
UBUNTU, ALMA = RELEASES["ubuntu", "24.04"], RELEASES["almalinux", "9"]
DEBIAN_BASE = [*PACKAGING["debian"].base, "python3", "less"]
RHEL_BASE = [*PACKAGING["rhel"].base, "python3.12", "less"]


def packages(inventory, name, release=DEBIAN12):
    run = SimpleNamespace(cluster=build_cluster(inventory))
    host = inventory.get_host(name)
    return host_packages(run, host.groups, host.data.dict(), release)


def test_each_host_gets_the_base_packages_and_its_roles_packages_only():
    inventory = api_inventory()
    assert packages(inventory, "db1") == [*DEBIAN_BASE, "postgresql-15", "nftables"]
    assert packages(inventory, "redis1") == [*DEBIAN_BASE, "redis-server", "redis-sentinel",
                                             "redis-tools", "nftables"]
    assert "netcat-openbsd" in DEBIAN_BASE
    assert packages(inventory, "lb1") == [*DEBIAN_BASE, "haproxy", "keepalived", "nftables"]
    # No Git DAG bundle in the shipped settings: no git.
    assert packages(inventory, "worker1") == [*DEBIAN_BASE, "nftables"]


@pytest.mark.parametrize("release, postgres", [(DEBIAN12, "postgresql-15"),
                                               (DEBIAN13, "postgresql-17"),
                                               (UBUNTU, "postgresql-16")])
def test_each_debian_family_release_gets_its_own_postgresql(release, postgres):
    assert packages(api_inventory(), "db1", release) == [*DEBIAN_BASE, postgres, "nftables"]


def test_the_rhel_family_gets_its_names_python_312_and_the_module_streams():
    inventory = api_inventory()
    assert packages(inventory, "db1", ALMA) == [*RHEL_BASE, "postgresql-server", "nftables"]
    assert packages(inventory, "redis1", ALMA) == [*RHEL_BASE, "redis", "nftables"]
    assert packages(inventory, "lb1", ALMA) == [*RHEL_BASE, "haproxy", "keepalived", "nftables"]
    # semanage labels ports; Ncat is the RHEL family's nc.
    assert {"policycoreutils-python-utils", "nmap-ncat"} <= set(RHEL_BASE)
    assert module_streams(("postgres", "redis"), ALMA) == ["postgresql:16", "redis:7"]
    assert module_streams(("web", "scheduler"), ALMA) == []
    assert module_streams(("postgres", "redis"), DEBIAN12) == []


def test_one_load_balancer_needs_no_keepalived():
    inventory = api_inventory(groups={**GROUPS, "lb": ("lb1",)}, all_data={"lb_vip": None})
    assert "keepalived" not in packages(inventory, "lb1")


def test_airflow_hosts_reading_a_git_bundle_get_git_and_ssh_once():
    inventory = api_inventory(all_data={"dags_git_url": "https://git.example/dags.git",
                                        "base_packages": ["curl", "git"]})
    base = [*PACKAGING["debian"].base, "python3"]
    assert packages(inventory, "worker1") == [*base, "git", "openssh-client", "nftables"]
    assert packages(inventory, "db1") == [*base, "git", "postgresql-15", "nftables"]
    rhel = packages(inventory, "worker1", ALMA)
    assert rhel[-3:] == ["git", "openssh-clients", "nftables"]


def test_the_firewall_brings_nftables_and_none_without_it():
    inventory = api_inventory(all_data={"firewall": False})
    assert "nftables" not in packages(inventory, "worker1")
