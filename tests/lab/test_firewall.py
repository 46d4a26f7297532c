"""The host firewall as deployed (cluster/firewall.py): on every host its table is loaded and
its service enabled; each service port refuses a cluster host outside its allow-list and
answers one inside it; this machine (the lab's admin_sources) reaches every one; with
`firewall = False` a host has none, and the next deploy puts it back."""

import ipaddress
import shlex
import socket

import pytest

from lab.client import run_pyinfra
from tests.lab.support import LAB

CLUSTER = LAB.cluster
SERVICE = "airflow-cluster-firewall.service"


def probe(source, address, port):
    """'answers' or 'refused': a TCP connection from host `source` to address:port (a
    firewall that dropped instead of refusing would show as a timeout)."""
    script = f"exec 3<>/dev/tcp/{address}/{port}"
    done = LAB.run(source, f"timeout 10 bash -c {shlex.quote(script)}")
    if done.returncode == 0:
        return "answers"
    if "Connection refused" in done.stderr:
        return "refused"
    return f"exit {done.returncode}: {done.stderr.strip()}"


def admitted(sources, name):
    address = ipaddress.ip_address(CLUSTER.node(name).address)
    return any(address in ipaddress.ip_network(n) for n in sources)


def restricted_ports():
    """(host, rule, a host the rule refuses, a host it admits): every port with an allow-list."""
    cases = []
    for name, firewall in CLUSTER.firewalls.items():
        for rule in firewall.rules:
            if rule.sources is None:
                continue
            others = [n for n in CLUSTER.nodes if n != name]
            outside = next(n for n in others if not admitted(rule.sources, n))
            inside = next((n for n in others if admitted(rule.sources, n)), None)
            cases.append(pytest.param(name, rule, outside, inside,
                                      id=f"{name}-{rule.service.replace(' ', '_')}"))
    return cases


@pytest.mark.parametrize("name", list(CLUSTER.nodes))
def test_the_firewall_is_loaded_and_enabled(deployed, name):
    done = LAB.run(name, f"systemctl is-active {SERVICE} && systemctl is-enabled {SERVICE} && "
                         "nft list table inet airflow_cluster")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "policy drop" in done.stdout


@pytest.mark.parametrize("name, rule, outside, inside", restricted_ports())
def test_a_service_port_refuses_outsiders_and_answers_its_users(deployed, name, rule, outside,
                                                               inside):
    address = CLUSTER.node(name).address
    assert probe(outside, address, rule.port) == "refused", (rule.service, outside)
    if inside is not None:  # the admin-only ports: this machine, below
        assert probe(inside, address, rule.port) == "answers", (rule.service, inside)
    # This machine is in admin_sources.
    with socket.create_connection((address, rule.port), timeout=10):
        pass


def test_without_the_firewall_a_host_has_none_and_the_next_deploy_restores_it(deployed):
    lb, worker = CLUSTER.groups["lb"][-1], CLUSTER.groups["worker"][0]
    address, port = CLUSTER.node(lb).address, LAB.data(lb).lb_stats_port
    assert probe(worker, address, port) == "refused"
    off = run_pyinfra("--limit", lb, "--data", "firewall=False")
    assert off.returncode == 0 and off.totals.get("error", 0) == 0, off.describe()
    try:
        assert LAB.run(lb, "nft list table inet airflow_cluster").returncode != 0
        assert LAB.run(lb, f"test -e /etc/systemd/system/{SERVICE}").returncode != 0
        assert probe(worker, address, port) == "answers"
    finally:
        on = run_pyinfra("--limit", lb)
        assert on.returncode == 0 and on.totals.get("error", 0) == 0, on.describe()
    assert probe(worker, address, port) == "refused"
