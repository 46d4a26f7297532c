"""The load balancer's configs, rendered offline for the lab inventory and checked by the real
validators: `haproxy -c` and keepalived's config test (install: haproxy keepalived)."""

import dataclasses
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cluster import secret_store, tls
from cluster.errors import ClusterConfigError, SecretsError
from cluster.model import build_cluster
from cluster.net import vip_outside_network
from cluster.role_checks import check_role_settings
from tasks import lb
from tests.unit.support import GROUPS, MARKER, PROJECT as REPO, api_inventory, render_template

SECRETS = {"stats_password": "St4ts-Pw_for_the_unit_test", "vrrp_password": "Vr-Pw_42",
           "redis_password": "r", "postgres_password": "p",
           "celery_db_password": "c"}
HEADER = f"# {MARKER}"


def render(template, cluster, inventory, name, secrets=SECRETS, interface="eth0", **overrides):
    settings = inventory.get_host(name).data.dict()
    settings["lb_vrrp_interface"] = interface  # the task resolves it from the host's facts
    settings.update(overrides)
    return render_template(inventory, template, cluster, name, secrets, settings)


def haproxy_cfg(cluster, inventory, name="lb1", **kw):
    return render(lb.HAPROXY_TEMPLATE, cluster, inventory, name, **kw)


def keepalived_conf(cluster, inventory, name="lb1", **kw):
    return render(lb.KEEPALIVED_TEMPLATE, cluster, inventory, name, **kw)


def tool(name):
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed on this machine: `make system-deps` installs it")
    return path


@pytest.fixture(scope="module")
def cert_pem(tmp_path_factory, cluster, inventory):
    """A PEM like the one the deploy installs, made by cluster/tls.py in a scratch dir."""
    scratch = tmp_path_factory.mktemp("tls")
    files = tls.ensure_tls(dataclasses.replace(cluster.tls, directory=scratch / "tls"))
    pem = scratch / "haproxy.pem"
    pem.write_text(files.haproxy_pem())
    return pem


def haproxy_check(config, cert_pem, tmp_path):
    """`haproxy -c` on the rendered config, with the certificate at a local path."""
    assert config.count(lb.HAPROXY_PEM) == 2  # the HTTPS front and the stats page
    path = tmp_path / "haproxy.cfg"
    path.write_text(config.replace(lb.HAPROXY_PEM, str(cert_pem)))
    return subprocess.run([tool("haproxy"), "-c", "-f", str(path)], capture_output=True,
                          text=True)


@pytest.mark.parametrize("name", ["lb1", "lb2"])
def test_lab_haproxy_cfg_passes_haproxy_check(cluster, inventory, cert_pem, tmp_path, name):
    result = haproxy_check(haproxy_cfg(cluster, inventory, name), cert_pem, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_check_catches_a_broken_config(cluster, inventory, cert_pem, tmp_path):
    """The validator really validates: the same config with one bad line fails."""
    broken = haproxy_cfg(cluster, inventory).replace("balance roundrobin", "balance nosuchalgo")
    assert haproxy_check(broken, cert_pem, tmp_path).returncode != 0


def test_haproxy_cfg_listeners_backends_and_checks(cluster, inventory):
    cfg = haproxy_cfg(cluster, inventory)
    assert cfg.startswith(HEADER)
    assert re.search(r"^\s+bind :443 ssl crt /etc/haproxy/certs/airflow-cluster\.pem\b", cfg, re.M)
    assert re.search(r"^frontend http\n\s+bind :80\n\s+http-request redirect scheme https", cfg,
                     re.M)
    # The stats page over TLS only (its Basic auth never in clear).
    assert re.search(r"^\s+bind :8404 ssl crt /etc/haproxy/certs/airflow-cluster\.pem\b", cfg,
                     re.M)
    # Every web host is a backend, health-checked on GET /api/v2/version, fast detection.
    servers = re.findall(r"^\s+server (\S+) (\S+)$", cfg, re.M)
    assert servers == [(name, f"{addr}:8080") for name, addr, _ in cluster.api_backends]
    assert [name for name, _ in servers] == ["web1", "web2"]
    assert "http-check send meth GET uri /api/v2/version" in cfg
    assert "http-check expect status 200" in cfg
    default_server = re.search(r"^\s+default-server (.*)$", cfg, re.M).group(1).split()
    assert default_server[0] == "check"
    assert default_server[default_server.index("inter") + 1] == "1000ms"
    assert default_server[default_server.index("fall") + 1] == "2"
    assert default_server[default_server.index("rise") + 1] == "2"
    assert re.search(r"^\s+option redispatch\b", cfg, re.M)
    retry_on = re.search(r"^\s+retry-on (.*)$", cfg, re.M).group(1).split()
    assert {"conn-failure", "empty-response"} <= set(retry_on)


def test_stats_page_has_auth_and_no_admin(cluster, inventory):
    cfg = haproxy_cfg(cluster, inventory)
    stats = cfg[cfg.index("listen stats"):]
    assert re.search(r"^\s+stats auth 'admin:St4ts-Pw_for_the_unit_test'$", stats, re.M)
    assert not re.search(r"^\s*stats\s+admin\b", cfg, re.M)
    assert "admin if TRUE" not in cfg
    # The password is in that one line and nowhere else.
    assert cfg.count(SECRETS["stats_password"]) == 1


def test_stats_password_comes_from_the_secrets_not_the_repo(cluster, inventory):
    other = {**SECRETS, "stats_password": "another-password"}
    assert "admin:another-password'" in haproxy_cfg(cluster, inventory, secrets=other)
    template = (REPO / lb.HAPROXY_TEMPLATE).read_text()
    assert re.search(r"stats auth .*\{\{ secrets\.stats_password \}\}", template)
    # The real generated password (when this checkout has one) is in no file of the repo.
    secrets_file = REPO / ".secrets" / "cluster.json"
    if secrets_file.exists():
        real = json.loads(secrets_file.read_text())
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split()
        for rel in listed:
            path = REPO / rel
            if ".secrets" in path.parts or not path.is_file():
                continue
            text = path.read_bytes()
            for name in ("stats_password", "vrrp_password"):
                assert real[name].encode() not in text, f"{name} is written in {rel}"


def test_non_default_https_port_redirects_with_the_port(cluster, inventory, cert_pem, tmp_path):
    cfg = haproxy_cfg(cluster, inventory, lb_https_port=8443)
    assert "bind :8443 ssl" in cfg
    assert re.search(r"redirect location https://.*:8443%\[capture\.req\.uri\] code 301", cfg)
    result = haproxy_check(cfg, cert_pem, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendering_is_deterministic(cluster, inventory):
    assert haproxy_cfg(cluster, inventory) == haproxy_cfg(cluster, inventory)
    assert keepalived_conf(cluster, inventory) == keepalived_conf(cluster, inventory)


# --- keepalived -------------------------------------------------------------------------------


def keepalived_check(config, tmp_path):
    """The deploy's own check command, with what this machine lacks swapped in: a real
    interface and an existing script user."""
    interfaces = sorted(p.name for p in Path("/sys/class/net").iterdir() if p.name != "lo")
    assert interfaces, "no network interface besides lo on this machine"
    config = config.replace(" eth0", f" {interfaces[0]}")
    config = config.replace(f"script_user {lb.SCRIPT_USER}", "script_user nobody")
    path = tmp_path / "keepalived.conf"
    path.write_text(config)
    tool("keepalived")
    return subprocess.run(["sh", "-c", lb.KEEPALIVED_CHECK.format(path=path)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("name", ["lb1", "lb2"])
def test_lab_keepalived_conf_passes_keepalived_check(cluster, inventory, tmp_path, name):
    result = keepalived_check(keepalived_conf(cluster, inventory, name), tmp_path)
    assert result.returncode == 0, result.stderr


def test_keepalived_check_catches_a_broken_config(cluster, inventory, tmp_path):
    broken = keepalived_conf(cluster, inventory).replace("virtual_router_id 51",
                                                        "virtual_router_id 951")
    assert keepalived_check(broken, tmp_path).returncode != 0


def test_keepalived_conf_vrrp(cluster, inventory):
    one, two = (keepalived_conf(cluster, inventory, n) for n in ("lb1", "lb2"))
    for conf, me, peer in ((one, "172.29.213.11", "172.29.213.12"),
                           (two, "172.29.213.12", "172.29.213.11")):
        assert conf.startswith(HEADER)
        assert re.search(r"^\s+state BACKUP$", conf, re.M)
        assert re.search(r"^\s+nopreempt$", conf, re.M)
        assert re.search(rf"^\s+unicast_src_ip {me}$", conf, re.M)
        assert re.search(rf"unicast_peer \{{\s+{peer}\s+\}}", conf)
        assert re.search(r"^\s+auth_type PASS\n\s+auth_pass Vr-Pw_42$", conf, re.M)
        assert re.search(r"^\s+172\.29\.213\.10/32 dev eth0$", conf, re.M)
        assert re.search(r"track_script \{\s+haproxy_alive\s+\}", conf)
        assert "--insecure --noproxy * --max-time 1 --output /dev/null https://127.0.0.1:8404/healthz" in conf
    priority = [int(re.search(r"priority (\d+)", c).group(1)) for c in (one, two)]
    assert priority[0] > priority[1], "priority by host order"


def test_one_lb_host_has_no_vip(inventory, cert_pem, tmp_path):
    single = build_cluster(api_inventory(groups={**GROUPS, "lb": ("lb1",)}))
    assert single.lb_vip is None
    assert single.public_url == "https://172.29.213.11"
    assert single.execution_api_url == "https://172.29.213.11/execution/"
    result = haproxy_check(haproxy_cfg(single, inventory), cert_pem, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_url_uses_the_vip(cluster):
    assert cluster.public_url == "https://172.29.213.10"
    assert cluster.execution_api_url == "https://172.29.213.10/execution/"


@pytest.mark.parametrize("bad", ["it's", 'a"b', "a#b", "a\\b", "a{b}", "a!b"])
def test_secrets_that_cannot_sit_in_the_configs_are_refused(bad, tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps({"stats_password": bad}))
    path.chmod(0o600)
    with pytest.raises(SecretsError, match="stats_password"):
        secret_store.load_or_create(path)
    path.write_text(json.dumps({"stats_password": SECRETS["stats_password"]}))
    assert secret_store.load_or_create(path)["stats_password"] == SECRETS["stats_password"]


def test_lb_hosts_must_agree_on_the_vrrp_router_id(inventory):
    roles = {g: {} for g in GROUPS}
    lb_settings = {name: inventory.get_host(name).data.dict() for name in ("lb1", "lb2")}
    check_role_settings({**roles, "lb": lb_settings})
    lb_settings["lb2"]["lb_vrrp_router_id"] = 52
    with pytest.raises(ClusterConfigError, match="lb_vrrp_router_id"):
        check_role_settings({**roles, "lb": lb_settings})


@pytest.mark.parametrize("vip, network, outside", [
    ("172.29.213.10", "172.29.213.0/24", False),
    ("172.29.214.10", "172.29.213.0/24", True),
    ("10.0.0.200", "10.0.0.0/25", True),
])
def test_the_vip_must_be_on_the_network_of_the_lb_hosts_address(vip, network, outside):
    """The deploy asks each lb host which network its address is on (facts/network.py) and
    refuses a VIP outside it before anything changes (tasks/lb.py vrrp_interface)."""
    problem = vip_outside_network(vip, "172.29.213.11", network)
    assert (problem is not None) == outside
    if outside:
        assert f"lb_vip {vip} is outside the network {network}" in problem
