"""The load balancer's TLS certificate: which one it serves, and the files behind it.

Two steps, kept apart so that building the cluster model touches no file:

- `tls_settings(...)` (pure, called by the model) decides which certificate the load balancer
  serves: the user's own (`lb_tls_cert` / `lb_tls_key`, with `lb_tls_ca` when it is not
  publicly trusted), or, by default, one generated for the names the inventory gives it.
- `ensure_tls(settings)` (called once per deploy run, on the control machine, before any host
  operation) checks the user's files, or generates the material with the `cryptography`
  library into `<secrets dir>/tls/` (next to the secrets file):

    ca.crt  ca.key          a small CA (EC P-256, 10 years); clients of the load balancer
                            (workers calling the execution API) trust ca.crt
    server.crt server.key   signed by the CA (EC P-256, 825 days); SANs: the VIP, every lb
                            address and host name, and `lb_tls_names`

The directory is 0700, keys 0600, certificates 0644. The files are reused on every run, so a
re-run changes nothing: the CA is made again only when it is missing, expires within 30 days
or no longer matches its key; the server certificate only when it is missing, no longer matches
its key, is not signed by the CA, expires within 30 days or its SANs differ from the settings.
"""

import datetime
import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .errors import ClusterConfigError
from .paths import project_path
from .private_files import locked, write_atomically

TLS_SETTINGS = ("lb_tls_cert", "lb_tls_key", "lb_tls_ca", "lb_tls_names")
CA_NAME = "airflow-cluster CA"
CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=825)
# A certificate expiring within this time is made again.
RENEW_BEFORE = datetime.timedelta(days=30)
# New certificates start slightly in the past: a host whose clock lags the control machine's
# must not see a certificate that is not valid yet.
BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class TlsSettings:
    """Which certificate the load balancer serves: decided by the model, no file touched."""

    # Where generated material lives: <secrets dir>/tls.
    directory: Path
    # The user's certificate (+ chain), key and CA, absolute; no cert/key: generate.
    user_cert: Path | None
    user_key: Path | None
    user_ca: Path | None
    # The generated certificate's SANs: sorted, DNS names lower-case.
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    # The public host (the VIP, or the single lb address): the name clients connect to.
    common_name: str

    @property
    def generated(self) -> bool:
        return self.user_cert is None

    @property
    def ca_path(self) -> Path | None:
        """CA file clients trust: directory/ca.crt when generated, user_ca otherwise
        (None = publicly trusted)."""
        return self.directory / "ca.crt" if self.generated else self.user_ca


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


# --- which certificate (pure) -----------------------------------------------------------------


def tls_settings(
    lb_host_data: Mapping[str, Mapping],
    lb_addresses: Iterable[str],
    lb_vip: str | None,
    public_host: str,
    directory: Path,
    project_dir: Path,
) -> TlsSettings:
    """Which certificate the lb hosts serve (module doc). Pure: no file is read or checked.

    `lb_host_data`: lb host name -> its settings (missing keys: None / []). Raises
    ClusterConfigError when lb hosts disagree, only one of lb_tls_cert / lb_tls_key is set,
    or lb_tls_ca is set without them."""
    values = _agreed_settings(lb_host_data)
    if bool(values["lb_tls_cert"]) != bool(values["lb_tls_key"]):
        raise ClusterConfigError("set both lb_tls_cert and lb_tls_key, or neither (generated)")
    if values["lb_tls_ca"] and not values["lb_tls_cert"]:
        # Silently trusting the generated CA instead would surprise whoever set it.
        raise ClusterConfigError("lb_tls_ca is the CA of your own lb_tls_cert: set that too")

    def path(key):
        return project_path(values[key], project_dir) if values[key] else None

    names = [*lb_host_data, *lb_addresses, *([lb_vip] if lb_vip else []), *values["lb_tls_names"]]
    dns, ips = _split_names(names)
    return TlsSettings(
        directory=Path(directory),
        user_cert=path("lb_tls_cert"),
        user_key=path("lb_tls_key"),
        user_ca=path("lb_tls_ca"),
        dns_names=dns,
        ip_addresses=ips,
        common_name=public_host,
    )


def _agreed_settings(lb_host_data: Mapping[str, Mapping]) -> dict:
    """The lb hosts' TLS settings; they must agree: both serve one certificate."""
    values, first = None, None
    for name, data in lb_host_data.items():
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
    if values is None:
        raise ClusterConfigError("no lb host: the TLS certificate is served by the lb group")
    return values


def _split_names(names: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IP addresses), each sorted and without duplicates."""
    dns, ips = set(), set()
    for name in names:
        try:
            ips.add(ipaddress.ip_address(name))
        except ValueError:
            dns.add(name.lower())
    # By version first: IPv4 and IPv6 addresses do not compare with each other.
    ordered = sorted(ips, key=lambda ip: (ip.version, ip))
    return tuple(sorted(dns)), tuple(str(ip) for ip in ordered)


# --- the files (on the control machine) -------------------------------------------------------


def ensure_tls(settings: TlsSettings) -> TlsFiles:
    """The certificate and key HAProxy serves, and the CA its clients trust: the user's files
    checked, or the generated ones made when needed (module doc). Call once per deploy run.
    Raises ClusterConfigError on a missing, unreadable or mismatched user file."""
    if not settings.generated:
        return _user_files(settings)
    return _generated(settings)


def certificate_names(cert: Path) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) in the subjectAltName of `cert`, sorted."""
    leaf = _load_certs(cert, what=str(cert))[0]
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    dns, ips = _split_names([*san.get_values_for_type(x509.DNSName), *ips])
    return list(dns), list(ips)


# --- the user's own certificate ---------------------------------------------------------------


def _user_files(settings: TlsSettings) -> TlsFiles:
    files = (
        ("lb_tls_cert", settings.user_cert),
        ("lb_tls_key", settings.user_key),
        ("lb_tls_ca", settings.user_ca),
    )
    for setting, path in files:
        if path is not None and not path.is_file():
            raise ClusterConfigError(f"{setting}: no such file on the control machine: {path}")
    chain = _load_certs(settings.user_cert, what=f"lb_tls_cert {settings.user_cert}")
    key = _load_key(settings.user_key, what=f"lb_tls_key {settings.user_key}")
    if not _same_public_key(chain[0], key):
        raise ClusterConfigError(
            f"lb_tls_key {settings.user_key} is not the key of lb_tls_cert {settings.user_cert}"
        )
    if settings.user_ca is not None:
        _verify_chain(chain, settings)
    return TlsFiles(cert=settings.user_cert, key=settings.user_key, ca=settings.user_ca,
                    generated=False)


def _verify_chain(chain: list[x509.Certificate], settings: TlsSettings) -> None:
    """The user's certificate must verify against lb_tls_ca as a server certificate for the
    public host, the address workers connect to: an unusable certificate fails the deploy here
    rather than every worker's calls later. Certificates after the first in lb_tls_cert are
    its chain. cryptography's RFC 5280 / CA-B Forum profile is about as strict as OpenSSL's
    X509_STRICT, which Python 3.13+ clients use by default (e.g. a CA needs keyUsage)."""
    roots = _load_certs(settings.user_ca, what=f"lb_tls_ca {settings.user_ca}")
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(roots))
        .time(_now())
        .build_server_verifier(_subject(settings.common_name))
    )
    try:
        verifier.verify(chain[0], chain[1:])
    except verification.VerificationError as error:
        raise ClusterConfigError(
            f"lb_tls_cert {settings.user_cert} does not verify against lb_tls_ca "
            f"{settings.user_ca} for {settings.common_name}: {error}"
        ) from None


def _subject(host: str) -> verification.Subject:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


# --- the generated CA and certificate ---------------------------------------------------------


def _generated(settings: TlsSettings) -> TlsFiles:
    directory = settings.directory
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    files = TlsFiles(cert=directory / "server.crt", key=directory / "server.key",
                     ca=directory / "ca.crt", generated=True)
    ca_key_path = directory / "ca.key"
    # Two deploys starting together must not both generate (and each keep a different CA).
    with locked(directory / ".lock"):
        ca = _usable_ca(files.ca, ca_key_path)
        if ca is None:
            ca = _make_ca(files.ca, ca_key_path)
        if not _server_is_usable(files, ca[0], settings):
            _make_server(files, ca, settings)
    return files


def _usable_ca(ca_path: Path, key_path: Path):
    """(certificate, key) of the existing CA, or None when it must be made again."""
    try:
        cert = _load_certs(ca_path, what=str(ca_path))[0]
        key = _load_key(key_path, what=str(key_path))
    except (OSError, ClusterConfigError):
        return None  # missing or unreadable: ours, so simply made again
    if _expiring(cert) or not _same_public_key(cert, key):
        return None
    return cert, key


def _server_is_usable(files: TlsFiles, ca: x509.Certificate, settings: TlsSettings) -> bool:
    try:
        cert = _load_certs(files.cert, what=str(files.cert))[0]
        key = _load_key(files.key, what=str(files.key))
        cert.verify_directly_issued_by(ca)  # issuer name and signature
    except (OSError, ClusterConfigError, ValueError, TypeError, InvalidSignature):
        return False
    if _expiring(cert) or not _same_public_key(cert, key):
        return False
    names = (list(settings.dns_names), list(settings.ip_addresses))
    return certificate_names(files.cert) == names


def _make_ca(ca_path: Path, key_path: Path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    usage = _key_usage(key_cert_sign=True, crl_sign=True)
    cert = (
        _builder(name, name, key.public_key(), CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # Key first: a crash in between leaves a mismatch, which the next run repairs.
    write_atomically(key_path, _key_pem(key), 0o600)
    write_atomically(ca_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _make_server(files: TlsFiles, ca, settings: TlsSettings) -> None:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, settings.common_name)])
    alt_names = [
        *(x509.DNSName(name) for name in settings.dns_names),
        *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in settings.ip_addresses),
    ]
    cert = (
        _builder(subject, ca_cert.subject, key.public_key(), SERVER_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # An EC key signs, never enciphers.
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    write_atomically(files.key, _key_pem(key), 0o600)
    write_atomically(files.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _builder(subject, issuer, public_key, validity) -> x509.CertificateBuilder:
    start = _now() - BACKDATE
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
    )


def _key_usage(**asserted) -> x509.KeyUsage:
    flags = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")
    return x509.KeyUsage(**{flag: asserted.get(flag, False) for flag in flags})


def _key_pem(key) -> bytes:
    # Unencrypted PKCS#8, what `openssl genpkey` writes: HAProxy cannot prompt for a password.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# --- reading certificates and keys ------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _expiring(cert: x509.Certificate) -> bool:
    """Expires within RENEW_BEFORE, or not valid yet (the clock went back)."""
    now = _now()
    return not cert.not_valid_before_utc <= now < cert.not_valid_after_utc - RENEW_BEFORE


def _load_certs(path: Path, what: str) -> list[x509.Certificate]:
    """Every certificate of a PEM file, the first being the subject's."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError as error:
        raise ClusterConfigError(f"{what}: not a PEM certificate file ({error})") from None
    return certs


def _load_key(path: Path, what: str):
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except TypeError:
        raise ClusterConfigError(
            f"{what}: the private key is encrypted; HAProxy needs it unencrypted"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ClusterConfigError(f"{what}: not a PEM private key ({error})") from None


def _same_public_key(cert: x509.Certificate, key) -> bool:
    def spki(public_key):
        return public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    return spki(cert.public_key()) == spki(key.public_key())
