"""The host firewall (cluster/firewall.py, templates/etc/airflow-cluster/firewall.nft.j2): which
addresses each service port admits, from the model, and the rendered rules, checked by nft."""

import shutil
import subprocess

import pytest

from cluster.firewall import USERS
from cluster.model import build_cluster
from cluster.ports import ROLE_PORTS
from tests.unit.support import GROUPS, LAB_ADDRESSES, api_inventory, render_template

TEMPLATE = "templates/etc/airflow-cluster/firewall.nft.j2"
ADMIN = "10.20.0.0/24"


@pytest.fixture(scope="module")
def inventory():
    return api_inventory(all_data={"admin_sources": ["10.20.0.7/24"]})


@pytest.fixture(scope="module")
def cluster(inventory):
    return build_cluster(inventory)


def admitted(cluster, name):
    """service -> admitted networks (None: anyone) of host `name`."""
    return {rule.service: rule.sources for rule in cluster.firewalls[name].rules}


def nets(*names):
    return tuple(f"{LAB_ADDRESSES[n]}/32" for n in names)


def test_every_service_has_its_users():
    services = {service for ports in ROLE_PORTS.values() for service, _ in ports}
    assert set(USERS) == services | {"SSH server"}


def test_each_service_admits_the_hosts_that_use_it_and_the_admins(cluster):
    airflow = nets("web1", "web2", "worker1", "worker2")
    assert admitted(cluster, "redis1") == {
        "SSH server": None,
        "Redis": (*airflow, *nets("redis1", "redis2", "redis3"), ADMIN),
        "Sentinel": (*airflow, *nets("redis1", "redis2", "redis3"), ADMIN),
    }
    assert admitted(cluster, "db1") == {"SSH server": None, "PostgreSQL": (*airflow, ADMIN)}
    assert admitted(cluster, "web1") == {
        "SSH server": None,
        "API server": (*nets("lb1", "lb2"), ADMIN),
        "scheduler health server": (ADMIN,),
        "triggerer log server": (*nets("web1", "web2"), ADMIN),
    }
    assert admitted(cluster, "worker1") == {
        "SSH server": None, "worker log server": (*nets("web1", "web2"), ADMIN),
    }
    assert admitted(cluster, "lb1") == {
        "SSH server": None, "HTTPS front": None, "HTTP redirect": None,
        "HAProxy stats page": (ADMIN,),
    }
    assert cluster.firewalls["lb1"].vrrp_peers == (LAB_ADDRESSES["lb2"],)
    assert cluster.firewalls["worker1"].vrrp_peers == ()


def test_ports_follow_the_settings():
    cluster = build_cluster(api_inventory(all_data={"redis_port": 6380, "api_port": 8081}))
    ports = {rule.service: rule.port for rule in cluster.firewalls["redis1"].rules}
    assert ports == {"SSH server": 22, "Redis": 6380, "Sentinel": 26379}
    assert {r.service: r.port for r in cluster.firewalls["web1"].rules}["API server"] == 8081


def test_without_admin_sources_the_admin_only_ports_admit_no_one():
    cluster = build_cluster(api_inventory())
    assert admitted(cluster, "lb1")["HAProxy stats page"] == ()


def test_one_lb_host_has_no_vrrp_peer():
    cluster = build_cluster(api_inventory(groups={**GROUPS, "lb": ("lb1",)},
                                          all_data={"lb_vip": None}))
    assert cluster.firewalls["lb1"].vrrp_peers == ()


def render(inventory, cluster, name):
    return render_template(inventory, TEMPLATE, cluster, name)


@pytest.mark.parametrize("admins", [["10.20.0.7/24"], []])
@pytest.mark.parametrize("name", list(LAB_ADDRESSES))
def test_rendered_rules_pass_nft_check(name, admins, tmp_path):
    """`nft -c`: the kernel's own parser and validation, without loading anything; with no
    /etc/protocols, as on a minimal host (a protocol's name would not resolve there)."""
    assert shutil.which("nft"), "nft is missing: `make system-deps` installs it"
    inventory = api_inventory(all_data={"admin_sources": admins})
    text = render(inventory, build_cluster(inventory), name)
    path = tmp_path / "firewall.nft"
    path.write_text(text)
    done = subprocess.run(["unshare", "--mount", "sh", "-c",
                           'mount --bind /dev/null /etc/protocols && exec nft -c -f "$0"',
                           str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr + text


def test_rendered_rules_print_the_models_rules(inventory, cluster):
    text = render(inventory, cluster, "web1")
    assert "ip saddr { 172.29.213.11/32, 172.29.213.12/32, 10.20.0.0/24 } tcp dport 8080 accept" \
        in text
    assert "ip saddr { 10.20.0.0/24 } tcp dport 8974 accept" in text
    assert "\n        tcp dport 22 accept" in text
    lb = render(inventory, cluster, "lb1")
    assert "\n        tcp dport 443 accept" in lb and "\n        tcp dport 80 accept" in lb
    assert "ip saddr { 172.29.213.12 } ip protocol 112 accept" in lb
    # What no rule admits is refused.
    assert text.rstrip().endswith("reject with icmpx port-unreachable\n    }\n}")


def test_the_firewall_unit_passes_systemd_analyze_verify(inventory, cluster, tmp_path):
    from tests.unit.test_airflow_render import verify_units

    unit = "/etc/systemd/system/airflow-cluster-firewall.service"
    text = render_template(inventory, f"templates{unit}.j2", cluster, "web1")
    done = verify_units({unit: text}, tmp_path / "root")
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
