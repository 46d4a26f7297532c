"""The lab proxy: real tinyproxy, with the config lab.tinyproxy renders, on loopback only.

Names ending in .invalid never resolve (RFC 6761); tinyproxy's filter refuses them before
any lookup, so no traffic leaves 127.0.0.1. tinyproxy is a system dependency (Makefile).
"""

import hashlib
import http.client
import os
import re
import socket
import subprocess
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lab import image
from lab.inventory import bridge_address, lab_subnet, load_hosts
from lab.paths import DEFAULT_INVENTORY, PROXY_PORT, LabPaths
from lab.tinyproxy import proxy_state, render_config, render_filter, start_proxy, stop_proxy

BODY = os.urandom(1_000_000)


class Origin(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def origin_port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def _tinyproxy(tmp_path, **ports):
    """tinyproxy on 127.0.0.1, allowing 127.0.0.1 and localhost (ports: the lab's 80/443
    unless given)."""
    paths, port = LabPaths(tmp_path), _free_port()
    pid = start_proxy(paths, "127.0.0.1", port, "127.0.0.1/32", ["127.0.0.1", "localhost"], **ports)
    try:
        yield paths, port, pid
    finally:
        stop_proxy(paths)


@pytest.fixture
def proxy(tmp_path, origin_port):
    """A proxy that allows the origin's port for http and CONNECT (the lab's are 80/443)."""
    with _tinyproxy(tmp_path, http_port=origin_port, connect_port=origin_port) as running:
        yield running


def _get(proxy_port, url):
    connection = http.client.HTTPConnection("127.0.0.1", proxy_port, timeout=10)
    connection.request("GET", url)
    response = connection.getresponse()
    return response.status, response.reason, response.read()


def test_allowed_host_is_proxied_logged_and_stopped(proxy, origin_port):
    paths, port, pid = proxy
    assert proxy_state(paths, "127.0.0.1", port) == {
        "state": "running", "address": f"127.0.0.1:{port}", "pid": pid,
    }
    if os.geteuid() == 0:  # tinyproxy drops root only when it has it
        assert re.search(r"^Uid:\s+65534\b", open(f"/proc/{pid}/status").read(), re.M)
    for host in ("127.0.0.1", "localhost"):
        assert _get(port, f"http://{host}:{origin_port}/fixed") == (200, "OK", BODY)
    log = paths.proxy_log.read_text()
    assert re.search(rf"Request \(file descriptor \d+\): GET http://localhost:{origin_port}/fixed ", log)
    assert "ERROR" not in log  # the readiness and status checks do not connect

    stop_proxy(paths)
    assert proxy_state(paths, "127.0.0.1", port)["state"] == "stopped"
    assert not paths.proxy_pid.exists()


def test_the_proxy_retries_a_dropped_lookup_after_1_s_not_5(proxy):
    """glibc reads RES_OPTIONS from the environment of the process that resolves."""
    _, _, pid = proxy
    environment = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
    assert b"RES_OPTIONS=timeout:1 attempts:5" in environment


def test_apt_downloads_through_the_proxy(proxy, origin_port, tmp_path):
    """apt's own http method: keep-alive and pipelining, while tinyproxy serves one request
    per connection. apt notices the closed connection and re-sends the rest."""
    paths, port, _ = proxy
    args = []
    for i in range(8):
        args += [f"http://127.0.0.1:{origin_port}/file{i}", str(tmp_path / f"file{i}"),
                 f"SHA256:{hashlib.sha256(BODY).hexdigest()}"]
    result = subprocess.run(
        ["/usr/lib/apt/apt-helper", "-o", f"Acquire::http::Proxy=http://127.0.0.1:{port}",
         "-o", "APT::Sandbox::User=root", "download-file", *args],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert all((tmp_path / f"file{i}").read_bytes() == BODY for i in range(8))


def test_connect_tunnel_to_allowed_host_and_port(proxy, origin_port):
    _, port, _ = proxy
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.set_tunnel("127.0.0.1", origin_port)
    connection.request("GET", "/fixed")
    response = connection.getresponse()
    assert (response.status, response.read()) == (200, BODY)


def test_other_hosts_and_ports_are_filtered_before_any_lookup(proxy, origin_port):
    paths, port, _ = proxy
    for url in (
        "http://blocked.invalid/",
        f"http://127.0.0.1:{origin_port + 1}/",  # allowed host, port not allowed
        f"http://127.0.0.1:{origin_port}@blocked.invalid/",  # user@host: host is blocked.invalid
    ):
        assert _get(port, url)[:2] == (403, "Filtered"), url
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.set_tunnel("blocked.invalid", origin_port)
    with pytest.raises(OSError, match="403 Filtered"):
        connection.request("GET", "/")
    # "Filtered": refused by the filter, which runs before tinyproxy resolves a name.
    assert 'Proxying refused on filtered url "blocked.invalid:' in paths.proxy_log.read_text()


def test_lab_ports_connect_only_to_443(tmp_path, origin_port):
    with _tinyproxy(tmp_path) as (_, port, _):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.set_tunnel("127.0.0.1", origin_port)
        with pytest.raises(OSError, match="403 Access violation"):
            connection.request("GET", "/")
        # Plain http only to port 80: the origin's port is refused too.
        assert _get(port, f"http://127.0.0.1:{origin_port}/")[:2] == (403, "Filtered")


def test_lab_config_allows_exactly_the_image_allowed_hosts():
    """What `lab up` renders: the bridge address, the lab subnet, image.allowed_hosts()."""
    subnet = lab_subnet(load_hosts(DEFAULT_INVENTORY))
    paths = LabPaths.from_env()
    config = render_config(paths, str(bridge_address(subnet)), PROXY_PORT, str(subnet))
    for line in ("Listen 172.29.213.1", "Port 3128", "Allow 172.29.213.0/24",
                 "FilterDefaultDeny Yes", "FilterURLs Yes", "FilterType ere", "ConnectPort 443",
                 f'Filter "{paths.proxy_filter}"', "User nobody"):
        assert line in config.splitlines()

    allowed = image.allowed_hosts(image.apt_source_uris())
    rules = [line for line in render_filter(allowed).splitlines() if not line.startswith("#")]
    assert len(rules) == len(allowed)

    def passes(target):  # Python's re agrees with POSIX ERE on these rules
        return any(re.search(rule, target, re.IGNORECASE) for rule in rules)

    for host in allowed:
        assert passes(f"http://{host}/debian/dists/") and passes(f"http://{host}:80/")
        assert passes(f"{host}:443")
        assert not passes(f"http://{host}:8080/") and not passes(f"{host}:22")
        assert not passes(f"http://{host}.blocked.invalid/") and not passes(f"x{host}:443")
    assert not passes("http://blocked.invalid/") and not passes("blocked.invalid:443")
