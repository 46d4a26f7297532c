"""The cached Debian base image every lab host boots from (read-only lower layer): one per
suite (env LAB_DISTRO, lab/paths.py)."""

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from lab.errors import LabError

PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "iproute2"]
FALLBACK_MIRROR = "http://deb.debian.org/debian"
FALLBACK_SECURITY = "http://security.debian.org/debian-security"
# Registries the hosts may reach through the proxy, besides the apt mirrors found in sources.
REGISTRY_HOSTS = ["deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org"]


def apt_source_uris(apt_dir: Path = Path("/etc/apt")) -> list[str]:
    """Every repository URI of this machine's apt sources, deb822 files first."""
    uris = []
    for sources in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for line in sources.read_text().splitlines():
            if re.match(r"URIs\s*:", line):
                uris += line.split(":", 1)[1].split()
    lists = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for sources in lists:
        if sources.is_file():
            for line in sources.read_text().splitlines():
                # deb [options] URI suite components...
                match = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
                if match:
                    uris.append(match.group(1))
    return [uri.rstrip("/") for uri in uris if uri.startswith(("http://", "https://"))]


def debian_mirror(uris: list[str]) -> str:
    mirrors = [uri for uri in uris if not uri.endswith("-security")]
    return mirrors[0] if mirrors else FALLBACK_MIRROR


def security_mirror(uris: list[str]) -> str:
    mirrors = [uri for uri in uris if uri.endswith("-security")]
    return mirrors[0] if mirrors else FALLBACK_SECURITY


def allowed_hosts(uris: list[str]) -> list[str]:
    hosts = [urlsplit(uri).hostname for uri in uris] + REGISTRY_HOSTS
    return sorted({host.lower() for host in hosts if host})


def ensure_base(suite: str, base: Path, partial: Path, log_path: Path, uris: list[str],
                log=print) -> None:
    """Build the base image unless cached. Built aside and renamed into place when complete,
    so a killed build never leaves a half image at `base`."""
    if base.is_dir():
        return
    if partial.exists():
        shutil.rmtree(partial)
    mirror = debian_mirror(uris)
    log(f"building the {suite} base image with debootstrap from {mirror} (about a minute)")
    argv = [
        "debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
        suite, str(partial), mirror,
    ]
    with open(log_path, "wb") as out:
        result = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise LabError(f"debootstrap failed (exit {result.returncode}), log {log_path}:\n{tail}")
    configure_base(partial, suite, mirror, security_mirror(uris))
    os.rename(partial, base)


def configure_base(root: Path, suite: str, mirror: str, security: str) -> None:
    """What every host shares. Anything host-specific goes in the host's upper dir."""
    subprocess.run(
        ["systemctl", f"--root={root}", "enable", "systemd-networkd.service", "ssh.service"],
        check=True, capture_output=True,
    )
    # Debian's 80-container-host0.network (DHCP + link-local) sorts before the lab's
    # 80-lab.network and would win: mask it so the static address applies.
    network_dir = root / "etc/systemd/network"
    network_dir.mkdir(parents=True, exist_ok=True)
    mask = network_dir / "80-container-host0.network"
    mask.unlink(missing_ok=True)
    mask.symlink_to("/dev/null")

    # Host keys are generated per host; sshd only offers the one the lab generates.
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/ssh/sshd_config.d/lab-host-key.conf").write_text(
        "# Lab hosts get one ed25519 host key each (written by `lab up`).\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
    )
    # Empty, not missing: each host's upper dir writes its own id.
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").write_text("localhost\n")

    (root / "etc/apt/apt.conf.d/99lab-no-recommends").write_text(
        'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n'
    )
    (root / "etc/apt/sources.list").write_text(
        f"deb {mirror} {suite} main\n"
        f"deb {mirror} {suite}-updates main\n"
        f"deb {security} {suite}-security main\n"
    )
