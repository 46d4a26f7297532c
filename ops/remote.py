"""Commands on a host over SSH, with the inventory's connection settings (the same user, key,
known hosts and host key policy pyinfra connects with), through the system's OpenSSH."""

import shlex
import subprocess

# pyinfra's ssh_strict_host_key_checking values -> OpenSSH's StrictHostKeyChecking.
_HOST_KEY_POLICY = {"yes": "yes", "no": "no", "off": "no", "accept-new": "accept-new"}


def ssh_options(data) -> list[str]:
    """OpenSSH options for a host's pyinfra data (ssh_* settings)."""
    options = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]
    if data.get("ssh_config_file"):
        options += ["-F", data.get("ssh_config_file")]
    if data.get("ssh_port"):
        options += ["-p", str(data.get("ssh_port"))]
    if data.get("ssh_key"):
        options += ["-i", data.get("ssh_key")]
    if data.get("ssh_known_hosts_file"):
        options += ["-o", f"UserKnownHostsFile={data.get('ssh_known_hosts_file')}"]
    policy = data.get("ssh_strict_host_key_checking")
    if policy:
        options += ["-o", f"StrictHostKeyChecking={_HOST_KEY_POLICY[policy]}"]
    return options


def destination(name, data) -> str:
    address = data.get("ssh_hostname") or name
    return f"{data.get('ssh_user')}@{address}" if data.get("ssh_user") else address


def ssh_argv(name, data, argv: list[str]) -> list[str]:
    """`ssh ... DEST COMMAND` running `argv` on the host, as root (sudo -n when the inventory
    connects as another user with _sudo)."""
    command = shlex.join(argv)
    if data.get("_sudo"):
        command = "sudo -n " + command
    return ["ssh", *ssh_options(data), destination(name, data), command]


def run(name, data, argv: list[str], capture=False) -> subprocess.CompletedProcess:
    """Run `argv` on host `name`; its output goes to this terminal as it comes, unless
    `capture`."""
    return subprocess.run(
        ssh_argv(name, data, argv), stdin=subprocess.DEVNULL, text=True,
        capture_output=capture,
    )
