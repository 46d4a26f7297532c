"""The rendered haproxy.cfg at work, on this machine's loopback: a real haproxy in front of
two small HTTP servers standing in for the API servers (127.0.0.1 and 127.0.0.2).

What the config promises and the lab cannot show without breaking an API server: a GET that
a dying server drops is retried on the other one; a POST it drops is not replayed (it may
have been applied); a stopped server is marked DOWN within a few health checks and gets no
more requests; the stats page needs its password; HTTP redirects to HTTPS."""

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
        super().__init__(address, Handler)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.path != "/api/v2/version":
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
    # Run unprivileged-style on loopback: no chroot, no user switch, no runtime socket dir.
    local = []
    for line in config.replace(lb.HAPROXY_PEM, str(pem)).splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("chroot", "user", "group") or line.strip().startswith("stats socket"):
            continue
        local.append(line.replace("bind :", "bind 127.0.0.1:"))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text("\n".join(local) + "\n")

    dying = ApiStandIn(("127.0.0.1", api_port), dying=True)
    good = ApiStandIn(("127.0.0.2", api_port), dying=False)
    for server in (dying, good):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    stack = dict(ports=ports, dying=dying, good=good, ca=files.ca, proxy=proxy)
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


def https(stack, method, path, body=None):
    context = ssl.create_default_context(cafile=str(stack["ca"]))
    context.check_hostname = False  # the certificate names the lab's addresses, not 127.0.0.1
    conn = http.client.HTTPSConnection("127.0.0.1", stack["ports"]["lb_https_port"], timeout=10,
                                       context=context)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def backend_status(stack):
    try:
        status, _, body = plain(stack, "lb_stats_port", path="/;csv", headers=auth())
    except OSError:
        return None
    rows = csv.DictReader(io.StringIO(body.decode().lstrip("# ")))
    return {r["svname"]: r["status"] for r in rows
            if r["pxname"] == "api_servers" and r["svname"].startswith("web")}


def test_get_dropped_by_a_dying_server_is_retried_on_the_other(stack):
    results = [https(stack, "GET", f"/api/v2/dags?n={n}") for n in range(10)]
    assert [status for status, _ in results] == [200] * 10
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


def test_stats_needs_the_password_and_http_redirects(stack):
    assert plain(stack, "lb_stats_port")[0] == 401
    assert plain(stack, "lb_stats_port", headers=auth("wrong"))[0] == 401
    assert plain(stack, "lb_stats_port", headers=auth())[0] == 200
    status, location, _ = plain(stack, "lb_http_port", path="/home?a=1",
                               headers={"Host": "airflow.example.com"})
    assert status == 301
    port = stack["ports"]["lb_https_port"]
    assert location == f"https://airflow.example.com:{port}/home?a=1"
