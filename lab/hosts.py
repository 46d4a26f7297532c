"""One lab host: its upper dir, its systemd-nspawn container, and waiting for it to come up."""

import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from lab import processes
from lab.certs import CA_BUNDLE
from lab.errors import LabError
from lab.inventory import LabHost
from lab.paths import LabPaths
from lab.sshkeys import ssh_argv

MACHINE_PREFIX = "lab-"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


# --- upper dir -------------------------------------------------------------------------------

def _mkdirs_like_base(base: Path, upper: Path, relative: str) -> Path:
    """Create upper/relative with each directory's mode and owner copied from the base.

    An upper directory's metadata wins in the overlay: a 0755 /root here would be a 0755
    /root in the container (and sshd's StrictModes would refuse the key).
    """
    target = upper
    for part in Path(relative).parts:
        target = target / part
        lower = base / target.relative_to(upper)
        if not target.is_dir():
            target.mkdir()
            if lower.is_dir():
                stat = lower.stat()
                os.chmod(target, stat.st_mode & 0o7777)
                os.chown(target, stat.st_uid, stat.st_gid)
    return target


def _write(base: Path, upper: Path, relative: str, content: str | bytes, mode: int = 0o644) -> None:
    directory = _mkdirs_like_base(base, upper, str(Path(relative).parent))
    path = directory / Path(relative).name
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    os.chmod(path, mode)


def _hosts_file(hosts: list[LabHost]) -> str:
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
        "",
        "# Lab hosts (written by `lab up`)",
    ]
    lines += [f"{host.address}\t{host.name}" for host in hosts]
    return "\n".join(lines) + "\n"


def _network_file(host: LabHost) -> str:
    # No gateway: the hosts have no route out; registries are reached through the proxy.
    return (
        "[Match]\n"
        "Name=host0\n"
        "\n"
        "[Network]\n"
        f"Address={host.address}/24\n"
        "LinkLocalAddressing=no\n"
        "IPv6AcceptRA=no\n"
    )


# A VM applies /etc/sysctl.d at every boot (systemd-sysctl; inside nspawn it writes the net.*
# keys of the host's own network namespace). When all lab hosts boot at once on a loaded
# machine a unit's start can fail before it runs (219/CGROUP), and systemd never retries a
# oneshot: after a whole-lab power cut three hosts came back with the kernel's default
# net.ipv4.tcp_max_syn_backlog. The lab's retries a failed start, as a VM never misses it.
SYSCTL_AT_BOOT = """\
[Service]
Restart=on-failure
RestartSec=2
"""


def prepare_upper(paths: LabPaths, host: LabHost, all_hosts: list[LabHost], lab_public_key: str,
                  local_cas: list[str]) -> None:
    """A fresh upper dir holding everything host-specific; the base stays shared."""
    remove_upper(paths, host.name)
    base, upper = paths.base, paths.upper(host.name)
    upper.mkdir(parents=True)
    host_key = paths.host_key(host.name)

    _write(base, upper, "etc/hostname", f"{host.name}\n")
    _write(base, upper, "etc/hosts", _hosts_file(all_hosts))
    _write(base, upper, "etc/machine-id", f"{uuid.uuid4().hex}\n", 0o444)
    _write(base, upper, "etc/systemd/network/80-lab.network", _network_file(host))
    _write(base, upper, "root/.ssh/authorized_keys", f"{lab_public_key}\n", 0o600)
    os.chmod(upper / "root/.ssh", 0o700)
    _write(base, upper, "etc/ssh/ssh_host_ed25519_key", host_key.read_bytes(), 0o600)
    _write(base, upper, "etc/ssh/ssh_host_ed25519_key.pub", host_key.with_suffix(".pub").read_bytes())
    _write(base, upper, "etc/systemd/system/systemd-sysctl.service.d/lab-netns.conf",
           SYSCTL_AT_BOOT)
    if CA_BUNDLE.is_file():
        _write(base, upper, str(CA_BUNDLE.relative_to("/")), CA_BUNDLE.read_bytes())
    for index, pem in enumerate(local_cas):
        _write(base, upper, f"usr/local/share/ca-certificates/lab-control-{index}.crt", pem)


def remove_upper(paths: LabPaths, name: str) -> None:
    host_dir = paths.host_dir(name)
    # nspawn keeps the overlay work dir next to the upper dir, as .#upper<random>.
    for stale in [paths.upper(name), *host_dir.glob(".#upper*")]:
        if stale.exists():
            shutil.rmtree(stale)


# --- container -------------------------------------------------------------------------------

def nspawn_argv(paths: LabPaths, host: LabHost, bridge: str) -> list[str]:
    return [
        "systemd-nspawn",
        "-D", str(paths.base),
        f"--overlay={paths.base}:{paths.upper(host.name)}:/",
        "-M", host.machine,
        "-b",
        # No systemd as PID 1 here (so no machined, no scope units): without these two
        # nspawn fails to start.
        "--register=no",
        "--keep-unit",
        f"--network-bridge={bridge}",
        # The console goes to console.log; nothing reads input.
        "--console=read-only",
        # The container's journal stays its own, nothing lands in this machine's /var/log.
        "--link-journal=no",
    ]


def boot(paths: LabPaths, host: LabHost, bridge: str) -> int:
    return processes.start_detached(
        nspawn_argv(paths, host, bridge),
        log_path=paths.console_log(host.name),
        pid_path=paths.nspawn_pid(host.name),
        cwd=paths.host_dir(host.name),
    )


def _machine_of(argv: list[str]) -> str | None:
    if not argv or Path(argv[0]).name != "systemd-nspawn":
        return None
    for index, arg in enumerate(argv):
        if arg == "-M" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--machine="):
            return arg.split("=", 1)[1]
    return None


def running_containers(paths: LabPaths) -> dict[str, int]:
    """Machine name -> nspawn pid of every lab container, from pid files and from /proc
    (a killed `up` may have started containers before writing all pid files)."""
    found = {}
    for pid, argv in processes.iter_processes():
        machine = _machine_of(argv)
        if machine and machine.startswith(MACHINE_PREFIX):
            found[machine] = pid
    if paths.hosts_dir.is_dir():
        for host_dir in paths.hosts_dir.iterdir():
            pid = processes.read_pid_file(host_dir / "nspawn.pid")
            if pid:
                machine = _machine_of(processes.cmdline(pid) or [])
                if machine and machine.startswith(MACHINE_PREFIX):
                    found[machine] = pid
    return found


def container_pid(paths: LabPaths, host: LabHost) -> int | None:
    pid = processes.read_pid_file(paths.nspawn_pid(host.name))
    if pid and _machine_of(processes.cmdline(pid) or []) == host.machine:
        return pid
    return None


def stop_all(paths: LabPaths, timeout: float = 30) -> None:
    """SIGTERM makes nspawn halt its container cleanly; SIGKILL what is left after timeout."""
    processes.terminate(running_containers(paths).values(), timeout)
    if paths.hosts_dir.is_dir():
        for pid_file in paths.hosts_dir.glob("*/nspawn.pid"):
            pid_file.unlink()


# --- readiness -------------------------------------------------------------------------------

def ssh_check(paths: LabPaths, host: LabHost, command: list[str], timeout: float):
    argv = ssh_argv(paths.ssh_key, paths.known_hosts, host, connect_timeout=2) + command
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None


def answers_ssh(paths: LabPaths, host: LabHost) -> bool:
    result = ssh_check(paths, host, ["true"], timeout=10)
    return result is not None and result.returncode == 0


def console_tail(paths: LabPaths, name: str, lines: int = 15) -> str:
    try:
        text = paths.console_log(name).read_text(errors="replace")
    except OSError:
        return "(no console log)"
    text = _ANSI.sub("", text).replace("\r", "")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def wait_ready(paths: LabPaths, host: LabHost, deadline: float) -> None:
    """Until the host answers SSH and systemd has finished booting (running or degraded)."""
    last = "no answer on SSH yet"
    while time.monotonic() < deadline:
        if container_pid(paths, host) is None:
            raise LabError(
                f"{host.name}: the container exited while booting; tail of "
                f"{paths.console_log(host.name)}:\n{console_tail(paths, host.name)}"
            )
        remaining = max(1.0, deadline - time.monotonic())
        result = ssh_check(paths, host, ["systemctl", "is-system-running", "--wait"], timeout=remaining)
        if result is not None:
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                return
            last = f"systemd state {state!r}" if state else (result.stderr.strip() or last)
        time.sleep(0.5)
    raise LabError(
        f"{host.name} ({host.address}) did not come up in time ({last}); tail of "
        f"{paths.console_log(host.name)}:\n{console_tail(paths, host.name)}"
    )
