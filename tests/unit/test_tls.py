"""The load balancer's certificate: which one (`tls_settings`, pure) and its files
(`ensure_tls`): generated once, private, stable, made again only when it must be; the user's
own files checked. The openssl CLI appears only where it proves HAProxy-side interop."""

import datetime
import fcntl
import ipaddress
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cluster import tls
from cluster.errors import ClusterConfigError
from cluster.loader import load_inventory

REPO = Path(__file__).resolve().parents[2]
VIP = "172.29.213.10"
LB_ADDRESSES = ("172.29.213.11", "172.29.213.12")
LAB_NAMES = (["lb1", "lb2"], [VIP, *LB_ADDRESSES])


def make_settings(tmp_path, lb_host_data=None, **kwargs) -> tls.TlsSettings:
    """The lab's two lb hosts and VIP; every lb host gets the same `lb_host_data` unless a
    full mapping is given."""
    if lb_host_data is None or "lb1" not in lb_host_data:
        lb_host_data = {"lb1": lb_host_data or {}, "lb2": lb_host_data or {}}
    args = {"lb_addresses": LB_ADDRESSES, "lb_vip": VIP, "public_host": VIP,
            "directory": tmp_path / ".secrets" / "tls", "project_dir": tmp_path, **kwargs}
    return tls.tls_settings(lb_host_data, **args)


def user_settings(tmp_path, cert, key, ca=None, **kwargs) -> tls.TlsSettings:
    data = {"lb_tls_cert": str(cert), "lb_tls_key": str(key),
            "lb_tls_ca": str(ca) if ca else None}
    return make_settings(tmp_path, data, **kwargs)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.suffix in
            (".crt", ".key")}


def openssl(*args):
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True)


def load(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


def extension(cert, kind):
    return cert.extensions.get_extension_for_class(kind)


# --- tls_settings -----------------------------------------------------------------------------


def test_settings_touch_no_file(tmp_path):
    settings = make_settings(tmp_path, {"lb_tls_names": ["Airflow.Example.com", "10.9.8.7"]})
    user = user_settings(tmp_path, "certs/lb.crt", "certs/lb.key", "certs/ca.crt")
    assert list(tmp_path.iterdir()) == []  # nothing made, and missing user files not checked
    assert settings == tls.TlsSettings(
        directory=tmp_path / ".secrets" / "tls", user_cert=None, user_key=None, user_ca=None,
        dns_names=("airflow.example.com", "lb1", "lb2"),
        ip_addresses=("10.9.8.7", VIP, *LB_ADDRESSES), common_name=VIP,
    )
    assert settings.generated and settings.ca_path == tmp_path / ".secrets" / "tls" / "ca.crt"
    # Relative user paths are taken from the project dir.
    assert (user.user_cert, user.user_key) == (tmp_path / "certs/lb.crt", tmp_path / "certs/lb.key")
    assert not user.generated and user.ca_path == tmp_path / "certs" / "ca.crt"
    assert user_settings(tmp_path, "/a.crt", "/a.key").ca_path is None  # publicly trusted


def test_settings_sort_ipv4_before_ipv6_and_drop_duplicates(tmp_path):
    settings = make_settings(tmp_path, {"lb_tls_names": ["fd00::1", "10.0.0.2", "LB1", VIP]})
    assert settings.ip_addresses == ("10.0.0.2", VIP, *LB_ADDRESSES, "fd00::1")
    assert settings.dns_names == ("lb1", "lb2")


def test_lb_hosts_must_agree_on_the_certificate(tmp_path):
    data = {"lb1": {}, "lb2": {"lb_tls_names": ["other.example.com"]}}
    with pytest.raises(ClusterConfigError, match="'lb1' and 'lb2' have different lb_tls_names"):
        make_settings(tmp_path, data)
    data = {"lb1": {"lb_tls_cert": "a.crt", "lb_tls_key": "a.key"},
            "lb2": {"lb_tls_cert": "b.crt", "lb_tls_key": "a.key", "lb_tls_ca": "ca.crt"}}
    with pytest.raises(ClusterConfigError, match="different lb_tls_cert, lb_tls_ca:"):
        make_settings(tmp_path, data)


def test_cert_key_and_ca_come_together(tmp_path):
    with pytest.raises(ClusterConfigError, match="both lb_tls_cert and lb_tls_key"):
        make_settings(tmp_path, {"lb_tls_cert": "a.crt"})
    with pytest.raises(ClusterConfigError, match="both lb_tls_cert and lb_tls_key"):
        make_settings(tmp_path, {"lb_tls_key": "a.key", "lb_tls_ca": "ca.crt"})
    with pytest.raises(ClusterConfigError, match="lb_tls_ca is the CA of your own lb_tls_cert"):
        make_settings(tmp_path, {"lb_tls_ca": "ca.crt"})


def test_lab_inventory_data_is_read(tmp_path):
    """The shipped group_data/lb.py defaults, as the model passes them: a generated certificate
    for the VIP, every lb address and host name."""
    inventory = load_inventory(project_dir=REPO)
    lb = [host.name for host in inventory.get_group("lb")]
    data = {name: inventory.get_host(name).data.dict() for name in lb}
    settings = tls.tls_settings(data, LB_ADDRESSES, VIP, VIP, tmp_path / "tls", REPO)
    assert settings.generated and (list(settings.dns_names), list(settings.ip_addresses)) == (
        LAB_NAMES
    )


# --- ensure_tls: the generated material -------------------------------------------------------


def test_generated_ca_and_server_certificate(tmp_path):
    settings = make_settings(tmp_path)
    files = tls.ensure_tls(settings)
    directory = tmp_path / ".secrets" / "tls"
    assert files == tls.TlsFiles(cert=directory / "server.crt", key=directory / "server.key",
                                 ca=directory / "ca.crt", generated=True)
    assert files.ca == settings.ca_path
    assert mode(directory) == 0o700
    assert mode(directory / "ca.key") == 0o600 and mode(files.key) == 0o600
    assert mode(files.ca) == 0o644 and mode(files.cert) == 0o644
    # No temporary file left behind; .lock is the inter-process lock.
    assert sorted(p.name for p in directory.iterdir()) == [
        ".lock", "ca.crt", "ca.key", "server.crt", "server.key"]
    assert tls.certificate_names(files.cert) == LAB_NAMES
    # What HAProxy's and the workers' OpenSSL will check, in its strict mode (Python >= 3.13
    # clients verify with X509_STRICT).
    verify = openssl("verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", files.ca,
                     files.cert)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert openssl("pkey", "-in", files.key, "-noout").returncode == 0


def test_generated_ca_profile(tmp_path):
    ca = load(tls.ensure_tls(make_settings(tmp_path)).ca)
    assert ca.subject.rfc4514_string() == "CN=airflow-cluster CA" == ca.issuer.rfc4514_string()
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert ca.public_key().curve.name == "secp256r1"
    assert ca.not_valid_after_utc - ca.not_valid_before_utc == datetime.timedelta(days=3650)
    constraints = extension(ca, x509.BasicConstraints)
    assert constraints.critical and constraints.value == x509.BasicConstraints(True, 0)
    usage = extension(ca, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    assert extension(ca, x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(ca.public_key()))


def test_generated_server_certificate_profile(tmp_path):
    files = tls.ensure_tls(make_settings(tmp_path))
    ca, cert = load(files.ca), load(files.cert)
    assert cert.subject.rfc4514_string() == f"CN={VIP}" and cert.issuer == ca.subject
    assert cert.public_key().curve.name == "secp256r1"
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == datetime.timedelta(days=825)
    assert cert.not_valid_before_utc < datetime.datetime.now(datetime.timezone.utc)
    constraints = extension(cert, x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = extension(cert, x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    assert list(extension(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert extension(cert, x509.SubjectKeyIdentifier)
    aki = extension(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == extension(ca, x509.SubjectKeyIdentifier).value.digest


def test_ensure_tls_is_idempotent(tmp_path):
    settings = make_settings(tmp_path)
    tls.ensure_tls(settings)
    before = snapshot(settings.directory)
    # The same settings computed again, as by the next deploy run.
    assert tls.ensure_tls(make_settings(tmp_path)) == tls.ensure_tls(settings)
    assert snapshot(settings.directory) == before


def test_new_names_make_a_new_server_certificate_with_the_same_ca(tmp_path):
    tls.ensure_tls(make_settings(tmp_path))
    before = snapshot(tmp_path / ".secrets" / "tls")
    settings = make_settings(tmp_path, {"lb_tls_names": ["airflow.example.com", "10.9.8.7"]})
    files = tls.ensure_tls(settings)
    after = snapshot(tmp_path / ".secrets" / "tls")
    assert (after["ca.crt"], after["ca.key"]) == (before["ca.crt"], before["ca.key"])
    assert after["server.crt"] != before["server.crt"]
    assert tls.certificate_names(files.cert) == (
        ["airflow.example.com", "lb1", "lb2"], ["10.9.8.7", VIP, *LB_ADDRESSES]
    )


def test_an_lb_host_removed_from_the_inventory_changes_the_sans(tmp_path):
    tls.ensure_tls(make_settings(tmp_path))
    one_lb = make_settings(tmp_path, {"lb1": {}}, lb_addresses=("172.29.213.11",), lb_vip=None,
                           public_host="172.29.213.11")
    files = tls.ensure_tls(one_lb)
    assert tls.certificate_names(files.cert) == (["lb1"], ["172.29.213.11"])
    assert load(files.cert).subject.rfc4514_string() == "CN=172.29.213.11"


@pytest.mark.parametrize("lost", ["server.key", "server.crt"])
def test_a_missing_server_file_is_made_again(tmp_path, lost):
    directory = tmp_path / ".secrets" / "tls"
    tls.ensure_tls(make_settings(tmp_path))
    before = snapshot(directory)
    (directory / lost).unlink()
    files = tls.ensure_tls(make_settings(tmp_path))
    after = snapshot(directory)
    assert after["ca.crt"] == before["ca.crt"] and after["server.key"] != before["server.key"]
    assert openssl("verify", "-CAfile", files.ca, files.cert).returncode == 0


def test_a_lost_ca_key_makes_a_new_ca_and_certificate(tmp_path):
    directory = tmp_path / ".secrets" / "tls"
    tls.ensure_tls(make_settings(tmp_path))
    before = snapshot(directory)
    (directory / "ca.key").unlink()
    files = tls.ensure_tls(make_settings(tmp_path))
    after = snapshot(directory)
    assert after["ca.crt"] != before["ca.crt"] and after["server.crt"] != before["server.crt"]
    assert openssl("verify", "-CAfile", files.ca, files.cert).returncode == 0


def test_a_server_key_not_matching_its_certificate_is_made_again(tmp_path):
    directory = tmp_path / ".secrets" / "tls"
    tls.ensure_tls(make_settings(tmp_path))
    before = snapshot(directory)
    shutil.copy(directory / "ca.key", directory / "server.key")
    files = tls.ensure_tls(make_settings(tmp_path))
    after = snapshot(directory)
    assert after["ca.crt"] == before["ca.crt"]
    assert after["server.key"] not in (before["server.key"], before["ca.key"])
    assert openssl("verify", "-CAfile", files.ca, files.cert).returncode == 0


def test_a_ca_not_matching_its_key_is_made_again(tmp_path):
    directory = tmp_path / ".secrets" / "tls"
    tls.ensure_tls(make_settings(tmp_path))
    before = snapshot(directory)
    shutil.copy(directory / "server.key", directory / "ca.key")
    files = tls.ensure_tls(make_settings(tmp_path))
    after = snapshot(directory)
    assert after["ca.crt"] != before["ca.crt"] and after["server.crt"] != before["server.crt"]
    assert openssl("verify", "-CAfile", files.ca, files.cert).returncode == 0


def test_a_server_certificate_not_signed_by_the_ca_is_made_again(tmp_path):
    """Someone put another CA in place: keep it, and sign a new server certificate with it."""
    directory = tmp_path / ".secrets" / "tls"
    tls.ensure_tls(make_settings(tmp_path))
    before = snapshot(directory)
    other = tls.ensure_tls(make_settings(tmp_path / "other"))
    shutil.copy(other.ca, directory / "ca.crt")
    shutil.copy(other.ca.with_name("ca.key"), directory / "ca.key")
    files = tls.ensure_tls(make_settings(tmp_path))
    after = snapshot(directory)
    assert after["ca.crt"] == other.ca.read_bytes()
    assert after["server.crt"] != before["server.crt"]
    assert openssl("verify", "-CAfile", files.ca, files.cert).returncode == 0


def shift_clock(monkeypatch, days):
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=days)
    monkeypatch.setattr(tls, "_now", lambda: later)


def test_a_server_certificate_expiring_within_30_days_is_made_again(tmp_path, monkeypatch):
    directory = tmp_path / ".secrets" / "tls"
    tls.ensure_tls(make_settings(tmp_path))
    before = snapshot(directory)
    shift_clock(monkeypatch, 825 - 31)
    tls.ensure_tls(make_settings(tmp_path))
    assert snapshot(directory) == before  # 31 days left: kept
    shift_clock(monkeypatch, 825 - 29)
    tls.ensure_tls(make_settings(tmp_path))
    after = snapshot(directory)
    assert after["ca.crt"] == before["ca.crt"] and after["server.crt"] != before["server.crt"]


def test_a_ca_expiring_within_30_days_is_made_again(tmp_path, monkeypatch):
    directory = tmp_path / ".secrets" / "tls"
    tls.ensure_tls(make_settings(tmp_path))
    before = snapshot(directory)
    shift_clock(monkeypatch, 3650 - 29)
    tls.ensure_tls(make_settings(tmp_path))
    after = snapshot(directory)
    assert after["ca.crt"] != before["ca.crt"] and after["server.crt"] != before["server.crt"]


# Another deploy run, in its own process (a fork()ed one would hang: pyinfra_cli
# monkey-patches with gevent). It says "ready" just before ensure_tls.
OTHER_DEPLOY = """
import sys
from pathlib import Path
from cluster import tls
names = {"lb1": {}}, ["10.1.1.1"], None, "10.1.1.1"
settings = tls.tls_settings(*names, Path(sys.argv[1]), Path("."))
print("ready", flush=True)
sys.stdout.write(tls.ensure_tls(settings).haproxy_pem())
"""


def test_a_deploy_waits_for_another_one_generating(tmp_path):
    """The inter-process lock: while another deploy holds it, ensure_tls waits, then keeps
    what that deploy made instead of making (and serving) a second CA."""
    directory = tmp_path / "tls"
    directory.mkdir(mode=0o700)
    holder = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.lockf(holder, fcntl.LOCK_EX)  # this process is the deploy generating
    waiting = subprocess.Popen([sys.executable, "-c", OTHER_DEPLOY, str(directory)], cwd=REPO,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert waiting.stdout.readline() == "ready\n"
        time.sleep(0.5)  # ample time to generate, were it not waiting
        assert waiting.poll() is None and not list(directory.glob("*.crt"))
        made = tls.tls_settings({"lb1": {}}, ["10.1.1.1"], None, "10.1.1.1", tmp_path / "made",
                                tmp_path)
        made_files = tls.ensure_tls(made)
        for name in ("ca.crt", "ca.key", "server.crt", "server.key"):
            shutil.copy(made.directory / name, directory / name)
    finally:
        os.close(holder)  # releases the lock
    assert waiting.communicate(timeout=60)[0] == made_files.haproxy_pem()
    assert waiting.returncode == 0


def test_clients_trusting_the_ca_accept_the_certificate_for_the_vip(tmp_path):
    """A real TLS handshake on loopback, verified the way a worker verifies the LB."""
    files = tls.ensure_tls(make_settings(tmp_path))
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
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with client_ctx.wrap_socket(raw, server_hostname=VIP) as conn:
            assert conn.recv(5) == b"hello"
    # A name that is not in the certificate is refused.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            client_ctx.wrap_socket(raw, server_hostname="172.29.213.99")
    thread.join(10)
    listener.close()


# --- ensure_tls: the user's own certificate ---------------------------------------------------


def issue(path, subject, issuer=None, ca=False, names=()):
    """A key and certificate written to `path`.key/.crt, signed by `issuer` (cert, key) or
    self-signed; returns (cert, key). A user's PKI, made independently of cluster/tls.py."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_cert, issuer_key = issuer or (None, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), False)
    )
    if ca:
        builder = builder.add_extension(x509.KeyUsage(False, False, False, False, False, True,
                                                      True, False, False), critical=True)
    else:
        alt = [x509.IPAddress(ipaddress.ip_address(n)) for n in names]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    cert = builder.sign(issuer_key, hashes.SHA256())
    Path(f"{path}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    Path(f"{path}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def test_user_supplied_certificate(tmp_path):
    made = tls.ensure_tls(make_settings(tmp_path / "made"))  # any CA-signed pair will do
    settings = user_settings(tmp_path, made.cert, made.key, made.ca)
    files = tls.ensure_tls(settings)
    assert files == tls.TlsFiles(cert=made.cert, key=made.key, ca=made.ca, generated=False)
    assert not settings.directory.exists()  # nothing generated
    public = user_settings(tmp_path, made.cert, made.key)
    assert tls.ensure_tls(public).ca is None and public.ca_path is None  # the system store
    assert files.haproxy_pem() == made.cert.read_text() + made.key.read_text()


def test_user_certificate_with_an_intermediate_chain(tmp_path):
    """lb_tls_cert holds the certificate then its intermediate; lb_tls_ca the root."""
    root = issue(tmp_path / "root", "Root CA", ca=True)
    intermediate = issue(tmp_path / "intermediate", "Issuing CA", root, ca=True)
    issue(tmp_path / "lb", VIP, intermediate, names=[VIP, *LB_ADDRESSES])
    chain = tmp_path / "chain.crt"
    chain.write_bytes(b"".join((tmp_path / f).read_bytes() for f in ("lb.crt", "intermediate.crt")))
    files = tls.ensure_tls(user_settings(tmp_path, "chain.crt", "lb.key", "root.crt"))
    assert (files.cert, files.ca) == (chain, tmp_path / "root.crt")
    assert files.haproxy_pem().count("BEGIN CERTIFICATE") == 2
    # Without its intermediate the certificate does not lead to the root.
    with pytest.raises(ClusterConfigError, match="does not verify against lb_tls_ca"):
        tls.ensure_tls(user_settings(tmp_path, "lb.crt", "lb.key", "root.crt"))


def test_user_supplied_files_are_checked(tmp_path):
    made = tls.ensure_tls(make_settings(tmp_path / "made"))
    ca_key = made.ca.with_name("ca.key")
    with pytest.raises(ClusterConfigError, match="lb_tls_key .* is not the key of lb_tls_cert"):
        tls.ensure_tls(user_settings(tmp_path, made.cert, ca_key))
    with pytest.raises(ClusterConfigError, match="lb_tls_cert: no such file .*nope.crt"):
        tls.ensure_tls(user_settings(tmp_path, "nope.crt", made.key))
    with pytest.raises(ClusterConfigError, match="lb_tls_ca: no such file"):
        tls.ensure_tls(user_settings(tmp_path, made.cert, made.key, "nope.crt"))
    with pytest.raises(ClusterConfigError, match="lb_tls_cert .*: not a PEM certificate"):
        tls.ensure_tls(user_settings(tmp_path, made.key, made.key))
    with pytest.raises(ClusterConfigError, match="lb_tls_key .*: not a PEM private key"):
        tls.ensure_tls(user_settings(tmp_path, made.cert, made.cert))


def test_an_encrypted_user_key_is_refused(tmp_path):
    made = tls.ensure_tls(make_settings(tmp_path / "made"))
    key = serialization.load_pem_private_key(made.key.read_bytes(), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    with pytest.raises(ClusterConfigError, match="encrypted; HAProxy needs it unencrypted"):
        tls.ensure_tls(user_settings(tmp_path, made.cert, encrypted))


def test_user_certificate_must_verify_against_its_ca(tmp_path):
    made = tls.ensure_tls(make_settings(tmp_path / "made"))
    other = tls.ensure_tls(make_settings(tmp_path / "other"))
    with pytest.raises(ClusterConfigError, match="does not verify against lb_tls_ca"):
        tls.ensure_tls(user_settings(tmp_path, made.cert, made.key, other.ca))


def test_user_certificate_must_name_the_public_host(tmp_path):
    """Workers call https://<public host>/execution/: a certificate without that name would
    fail every call."""
    made = tls.ensure_tls(make_settings(tmp_path / "made"))
    with pytest.raises(ClusterConfigError, match="for 172.29.213.99"):
        tls.ensure_tls(user_settings(tmp_path, made.cert, made.key, made.ca,
                                     public_host="172.29.213.99"))
