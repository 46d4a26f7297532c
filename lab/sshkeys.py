"""SSH keys of the lab (one client key, one host key per host), known_hosts, ssh argv."""

import os
import subprocess
from pathlib import Path

from lab.inventory import LabHost


def ensure_keypair(path: Path, comment: str) -> None:
    """An ed25519 key pair at path (+ .pub), generated once and then reused."""
    if path.is_file() and path.with_suffix(".pub").is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True, capture_output=True,
    )


def public_key(path: Path) -> str:
    return path.with_suffix(".pub").read_text().strip()


def write_known_hosts(path: Path, host_keys: dict[str, str]) -> None:
    """address -> "ssh-ed25519 AAAA...": lets ssh and pyinfra check host keys strictly."""
    lines = []
    for address, key in host_keys.items():
        key_type, key_data = key.split()[:2]
        lines.append(f"{address} {key_type} {key_data}\n")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(lines))
    os.replace(tmp, path)


def ssh_argv(key: Path, known_hosts: Path, host: LabHost, *, connect_timeout: int | None = None,
             batch: bool = True, tty: bool = False) -> list[str]:
    """ssh to a lab host with the lab key and strict host key checking, nothing from ~/.ssh."""
    argv = [
        "ssh", "-F", "/dev/null",
        "-i", str(key),
        "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts}",
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes",
        "-o", "LogLevel=ERROR",
    ]
    if batch:
        argv += ["-o", "BatchMode=yes"]
    if connect_timeout:
        argv += ["-o", f"ConnectTimeout={connect_timeout}"]
    if tty:
        argv.append("-t")
    return argv + [f"root@{host.address}"]
