"""The load balancer's certificate, made on the control machine with the openssl CLI:
generated once, private, stable, made again only when the inventory's names change."""

import dataclasses
import os
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from cluster import tls
from cluster.errors import ClusterConfigError
from cluster.model import build_cluster, load_inventory

REPO = Path(__file__).resolve().parents[2]
LAB_NAMES = (["lb1", "lb2"], ["172.29.213.10", "172.29.213.11", "172.29.213.12"])


class StubInventory:
    """What cluster/tls.py reads: the lb hosts' data."""

    def __init__(self, **data):
        self.data = {"lb_tls_cert": None, "lb_tls_key": None, "lb_tls_ca": None,
                     "lb_tls_names": [], **data}
        self.per_host = {}

    def get_host(self, name):
        data = {**self.data, **self.per_host.get(name, {})}
        return type("Host", (), {"name": name, "data": data})()


@pytest.fixture(scope="module")
def lab_cluster():
    return build_cluster(load_inventory(project_dir=REPO))


@pytest.fixture
def cluster(lab_cluster, tmp_path):
    tls._CHECKED.clear()  # every test starts from its own empty secrets dir
    settings = {**lab_cluster.settings, "secrets_file": str(tmp_path / ".secrets/cluster.json")}
    return dataclasses.replace(lab_cluster, settings=settings)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix in
            (".crt", ".key")}


def openssl(*args):
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)


def test_generated_ca_and_server_certificate(cluster, tmp_path):
    files = tls.ensure_tls(cluster, StubInventory())
    directory = tmp_path / ".secrets" / "tls"
    assert files == tls.TlsFiles(cert=directory / "server.crt", key=directory / "server.key",
                                 ca=directory / "ca.crt", generated=True)
    assert tls.ca_certificate_path(cluster, StubInventory()) == directory / "ca.crt"
    assert mode(directory) == 0o700
    assert mode(directory / "ca.key") == 0o600 and mode(files.key) == 0o600
    assert sorted(snapshot(directory)) == ["ca.crt", "ca.key", "server.crt", "server.key"]
    # SANs: the VIP, every lb address and every lb host name.
    assert tls.certificate_names(files.cert) == LAB_NAMES
    verify = openssl("verify", "-CAfile", files.ca, files.cert)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "CA:TRUE" in openssl("x509", "-in", files.ca, "-noout", "-ext",
                                "basicConstraints").stdout


def test_stable_across_runs(cluster, tmp_path):
    tls.ensure_tls(cluster, StubInventory())
    before = snapshot(tmp_path / ".secrets" / "tls")
    tls._CHECKED.clear()  # a new deploy process
    tls.ensure_tls(cluster, StubInventory())
    assert snapshot(tmp_path / ".secrets" / "tls") == before


def test_new_names_make_a_new_server_certificate_with_the_same_ca(cluster, tmp_path):
    tls.ensure_tls(cluster, StubInventory())
    before = snapshot(tmp_path / ".secrets" / "tls")
    files = tls.ensure_tls(cluster, StubInventory(lb_tls_names=["airflow.example.com", "10.9.8.7"]))
    after = snapshot(tmp_path / ".secrets" / "tls")
    assert (after["ca.crt"], after["ca.key"]) == (before["ca.crt"], before["ca.key"])
    assert after["server.crt"] != before["server.crt"]
    assert tls.certificate_names(files.cert) == (
        ["airflow.example.com", "lb1", "lb2"], ["10.9.8.7", *LAB_NAMES[1]]
    )


def test_an_lb_host_removed_from_the_inventory_changes_the_sans(cluster):
    one_lb = dataclasses.replace(cluster, groups={**cluster.groups, "lb": ("lb1",)}, lb_vip=None)
    files = tls.ensure_tls(one_lb, StubInventory())
    assert tls.certificate_names(files.cert) == (["lb1"], ["172.29.213.11"])


@pytest.mark.parametrize("lost", ["server.key", "server.crt"])
def test_a_missing_server_file_is_made_again(cluster, tmp_path, lost):
    directory = tmp_path / ".secrets" / "tls"
    tls.ensure_tls(cluster, StubInventory())
    before = snapshot(directory)
    (directory / lost).unlink()
    files = tls.ensure_tls(cluster, StubInventory())
    after = snapshot(directory)
    assert after["ca.crt"] == before["ca.crt"] and after["server.key"] != before["server.key"]
    assert openssl("verify", "-CAfile", files.ca, files.cert).returncode == 0


def test_a_lost_ca_key_makes_a_new_ca_and_certificate(cluster, tmp_path):
    directory = tmp_path / ".secrets" / "tls"
    tls.ensure_tls(cluster, StubInventory())
    before = snapshot(directory)
    (directory / "ca.key").unlink()
    files = tls.ensure_tls(cluster, StubInventory())
    after = snapshot(directory)
    assert after["ca.crt"] != before["ca.crt"] and after["server.crt"] != before["server.crt"]
    assert openssl("verify", "-CAfile", files.ca, files.cert).returncode == 0


def test_clients_trusting_the_ca_accept_the_certificate_for_the_vip(cluster):
    """A real TLS handshake on loopback, verified the way a worker verifies the LB."""
    files = tls.ensure_tls(cluster, StubInventory())
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(files.cert, files.key)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve():
        for _ in range(2):
            conn, _ = listener.accept()
            try:
                with server_ctx.wrap_socket(conn, server_side=True) as tls_conn:
                    tls_conn.sendall(b"hello")
            except (ssl.SSLError, OSError):
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(files.ca))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_ctx.wrap_socket(raw, server_hostname="172.29.213.10") as conn:
            assert conn.recv(5) == b"hello"
    # A name that is not in the certificate is refused.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_ctx.wrap_socket(raw, server_hostname="172.29.213.99")
    thread.join(10)
    listener.close()


def test_user_supplied_certificate(cluster, tmp_path):
    made = tls.ensure_tls(cluster, StubInventory())  # any CA-signed pair will do
    inventory = StubInventory(lb_tls_cert=str(made.cert), lb_tls_key=str(made.key),
                              lb_tls_ca=str(made.ca))
    files = tls.ensure_tls(cluster, inventory)
    assert files == tls.TlsFiles(cert=made.cert, key=made.key, ca=made.ca, generated=False)
    public = StubInventory(lb_tls_cert=str(made.cert), lb_tls_key=str(made.key))
    assert tls.ca_certificate_path(cluster, public) is None  # publicly trusted: system store
    assert files.haproxy_pem() == made.cert.read_text() + made.key.read_text()


def test_user_supplied_key_must_match(cluster, tmp_path):
    made = tls.ensure_tls(cluster, StubInventory())
    with pytest.raises(ClusterConfigError, match="not the key of"):
        tls.ensure_tls(cluster, StubInventory(lb_tls_cert=str(made.cert),
                                              lb_tls_key=str(made.ca.with_name("ca.key"))))
    with pytest.raises(ClusterConfigError, match="no such file"):
        tls.ensure_tls(cluster, StubInventory(lb_tls_cert=str(tmp_path / "nope.crt"),
                                              lb_tls_key=str(made.key)))
    with pytest.raises(ClusterConfigError, match="both"):
        tls.ensure_tls(cluster, StubInventory(lb_tls_cert=str(made.cert)))


def test_lb_hosts_must_agree_on_the_certificate(cluster):
    inventory = StubInventory()
    inventory.per_host["lb2"] = {"lb_tls_names": ["other.example.com"]}
    with pytest.raises(ClusterConfigError, match="lb_tls_names"):
        tls.ensure_tls(cluster, inventory)


def test_lab_inventory_data_is_read(lab_cluster, tmp_path):
    """The shipped group_data/lb.py defaults: a generated certificate."""
    tls._CHECKED.clear()
    settings = {**lab_cluster.settings, "secrets_file": str(tmp_path / "s" / "cluster.json")}
    cluster = dataclasses.replace(lab_cluster, settings=settings)
    files = tls.ensure_tls(cluster, load_inventory(project_dir=REPO))
    assert files.generated and files.ca == tmp_path / "s" / "tls" / "ca.crt"


def test_hosts_prepared_concurrently_get_one_certificate(cluster, tmp_path):
    """pyinfra prepares every host's operations in its own greenlet: they must all get the
    certificate that stays on disk, made once."""
    gevent = pytest.importorskip("gevent")

    def prepare():
        return tls.ensure_tls(cluster, StubInventory()).haproxy_pem()

    greenlets = [gevent.spawn(prepare) for _ in range(4)]
    gevent.joinall(greenlets, timeout=120, raise_error=True)
    pems = {g.value for g in greenlets}
    directory = tmp_path / ".secrets" / "tls"
    on_disk = (directory / "server.crt").read_text() + (directory / "server.key").read_text()
    assert pems == {on_disk}
