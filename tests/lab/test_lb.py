"""The load balancer on the lab: HAProxy and keepalived on the lb hosts only, HTTPS with the
cluster's certificate, the stats page behind its password, one VIP holder, failover when
HAProxy stops, no flapping back, and a converged re-run.

By default the deploy comes from conftest.py (`deployed`: a fresh lab, a full deploy and a
re-run). With LAB_EXTERNAL=1 the lab is taken as already up with the common role deployed,
and only the lb role is deployed: `pyinfra -y --json inventory.py deploy.py --limit lb`.
Requests go from this machine to the lab's addresses only (172.29.213.0/24).
"""

import http.client
import ssl
import time

import pytest

from cluster import tls
from lab.client import run_pyinfra, wait_for
from tests.lab.support import LAB, LAB_EXTERNAL, PUBLIC_URL_WATCH

CLUSTER = LAB.cluster
LB_HOSTS = list(CLUSTER.groups["lb"])
OTHER_HOSTS = [name for name in CLUSTER.nodes if name not in LB_HOSTS]
VIP = CLUSTER.lb_vip
HTTP_PORT, HTTPS_PORT, STATS_PORT = (
    LAB.lb_setting(k) for k in ("lb_http_port", "lb_https_port", "lb_stats_port")
)
# Every address clients may use: the VIP and each lb host's own.
FRONT_ADDRESSES = [VIP, *CLUSTER.addresses("lb")]


@pytest.fixture(scope="module")
def lb_deploy(role_deploy):
    return role_deploy("lb")["first"]


ssh, http_get, https_get, stats_get, vip_holders, backend_status = (
    LAB.host, LAB.http_get, LAB.https_get, LAB.stats_get, LAB.vip_holders, LAB.backend_status
)


def settled(predicate, timeout, interval=0.5):
    """predicate()'s first truthy value within `timeout` seconds, else its last (falsy) one,
    for the test's own assertion to say what it saw."""
    return wait_for("", predicate, timeout, interval, fail=False)


# --- services and files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", LB_HOSTS)
def test_haproxy_and_keepalived_active_and_enabled_on_lb_hosts(lb_deploy, name):
    host = ssh(name)
    for service in ("haproxy", "keepalived"):
        assert host.service(service).is_running, service
        assert host.service(service).is_enabled, service


@pytest.mark.parametrize("name", OTHER_HOSTS)
def test_no_load_balancer_on_other_hosts(lb_deploy, name):
    host = ssh(name)
    for package in ("haproxy", "keepalived"):
        assert not host.package(package).is_installed, package
    assert not host.socket(f"tcp://0.0.0.0:{HTTPS_PORT}").is_listening


@pytest.mark.parametrize("name", LB_HOSTS)
def test_config_files_are_private(lb_deploy, name):
    host = ssh(name)
    for path, owner in (("/etc/haproxy/haproxy.cfg", ("root", "haproxy")),
                        ("/etc/haproxy/certs/airflow-cluster.pem", ("root", "root")),
                        ("/etc/keepalived/keepalived.conf", ("root", "root"))):
        f = host.file(path)
        assert f.is_file, path
        assert (f.user, f.group) == owner, path
        assert f.mode & 0o037 == 0, f"{path} is {f.mode:04o}: 0640 or stricter"
        if not path.endswith(".pem"):
            assert f.contains("^# Managed by the airflow-cluster deploy"), path
    assert host.file("/etc/haproxy/certs").mode == 0o700
    # The staged copies of the validated install never stay behind.
    assert host.run("ls -a /etc/haproxy /etc/haproxy/certs /etc/keepalived "
                    "| grep -c '\\.new$'").stdout.strip() == "0"
    # The running HAProxy uses that config and certificate (validated again here).
    check = host.run("haproxy -c -f /etc/haproxy/haproxy.cfg")
    assert check.rc == 0, check.stdout + check.stderr


# --- what clients see -------------------------------------------------------------------------


@pytest.mark.parametrize("address", FRONT_ADDRESSES)
def test_http_redirects_to_https(lb_deploy, address):
    status, headers, _ = http_get(address, HTTP_PORT, "/api/v2/version?x=1")
    assert status == 301
    assert headers["location"] == f"https://{address}/api/v2/version?x=1"


@pytest.mark.parametrize("address", FRONT_ADDRESSES)
def test_https_answers_with_the_cluster_certificate(lb_deploy, address):
    # Verified against the CA the workers trust, for this exact address (an IP SAN).
    status, der, _ = https_get(address, "/api/v2/version")
    expected = tls.ensure_tls(CLUSTER.tls).cert.read_text()
    assert der == ssl.PEM_cert_to_DER_cert(expected)
    # 200 from an API server, or HAProxy's own 503 while no API server is up: HTTP answered.
    assert status in (200, 503)


@pytest.mark.parametrize("address", CLUSTER.addresses("lb"))
def test_stats_page_needs_the_password_over_tls(lb_deploy, address):
    assert stats_get(address, "/")[0] == 401
    wrong = LAB.stats_auth("not-the-password")
    assert stats_get(address, "/", headers=wrong)[0] == 401
    right = LAB.stats_auth()
    status, _, body = stats_get(address, "/", headers=right)
    assert status == 200 and b"api_servers" in body
    # Never in clear: plain HTTP on the stats port gets no page.
    with pytest.raises((http.client.HTTPException, OSError)):
        http_get(address, STATS_PORT, "/", headers=right)
    # Read-only: no admin controls on the page, and an admin action is refused.
    assert b'method="post"' not in body.lower() and b"<select" not in body.lower()
    conn = http.client.HTTPSConnection(address, STATS_PORT, timeout=10,
                                       context=LAB.ssl_context())
    try:
        conn.request("POST", "/", body="s=web1&action=maint&b=api_servers",
                     headers={**right, "Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        assert response.getheader("location", "").endswith("st=DENY"), response.status
    finally:
        conn.close()
    assert "MAINT" not in backend_status(address).get("web1", "")
    # The liveness URI keepalived checks answers without a password.
    assert stats_get(address, "/healthz")[0] == 200


def api_answers(lb_name, address, port):
    """Whether the API server answers GET /api/v2/version, seen from the lb host."""
    out = ssh(lb_name).run(
        f"curl -s --noproxy '*' -o /dev/null -w '%{{http_code}}' --max-time 5 "
        f"http://{address}:{port}/api/v2/version"
    ).stdout
    return out.strip() == "200"


@pytest.mark.parametrize("lb_name", LB_HOSTS)
def test_haproxy_sees_every_api_server_as_it_is(lb_deploy, lb_name):
    """HAProxy's health view matches what each API server answers right now: UP when
    GET /api/v2/version gives 200, DOWN otherwise (before the web role is deployed)."""
    address = CLUSTER.node(lb_name).address
    last = {}

    def matches():
        last["answering"] = {name: "UP" if api_answers(lb_name, addr, port) else "DOWN"
                             for name, addr, port in CLUSTER.api_backends}
        last["haproxy"] = backend_status(address)
        return last["haproxy"] == last["answering"]

    assert settled(matches, timeout=30), f"on {lb_name}: {last}"
    print(f"\n{lb_name}: HAProxy sees {last['haproxy']}")


def test_both_api_servers_up_through_the_vip(lb_deploy):
    """Needs the web role: with LAB_EXTERNAL=1 and no API server answering, it is skipped."""
    answering = [name for name, addr, port in CLUSTER.api_backends
                 if api_answers(LB_HOSTS[0], addr, port)]
    if LAB_EXTERNAL and not answering:
        pytest.skip("no API server answers GET /api/v2/version yet (web role not deployed)")
    for lb_name in LB_HOSTS:
        address = CLUSTER.node(lb_name).address
        seen = settled(lambda: (s := backend_status(address)) and
                        set(s.values()) == {"UP"} and s, timeout=120) or backend_status(address)
        assert seen == {name: "UP" for name, _, _ in CLUSTER.api_backends}, lb_name
    status, _, body = https_get(VIP, "/api/v2/version")
    assert status == 200 and b'"version"' in body, body[:300]


# --- the VIP ----------------------------------------------------------------------------------


def test_exactly_one_lb_host_holds_the_vip(lb_deploy):
    holders = settled(lambda: len(h := vip_holders()) == 1 and h, timeout=30) or vip_holders()
    assert len(holders) == 1, holders
    assert vip_holders(OTHER_HOSTS) == []


def test_stopping_haproxy_moves_the_vip_and_it_does_not_flap_back(lb_deploy):
    holders = settled(lambda: len(h := vip_holders()) == 1 and h, timeout=30)
    assert holders, vip_holders()
    old = holders[0]
    new = next(name for name in LB_HOSTS if name != old)
    with PUBLIC_URL_WATCH.expected_outage("test_lb stops HAProxy on the VIP holder"):
        _move_the_vip(old, new)
    # The old holder recovers (its check passes again) and stays BACKUP: no flap back.
    assert settled(lambda: stats_get(CLUSTER.node(old).address, "/healthz")[0] == 200,
                    timeout=30)
    deadline = time.monotonic() + 10  # > fall/rise (2 s) + several adverts
    while time.monotonic() < deadline:
        assert vip_holders() == [new]
        time.sleep(0.5)
    assert _https_ok(VIP)


def _move_the_vip(old, new):
    """Stop HAProxy on the VIP holder `old`: the VIP moves to `new`; HAProxy started again."""
    try:
        start = time.monotonic()
        assert ssh(old).run("systemctl stop haproxy").rc == 0
        moved = settled(lambda: vip_holders() == [new], timeout=30, interval=0.2)
        elapsed = time.monotonic() - start
        assert moved, f"VIP holders 30 s after stopping haproxy on {old}: {vip_holders()}"
        print(f"\nVIP moved from {old} to {new} in {elapsed:.1f} s")
        # Clients of the VIP reach the other HAProxy.
        assert settled(lambda: _https_ok(VIP), timeout=15), "HTTPS on the VIP after failover"
    finally:
        ssh(old).run("systemctl start haproxy")


def _https_ok(address):
    try:
        return https_get(address, "/")[0] in (200, 302, 307, 404, 503)
    except OSError:
        return False


# --- converged --------------------------------------------------------------------------------


def test_second_lb_deploy_changes_nothing(lb_deploy):
    run = run_pyinfra("--limit", "lb")
    assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
    assert run.totals.get("no_change", 0) > 0, run.describe()
    assert run.changed_operations() == [], run.changed_operations()
