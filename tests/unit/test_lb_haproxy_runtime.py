"""The rendered haproxy.cfg at work, on this machine's loopback: a real haproxy in front of
two small HTTP servers standing in for the API servers (127.0.0.1 and 127.0.0.2).

What the config promises and the lab cannot show without breaking an API server: a GET that
a dying server drops is retried on the other one; a POST it drops is not replayed (it may
have been applied); a stopped server is marked DOWN within a few health checks and gets no
more requests; the stats page needs its password; HTTP redirects to HTTPS. And the runtime
socket as the rolling restarts drive it (operations/haproxy.py, operations/api_server.py,
their commands run here instead of on an lb host): a drained server gets no new request, a
ready one is counted UP again, a failed restart does not leave its server drained."""

import base64
import csv
import dataclasses
import http.client
import io
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cluster import tls
from cluster.model import Node, build_cluster, load_inventory
from operations import api_server, haproxy, remote
from tasks import lb

REPO = Path(__file__).resolve().parents[2]
SECRETS = {"stats_password": "runtime-test-pw", "vrrp_password": "Vr-Pw_42"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiStandIn(ThreadingHTTPServer):
    """Answers the health check; for other requests either answers 200 or, when `dying`,
    reads the request and closes the connection without a response."""

    daemon_threads = True

    def __init__(self, address, dying):
        self.dying, self.seen = dying, []
        # Seconds the health check waits for its answer (an overloaded API server).
        self.check_delay = 0
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path == "/api/v2/version":
            time.sleep(self.server.check_delay)
        else:
            self.server.seen.append(self.command)
            if self.server.dying:
                self.close_connection = True
                return  # no response at all: what a crashing server gives
        body = b'{"version": "stand-in"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _handle


@pytest.fixture
def stack(tmp_path):
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy is not installed on this machine: `make system-deps` installs it")
    inventory = load_inventory(project_dir=REPO)
    lab = build_cluster(inventory)
    api_port = free_port()
    nodes = dict(lab.nodes)
    nodes["web1"] = Node("web1", "127.0.0.1", nodes["web1"].groups)
    nodes["web2"] = Node("web2", "127.0.0.2", nodes["web2"].groups)
    cluster = dataclasses.replace(
        lab, nodes=nodes, settings={**lab.settings, "api_port": api_port},
        api_backends=(("web1", "127.0.0.1", api_port), ("web2", "127.0.0.2", api_port)),
    )
    ports = {"lb_http_port": free_port(), "lb_https_port": free_port(),
             "lb_stats_port": free_port()}
    settings = {**inventory.get_host("lb1").data.dict(), **ports}
    config = lb.render(lb.HAPROXY_TEMPLATE, {"cluster": cluster, "node": cluster.node("lb1"),
                                             "settings": settings, "secrets": SECRETS})
    files = tls.ensure_tls(dataclasses.replace(cluster.tls, directory=tmp_path / "tls"))
    pem = tmp_path / "lb.pem"
    pem.write_text(files.haproxy_pem())
    # Run unprivileged-style on loopback: no chroot, no user switch, the runtime socket in
    # tmp_path.
    local = []
    for line in config.replace(lb.HAPROXY_PEM, str(pem)).splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("chroot", "user", "group"):
            continue
        line = line.replace(haproxy.SOCKET, str(tmp_path / "admin.sock"))
        local.append(line.replace("bind :", "bind 127.0.0.1:"))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("\n".join(local) + "\n")

    dying = ApiStandIn(("127.0.0.1", api_port), dying=True)
    good = ApiStandIn(("127.0.0.2", api_port), dying=False)
    for server in (dying, good):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    stack = dict(ports=ports, dying=dying, good=good, ca=files.ca, proxy=proxy,
                 socket=tmp_path / "admin.sock")
    try:
        assert wait_for(lambda: backend_status(stack) == {"web1": "UP", "web2": "UP"}, 30), (
            backend_status(stack), proxy.poll() is not None and proxy.stderr.read())
        yield stack
    finally:
        proxy.terminate()
        proxy.wait(10)
        for server in (dying, good):
            server.shutdown()
            server.server_close()


def wait_for(predicate, timeout):
    """Whether predicate() holds within `timeout` s; a connection refused (HAProxy still
    starting on a loaded machine) counts as not yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


def auth(password=SECRETS["stats_password"]):
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def plain(stack, port_name, method="GET", path="/", headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", stack["ports"][port_name], timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.getheader("location"), response.read()
    finally:
        conn.close()


def https(stack, method, path, body=None, port_name="lb_https_port", headers=None):
    """(status, headers, body) over TLS verified with the stack's CA (header names: any case)."""
    context = ssl.create_default_context(cafile=str(stack["ca"]))
    context.check_hostname = False  # the certificate names the lab's addresses, not 127.0.0.1
    conn = http.client.HTTPSConnection("127.0.0.1", stack["ports"][port_name], timeout=10,
                                       context=context)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def stats(stack, path="/", headers=None):
    """(status, headers, body) of the stats page, which is served over TLS only."""
    return https(stack, "GET", path, port_name="lb_stats_port", headers=headers)


def backend_status(stack):
    try:
        status, _, body = stats(stack, path="/;csv", headers=auth())
    except OSError:
        return None
    rows = csv.DictReader(io.StringIO(body.decode().lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows
            if r["pxname"] == "api_servers" and r["svname"].startswith("web")}


def test_get_dropped_by_a_dying_server_is_retried_on_the_other(stack):
    results = [https(stack, "GET", f"/api/v2/dags?n={n}") for n in range(10)]
    assert [status for status, _, _ in results] == [200] * 10
    assert "GET" in stack["dying"].seen, "the dying server did get some of the requests"
    assert stack["good"].seen.count("GET") == 10, "every one was answered by the other"


def test_post_dropped_by_a_dying_server_is_not_replayed(stack):
    statuses = [https(stack, "POST", "/api/v2/dags/x/dagRuns", body=b"{}")[0]
                for _ in range(10)]
    dropped = stack["dying"].seen.count("POST")
    assert dropped > 0
    assert statuses.count(502) == dropped  # each dropped POST failed once, none sent twice
    assert stack["good"].seen.count("POST") == 10 - dropped


def test_a_stopped_server_is_marked_down_and_avoided(stack):
    stack["dying"].shutdown()
    stack["dying"].server_close()
    start = time.monotonic()
    assert wait_for(lambda: backend_status(stack) == {"web1": "DOWN", "web2": "UP"}, 30)
    # fall 2 x inter 1 s: a few seconds at most (generous bound for a loaded machine).
    assert time.monotonic() - start < 15
    assert [https(stack, "GET", "/x")[0] for _ in range(6)] == [200] * 6


def test_every_server_failing_its_checks_still_gets_the_requests(stack):
    """Panic mode: both API servers too slow for their checks (overloaded, not dead) are
    marked DOWN, and requests still reach them instead of HAProxy answering 503."""
    stack["dying"].dying = False
    for server in (stack["dying"], stack["good"]):
        server.check_delay = 7  # > timeout check (5 s)
    assert wait_for(lambda: backend_status(stack) == {"web1": "DOWN", "web2": "DOWN"}, 60)
    assert [https(stack, "GET", f"/x?n={n}")[0] for n in range(6)] == [200] * 6
    assert stack["dying"].seen.count("GET") + stack["good"].seen.count("GET") >= 6


def test_stats_needs_the_password_over_tls_and_http_redirects(stack):
    assert stats(stack)[0] == 401
    assert stats(stack, headers=auth("wrong"))[0] == 401
    assert stats(stack, headers=auth())[0] == 200
    assert stats(stack, path="/healthz")[0] == 200  # keepalived's check: no password
    # The password is never asked for in clear: plain HTTP on the stats port gets no page.
    with pytest.raises((http.client.HTTPException, OSError)):
        plain(stack, "lb_stats_port", headers=auth())
    status, location, _ = plain(stack, "lb_http_port", path="/home?a=1",
                               headers={"Host": "airflow.example.com"})
    assert status == 301
    port = stack["ports"]["lb_https_port"]
    assert location == f"https://airflow.example.com:{port}/home?a=1"


def test_https_answers_carry_hsts(stack):
    status, headers, _ = https(stack, "GET", "/x")
    assert status == 200
    assert headers.get("Strict-Transport-Security") == "max-age=31536000"


# --- the runtime socket, as the rolling restarts use it ---------------------------------------


@dataclasses.dataclass
class StandInHost:
    name: str


class StandInState:
    """What operations/haproxy.py and api_server.py ask of pyinfra's State: the lb hosts."""

    class inventory:
        get_host = StandInHost


@pytest.fixture
def runtime(stack, monkeypatch):
    """HAProxy's runtime commands run on this machine against the stack's socket; `systemctl`
    answers as `restart_fails` says. {"commands": [what ran], "restart_fails": bool}."""
    seen = {"commands": [], "restart_fails": False}
    monkeypatch.setattr(haproxy, "SOCKET", str(stack["socket"]))
    monkeypatch.setattr(remote, "connect", lambda host: None)

    def run(state, host, command, timeout=None):
        text = command if isinstance(command, str) else command.get_raw_value()
        seen["commands"].append(text)
        if text.startswith("systemctl"):
            ok = not (seen["restart_fails"] and "restart" in text)
            return remote.Result(ok, [], [] if ok else ["Job failed: see journalctl"])
        done = subprocess.run(["sh", "-c", text], capture_output=True, text=True, timeout=20)
        return remote.Result(done.returncode == 0, done.stdout.splitlines(),
                             done.stderr.splitlines())

    monkeypatch.setattr(remote, "run", run)
    return seen


def states(lb_host):
    return {name: s["status"] for name, s in haproxy.servers(StandInState, lb_host).items()}


def test_drain_sends_no_new_request_and_ready_counts_it_up_again(stack, runtime):
    lb1 = StandInHost("lb1")
    assert states(lb1) == {"web1": "UP", "web2": "UP"}
    haproxy.drain(StandInState, [lb1], "web1", timeout=10)
    assert states(lb1) == {"web1": "DRAIN", "web2": "UP"}
    stack["dying"].seen.clear()
    assert [https(stack, "GET", f"/x?n={n}")[0] for n in range(6)] == [200] * 6
    assert stack["dying"].seen == []  # the drained one got none of them
    haproxy.ready(StandInState, [lb1], "web1", timeout=30)
    assert states(lb1) == {"web1": "UP", "web2": "UP"}


def test_a_server_haproxy_does_not_know_is_not_set(stack, runtime):
    assert haproxy.set_state(StandInState, StandInHost("lb1"), "web9", "drain") is False


def test_a_failed_restart_leaves_the_server_ready_not_drained(stack, runtime):
    runtime["restart_fails"] = True
    said = []
    with pytest.raises(RuntimeError, match="web1: systemctl restart .*Job failed"):
        api_server.restart_drained(StandInState, StandInHost("web1"), ["lb1"],
                                   "airflow-api-server.service", drain_timeout=5, up_timeout=30,
                                   say=said.append)
    drained = [c for c in runtime["commands"] if "state drain" in c]
    readied = [c for c in runtime["commands"] if "state ready" in c]
    assert len(drained) == len(readied) == 1
    assert runtime["commands"].index(drained[0]) < runtime["commands"].index(readied[0])
    assert states(StandInHost("lb1")) == {"web1": "UP", "web2": "UP"}


def test_a_restart_drains_restarts_and_readies_in_that_order(stack, runtime):
    api_server.restart_drained(StandInState, StandInHost("web2"), ["lb1"],
                               "airflow-api-server.service", drain_timeout=5, up_timeout=30)
    steps = [("drain" if "state drain" in c else "ready" if "state ready" in c
              else "restart" if c.startswith("systemctl restart") else None)
             for c in runtime["commands"]]
    assert [step for step in steps if step] == ["drain", "restart", "ready"]
    assert states(StandInHost("lb1")) == {"web1": "UP", "web2": "UP"}
