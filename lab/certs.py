"""The control machine's CA trust, for the hosts (HTTPS egress here is re-signed by a local CA)."""

import re
from pathlib import Path

CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DISTRO_CERTS = Path("/usr/share/ca-certificates")
_PEM = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def _pems(text: str) -> list[str]:
    return [" ".join(pem.split()) for pem in _PEM.findall(text)]


def local_cas(bundle: Path = CA_BUNDLE, distro: Path = DISTRO_CERTS) -> list[str]:
    """Certificates in this machine's bundle that Debian's ca-certificates does not ship.

    A host that installs ca-certificates regenerates its bundle from Debian's set plus
    /usr/local/share/ca-certificates; placing these there keeps the local CA trusted.
    """
    if not bundle.is_file():
        return []
    shipped = set()
    for crt in distro.rglob("*.crt"):
        shipped.update(_pems(crt.read_text(errors="replace")))
    extra = []
    for match in _PEM.finditer(bundle.read_text(errors="replace")):
        if " ".join(match.group(0).split()) not in shipped:
            extra.append(match.group(0) + "\n")
    return extra
