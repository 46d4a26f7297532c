"""The load balancer's TLS certificate, prepared on the control machine.

Either the user's own certificate and key (`lb_tls_cert` / `lb_tls_key`, with `lb_tls_ca`
when it is not publicly trusted), or, by default, a small CA and a server certificate made
once with the `openssl` CLI into `<secrets dir>/tls/` (next to the secrets file):

    ca.crt  ca.key          the CA (10 years); clients of the load balancer trust ca.crt
    server.crt server.key   signed by the CA (825 days); SANs: the VIP, every lb address and
                            host name, and `lb_tls_names`

Keys are 0600, the directory 0700. The files are reused on every run; the server certificate
is made again only when it is missing, no longer matches its key or the CA, expires within
30 days, or its SANs no longer match the inventory (the CA only when it is missing or
expiring). The settings are read from the lb hosts' data (group_data/lb.py).

For the Airflow roles: `ca_certificate_path(cluster)` is the PEM file workers must trust to
call the execution API through the load balancer over HTTPS (None: publicly trusted).
"""

import contextlib
import fcntl
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import ClusterConfigError
from .paths import project_path

TLS_SETTINGS = ("lb_tls_cert", "lb_tls_key", "lb_tls_ca", "lb_tls_names")
CA_DAYS = 3650
SERVER_DAYS = 825
# A certificate expiring within this many seconds is made again.
RENEW_BEFORE = 30 * 24 * 3600
CA_NAME = "airflow-cluster CA"


@dataclass(frozen=True)
class TlsFiles:
    # Server certificate (PEM, followed by its chain when the user supplied one).
    cert: Path
    # Its private key (PEM).
    key: Path
    # CA certificate clients must trust; None: a publicly trusted user certificate.
    ca: Path | None
    # True: made by this module; False: the user's files.
    generated: bool

    def haproxy_pem(self) -> str:
        """What HAProxy's `crt` file holds: the certificate (and chain), then the key."""
        cert = self.cert.read_text()
        key = self.key.read_text()
        return cert.rstrip("\n") + "\n" + key.rstrip("\n") + "\n"


def tls_dir(cluster, project_dir=None) -> Path:
    """Where the generated CA and certificate live: next to the secrets file."""
    return project_path(cluster.settings["secrets_file"], project_dir).parent / "tls"


def ca_certificate_path(cluster, inventory=None, project_dir=None) -> Path | None:
    """The PEM file of the CA that signed the load balancer's certificate, for every client
    of the public URL (workers calling the execution API): `<secrets dir>/tls/ca.crt` by
    default (generated on first use), `lb_tls_ca` with a user certificate, or None when the
    user's certificate is publicly trusted. A path on the control machine.

    `inventory` defaults to the running deploy's; pass `load_inventory()` outside pyinfra."""
    return ensure_tls(cluster, inventory, project_dir).ca


def expected_names(cluster, inventory=None) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the generated certificate must hold, sorted."""
    extra = lb_tls_settings(cluster, inventory)["lb_tls_names"]
    dns, ips = set(cluster.groups["lb"]), set(cluster.addresses("lb"))
    if cluster.lb_vip:
        ips.add(cluster.lb_vip)
    for name in extra:
        try:
            ips.add(str(ipaddress.ip_address(name)))
        except ValueError:
            dns.add(name.lower())
    return sorted(dns), sorted(ips, key=ipaddress.ip_address)


def lb_tls_settings(cluster, inventory=None) -> dict:
    """The TLS settings of the lb hosts (they must agree: both serve one certificate)."""
    if inventory is None:
        from pyinfra import inventory as context_inventory

        inventory = context_inventory
    values, first = None, None
    for name in cluster.groups["lb"]:
        data = inventory.get_host(name).data
        mine = {key: data.get(key) for key in TLS_SETTINGS}
        mine["lb_tls_names"] = list(mine["lb_tls_names"] or [])
        if values is None:
            values, first = mine, name
        elif mine != values:
            differ = [key for key in TLS_SETTINGS if mine[key] != values[key]]
            raise ClusterConfigError(
                f"lb hosts {first!r} and {name!r} have different {', '.join(differ)}: "
                "both serve the same certificate; set it once in group_data/lb.py"
            )
    return values


# (tls dir, names) -> TlsFiles checked or made by this process: a deploy asks once per host.
_CHECKED: dict = {}
# Made at first use: under pyinfra, threading is gevent's by then (a greenlet-aware lock).
_PROCESS_LOCK = None


def ensure_tls(cluster, inventory=None, project_dir=None) -> TlsFiles:
    """The certificate and key HAProxy serves, and the CA its clients trust (module doc).
    Raises ClusterConfigError on a missing or mismatched user file or an openssl failure."""
    settings = lb_tls_settings(cluster, inventory)
    if settings["lb_tls_cert"] or settings["lb_tls_key"]:
        return _user_files(settings, project_dir)
    directory = tls_dir(cluster, project_dir)
    dns, ips = expected_names(cluster, inventory)
    key = (str(directory), tuple(dns), tuple(ips))
    files = _CHECKED.get(key)
    made = (files.cert, files.key, files.ca, directory / "ca.key") if files else ()
    if not made or not all(p.is_file() for p in made):
        files = _CHECKED[key] = _generated(directory, dns, ips, cluster.public_host)
    return files


# --- the user's own certificate ---------------------------------------------------------------


def _user_files(settings, project_dir) -> TlsFiles:
    if not (settings["lb_tls_cert"] and settings["lb_tls_key"]):
        raise ClusterConfigError("set both lb_tls_cert and lb_tls_key, or neither (generated)")
    cert, key = (project_path(settings[k], project_dir) for k in ("lb_tls_cert", "lb_tls_key"))
    ca = project_path(settings["lb_tls_ca"], project_dir) if settings["lb_tls_ca"] else None
    for setting, path in (("lb_tls_cert", cert), ("lb_tls_key", key), ("lb_tls_ca", ca)):
        if path is not None and not path.is_file():
            raise ClusterConfigError(f"{setting}: no such file on the control machine: {path}")
    if _public_key_of_cert(cert) != _public_key_of_key(key):
        raise ClusterConfigError(f"lb_tls_key {key} is not the key of lb_tls_cert {cert}")
    if ca is not None:
        _openssl("verify", "-CAfile", ca, "-untrusted", cert, cert, what=f"lb_tls_ca {ca}")
    return TlsFiles(cert=cert, key=key, ca=ca, generated=False)


# --- the generated CA and certificate ---------------------------------------------------------


def _generated(directory: Path, dns: list[str], ips: list[str], common_name: str) -> TlsFiles:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    files = TlsFiles(
        cert=directory / "server.crt",
        key=directory / "server.key",
        ca=directory / "ca.crt",
        generated=True,
    )
    ca_key = directory / "ca.key"
    # Two deploys starting together must not both generate (and each keep a different CA);
    # nor two hosts of one deploy (pyinfra prepares hosts in concurrent greenlets).
    global _PROCESS_LOCK
    if _PROCESS_LOCK is None:
        _PROCESS_LOCK = threading.Lock()
    with _PROCESS_LOCK, _locked(directory):
        new_ca = not _ca_is_usable(files.ca, ca_key)
        if new_ca:
            _make_ca(directory, files.ca, ca_key)
        if new_ca or not _server_is_usable(files, dns, ips):
            _make_server(directory, files, ca_key, dns, ips, common_name)
    return files


def _ca_is_usable(ca: Path, ca_key: Path) -> bool:
    if not (ca.is_file() and ca_key.is_file()):
        return False
    if not _ok("x509", "-in", ca, "-noout", "-checkend", str(RENEW_BEFORE)):
        return False
    return _public_key_of_cert(ca) == _public_key_of_key(ca_key)


def _server_is_usable(files: TlsFiles, dns: list[str], ips: list[str]) -> bool:
    if not (files.cert.is_file() and files.key.is_file()):
        return False
    if not _ok("verify", "-CAfile", files.ca, files.cert):  # signed by this CA, not expired
        return False
    if not _ok("x509", "-in", files.cert, "-noout", "-checkend", str(RENEW_BEFORE)):
        return False
    if _public_key_of_cert(files.cert) != _public_key_of_key(files.key):
        return False
    return certificate_names(files.cert) == (dns, ips)


def certificate_names(cert: Path) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) in the subjectAltName of `cert`, sorted."""
    out = _openssl("x509", "-in", cert, "-noout", "-ext", "subjectAltName", what=str(cert))
    dns, ips = set(), set()
    for entry in re.split(r",\s*", " ".join(out.splitlines()[1:]).strip()):
        kind, _, value = entry.partition(":")
        if kind.strip() == "DNS":
            dns.add(value.strip().lower())
        elif kind.strip() == "IP Address":
            ips.add(str(ipaddress.ip_address(value.strip())))
    return sorted(dns), sorted(ips, key=ipaddress.ip_address)


def _make_ca(directory: Path, ca: Path, ca_key: Path) -> None:
    config = f"""\
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = {CA_NAME}
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""
    with _workdir(directory) as work:
        (work / "ca.cnf").write_text(config)
        _new_key(work / "ca.key")
        _openssl(
            "req", "-x509", "-new", "-sha256", "-days", str(CA_DAYS), "-config", work / "ca.cnf",
            "-key", work / "ca.key", "-set_serial", _serial(), "-out", work / "ca.crt",
            what="the CA certificate",
        )
        _install(work / "ca.key", ca_key)
        _install(work / "ca.crt", ca)


def _make_server(directory, files: TlsFiles, ca_key: Path, dns, ips, common_name) -> None:
    alt = [f"DNS.{i} = {name}" for i, name in enumerate(dns, 1)]
    alt += [f"IP.{i} = {ip}" for i, ip in enumerate(ips, 1)]
    config = "\n".join(
        [
            "[req]",
            "distinguished_name = dn",
            "prompt = no",
            "[dn]",
            f"CN = {common_name}",
            "[v3_server]",
            "basicConstraints = critical, CA:FALSE",
            "keyUsage = critical, digitalSignature",  # an EC key signs, never enciphers
            "extendedKeyUsage = serverAuth",
            "subjectKeyIdentifier = hash",
            "authorityKeyIdentifier = keyid",
            "subjectAltName = @alt",
            "[alt]",
            *alt,
            "",
        ]
    )
    with _workdir(directory) as work:
        (work / "server.cnf").write_text(config)
        _new_key(work / "server.key")
        _openssl(
            "req", "-new", "-config", work / "server.cnf", "-key", work / "server.key",
            "-out", work / "server.csr", what="the server certificate request",
        )
        _openssl(
            "x509", "-req", "-sha256", "-days", str(SERVER_DAYS), "-in", work / "server.csr",
            "-CA", files.ca, "-CAkey", ca_key, "-set_serial", _serial(),
            "-extfile", work / "server.cnf", "-extensions", "v3_server",
            "-out", work / "server.crt", what="the server certificate",
        )
        # Key first: a crash in between leaves a mismatch, which the next run repairs.
        _install(work / "server.key", files.key)
        _install(work / "server.crt", files.cert)


def _serial() -> str:
    return "0x" + secrets.token_hex(16)


def _new_key(path: Path) -> None:
    _openssl(
        "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path,
        what="a private key",
    )
    os.chmod(path, 0o600)


def _install(src: Path, dest: Path) -> None:
    os.chmod(src, 0o600 if src.suffix == ".key" else 0o644)
    os.replace(src, dest)


@contextlib.contextmanager
def _workdir(directory: Path):
    work = Path(tempfile.mkdtemp(dir=directory, prefix=".work-"))  # 0700, same file system
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def _locked(directory: Path):
    # A POSIX record lock on a lock file, not flock(): under pyinfra's gevent, a subprocess
    # started while holding a flock() keeps it held after we close our descriptor.
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


# --- openssl ----------------------------------------------------------------------------------


def _public_key_of_cert(cert: Path) -> str:
    return _openssl("x509", "-in", cert, "-noout", "-pubkey", what=str(cert))


def _public_key_of_key(key: Path) -> str:
    return _openssl("pkey", "-in", key, "-pubout", what=str(key))


def _ok(*args) -> bool:
    return _run(args).returncode == 0


def _openssl(*args, what: str) -> str:
    result = _run(args)
    if result.returncode != 0:
        raise ClusterConfigError(
            f"openssl failed on {what}: {(result.stderr or result.stdout).strip()[-500:]}"
        )
    return result.stdout


def _run(args) -> subprocess.CompletedProcess:
    if shutil.which("openssl") is None:
        raise ClusterConfigError("the openssl command is needed on the control machine")
    return subprocess.run(
        ["openssl", *map(str, args)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        umask=0o077,  # a new key is never readable by others, not even for an instant
    )
