"""The common role on every host: reachable, applied, converged, and what it manages."""

import json
import re
from urllib.parse import quote, urlsplit

import pytest

from lab.client import run_pyinfra
from lab.mirror import Mirror
from operations.apt_sources import ORIGINAL_DIR
from tests.lab.support import LAB

CLUSTER = LAB.cluster
HOST_NAMES = list(CLUSTER.nodes)
SETTINGS = CLUSTER.settings
# The test's Debian mirror on the bridge address (lab/mirror.py).
MIRROR_PORT = 3142


def test_every_host_answers_pyinfra_over_ssh(lab):
    completed = run_pyinfra(target=("fact", "server.Hostname"), timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    facts = json.loads(completed.stdout)
    hostnames = facts.get("server.Hostname", facts)
    assert {name: hostnames.get(name) for name in HOST_NAMES} == {n: n for n in HOST_NAMES}


def test_first_deploy_succeeds_on_every_host(first_deploy):
    assert first_deploy.results["failed_hosts"] == []
    hosts_with_ops = set()
    for op in first_deploy.results["operations"]:
        hosts_with_ops.update(op["success"] + op["no_change"])
    assert hosts_with_ops >= set(HOST_NAMES)


def test_no_secret_in_the_first_deploys_output(first_deploy):
    """The cold deploy, with every command, its output and every file's diff printed (-vvv
    --diff), shows no secret: passwords stay in root-only files on the hosts (redis-cli reads
    its own), hashes and verifiers are made on the control machine, and files holding secrets
    are named, not printed."""
    output = first_deploy.stdout + first_deploy.stderr
    assert "--> Starting operation" in output, "nothing printed"
    shown = [name for name, value in LAB.secrets.items()
             if value in output or quote(value, safe="") in output]
    assert shown == []


def test_second_deploy_changes_nothing(deployed):
    rerun = deployed["rerun"]
    assert rerun.totals.get("error", 0) == 0, rerun.describe()
    assert rerun.totals.get("no_change", 0) > 0, rerun.describe()
    assert rerun.changed_operations() == [], rerun.changed_operations()


@pytest.mark.parametrize("name", HOST_NAMES)
def test_airflow_user_and_directories(deployed, hosts, name):
    host = hosts[name]
    user = host.user(SETTINGS["airflow_user"])
    assert user.exists
    assert user.group == SETTINGS["airflow_group"]
    assert user.uid < 1000, "a system user"
    assert user.shell == "/usr/sbin/nologin"
    expected = {
        SETTINGS["airflow_home"]: "root",
        f"{SETTINGS['airflow_home']}/dags": "root",
        SETTINGS["airflow_log_dir"]: SETTINGS["airflow_user"],
        SETTINGS["airflow_state_dir"]: SETTINGS["airflow_user"],
    }
    for path, owner in expected.items():
        directory = host.file(path)
        assert directory.is_directory, path
        assert (directory.user, directory.group, directory.mode) == (
            owner,
            SETTINGS["airflow_group"],
            0o750,
        ), path


@pytest.mark.parametrize("name", HOST_NAMES)
def test_kernel_settings(deployed, hosts, name):
    host = hosts[name]
    for key, value in SETTINGS["sysctl"].items():
        assert host.sysctl(key) == value, key
    persisted = host.file("/etc/sysctl.d/60-airflow-cluster.conf")
    for key, value in SETTINGS["sysctl"].items():
        assert persisted.contains(f"^{key} = {value}$"), key


@pytest.mark.parametrize("name", HOST_NAMES)
def test_package_access_and_cluster_names(deployed, hosts, name):
    host = hosts[name]
    proxy = LAB.data(name).http_proxy
    assert host.file("/etc/apt/apt.conf.d/80proxy").contains(proxy)
    assert host.file("/etc/pip.conf").contains(f"proxy = {proxy}")
    for package in SETTINGS["base_packages"]:
        assert host.package(package).is_installed, package
    etc_hosts = host.file("/etc/hosts").content_string
    for node in CLUSTER.nodes.values():
        assert re.search(rf"^{re.escape(node.address)}\s+{node.name}$", etc_hosts, re.M), node


def test_pip_config_reaches_pypi_through_proxy_and_extra_ca(deployed, hosts):
    """/etc/pip.conf's proxy and trust store (which holds the extra CA certificate) are what let
    an operator's pip on a host reach PyPI here. Hosts have no pip (uv installs Airflow), so
    curl makes the same request with exactly those two settings."""
    host = hosts[CLUSTER.groups["worker"][0]]
    conf = dict(re.findall(r"^(\w+) = (.+)$", host.file("/etc/pip.conf").content_string, re.M))
    assert conf["proxy"] == SETTINGS["http_proxy"]
    result = host.run(f"curl -fsS -o /dev/null -w '%{{http_code}}' --proxy {conf['proxy']} "
                      f"--cacert {conf['cert']} https://pypi.org/simple/six/")
    assert result.rc == 0 and result.stdout == "200", result.stderr


def test_apt_mirror_is_the_hosts_only_source_and_their_own_come_back(deployed, hosts):
    """apt_mirror set: the host's sources are kept aside, apt reads the mirror only and reaches
    it directly (with TCP to the proxy cut, apt-get update still works, from the mirror); unset
    again: the host's own sources are back as they were."""
    name = CLUSTER.groups["postgres"][0]
    host, address = hosts[name], CLUSTER.node(name).address
    proxy = urlsplit(LAB.data(name).http_proxy)
    original = host.file("/etc/apt/sources.list").content_string
    cut = f"to {proxy.hostname} ipproto 6 dport {proxy.port} blackhole"
    with Mirror(proxy.hostname, MIRROR_PORT, proxy.geturl()) as mirror:
        try:
            run = run_pyinfra("--limit", name, "--data", f"apt_mirror={mirror.url}/debian",
                              "--data", f"apt_security_mirror={mirror.url}/debian-security")
            assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
            changed = [op for op, _ in run.changed_operations()]
            assert "Common | apt sources: the mirror's (apt_mirror)" in changed, changed
            assert "Common | apt index refreshed for the new sources" in changed, changed
            assert host.file(f"{ORIGINAL_DIR}/sources.list").content_string == original
            sources = [line for line in host.file("/etc/apt/sources.list").content_string
                       .splitlines() if line.startswith("deb ")]
            assert sources and all(line.startswith(f"deb {mirror.url}/") for line in sources)
            assert host.run(f"ip rule add {cut}").rc == 0
            try:
                reach = host.run(f"timeout 5 bash -c '</dev/tcp/{proxy.hostname}/{proxy.port}'")
                assert reach.rc != 0, "the proxy is still reachable: the route is not cut"
                update = host.run("apt-get update")
                assert update.rc == 0 and "Err:" not in update.stdout, update.stdout + update.stderr
            finally:
                host.run(f"ip rule del {cut}")
            fetched = {path.rsplit("/", 1)[-1] for client, path, status in mirror.requests
                       if client == address and status == 200}
            assert "InRelease" in fetched, mirror.requests
        finally:
            restored = run_pyinfra("--limit", name)
    assert restored.returncode == 0 and restored.totals.get("error", 0) == 0, restored.describe()
    assert host.file("/etc/apt/sources.list").content_string == original
    assert not host.file(ORIGINAL_DIR).exists
    assert host.run("apt-get update").rc == 0


def test_a_sudoer_deploys_and_no_secret_file_is_staged_where_others_read(deployed):
    """As a sudoer (`_sudo=True`), pyinfra uploads each file as that user first: the deploy
    stages those uploads in a directory only that user enters (operations/files.py
    private_upload). Two private files removed behind the deploy's back come back, with their
    owner and mode, and no staging directory is left."""
    name = CLUSTER.groups["worker"][-1]
    settings = LAB.data(name)
    logserver, rules = f"{settings.airflow_home}/logserver.cfg", "/etc/airflow-cluster/firewall.nft"
    sudoer = "airflow-cluster-test-sudoer"
    setup = LAB.run(name, " && ".join([
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q sudo >/dev/null",
        f"id {sudoer} >/dev/null 2>&1 || useradd -m -s /bin/sh {sudoer}",
        f"echo '{sudoer} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{sudoer}",
        f"install -d -m 0700 -o {sudoer} /home/{sudoer}/.ssh",
        f"install -m 0600 -o {sudoer} /root/.ssh/authorized_keys /home/{sudoer}/.ssh/",
        f"rm -f {logserver} {rules}",
    ]), timeout=600)
    assert setup.returncode == 0, setup.stderr
    try:
        run = run_pyinfra("--limit", name, "--data", f"ssh_user={sudoer}", "--data", "_sudo=True")
        assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
        changed = [op for op, _ in run.changed_operations()]
        assert any("log server configuration" in op for op in changed), changed
        assert any("firewall.nft" in op for op in changed), changed
        host = LAB.host(name)
        assert (host.file(logserver).user, host.file(logserver).group,
                host.file(logserver).mode) == ("root", settings.log_server_user, 0o640)
        assert (host.file(rules).user, host.file(rules).mode) == ("root", 0o600)
        assert LAB.secrets["api_secret_key"] in host.file(logserver).content_string
        left = LAB.run(name, "find /tmp -maxdepth 1 -name 'pyinfra-*'").stdout.split()
        assert left == [], left
    finally:
        LAB.run(name, f"rm -f /etc/sudoers.d/{sudoer} && userdel -r {sudoer}")
