"""Power and network controls of one lab host, for the fault drills: the plug, the power
switch and the network cable.

    kill   the plug pulled: the container's PID 1 gets SIGKILL, so every process of the host
           dies at once (the kernel kills a PID namespace with its init); no shutdown runs,
           nothing is flushed that the host had not written yet
    stop   a clean shutdown (nspawn halts the container's systemd)
    start  boots the host again on its own disk (its upper dir, as it was)
    console
           a command run inside the host through its namespaces, not the network (reaches an
           isolated host)
    isolate / heal
           the host's port on the bridge detached / attached again: a network partition (the
           host keeps its link up and its addresses; nothing it sends arrives, nothing reaches it)
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from lab import hosts as lab_hosts
from lab import processes
from lab.errors import LabError
from lab.inventory import LabHost
from lab.paths import LabPaths


def kill(paths: LabPaths, hosts: list[LabHost], timeout: float = 30) -> float:
    """Pull the plugs of `hosts` at the same moment (one SIGKILL after the other, then wait);
    the time.time() of the first SIGKILL."""
    nspawns = {host.name: _running(paths, host) for host in hosts}
    inits = {name: container_init(nspawn) for name, nspawn in nspawns.items()}
    if None in inits.values():
        missing = [name for name, init in inits.items() if init is None]
        raise LabError(f"no init process in {', '.join(missing)} (still booting?)")
    pulled = time.time()
    for init in inits.values():
        os.kill(init, signal.SIGKILL)
    for name, nspawn in nspawns.items():
        _wait_gone(nspawn, timeout, f"{name} did not die after SIGKILL")
        paths.nspawn_pid(name).unlink(missing_ok=True)
    return pulled


def stop(paths: LabPaths, host: LabHost, timeout: float = 120) -> None:
    nspawn = _running(paths, host)
    processes.terminate([nspawn], timeout)
    paths.nspawn_pid(host.name).unlink(missing_ok=True)


def start(paths: LabPaths, host: LabHost, bridge: str, timeout: float) -> None:
    """Boot a stopped host on its kept disk and wait until it answers SSH with systemd up."""
    if lab_hosts.container_pid(paths, host) is not None:
        return
    if not paths.upper(host.name).is_dir():
        raise LabError(f"{host.name} has no disk yet: `python -m lab up` creates it")
    lab_hosts.boot(paths, host, bridge)
    lab_hosts.wait_ready(paths, host, time.monotonic() + timeout)


def isolate(paths: LabPaths, host: LabHost) -> float:
    """Detach the host's bridge port; the time.time() it was cut off."""
    port = bridge_port(paths, host)
    cut = time.time()
    _ip("link", "set", port, "nomaster")
    return cut


def heal(paths: LabPaths, host: LabHost, bridge: str) -> None:
    _ip("link", "set", bridge_port(paths, host), "master", bridge)


def console_argv(paths: LabPaths, host: LabHost) -> list[str]:
    """The command prefix that runs a program inside the host without its network (as on a
    serial console): nsenter into every namespace of its init. Reaches an isolated host."""
    init = container_init(_running(paths, host))
    if init is None:
        raise LabError(f"{host.name}: its container has no init process")
    return ["nsenter", "-t", str(init), "-a"]


def isolated(paths: LabPaths, host: LabHost, bridge: str) -> bool:
    """Whether the running host's bridge port is detached (LabError while it has no init)."""
    try:
        port = bridge_port(paths, host)
    except subprocess.CalledProcessError as error:
        raise LabError(f"{host.name}: its network is not readable ({error})") from error
    master = Path(f"/sys/class/net/{port}/master")
    return not master.exists() or master.resolve().name != bridge


def container_init(nspawn_pid: int) -> int | None:
    """The container's PID 1, as this machine numbers it: nspawn's child whose own PID
    namespace calls it 1."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        status = _status(int(entry.name))
        if status.get("PPid") == str(nspawn_pid) and status.get("NSpid", "").split()[-1:] == ["1"]:
            return int(entry.name)
    return None


def bridge_port(paths: LabPaths, host: LabHost) -> str:
    """This machine's end of the host's veth pair (the port on the lab bridge): the link
    whose index the container's host0 names as its peer."""
    init = container_init(_running(paths, host))
    if init is None:
        raise LabError(f"{host.name}: its container has no init process")
    # Netlink in the container's network namespace (its sysfs is not mounted here).
    inside = subprocess.run(
        ["nsenter", "-t", str(init), "-n", "ip", "-j", "link", "show", "host0"],
        capture_output=True, text=True, check=True,
    ).stdout
    peer = json.loads(inside)[0]["link_index"]
    for link in json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True,
                                          text=True, check=True).stdout):
        if link["ifindex"] == peer:
            return link["ifname"]
    raise LabError(f"{host.name}: no link with index {peer} on this machine")


def _running(paths: LabPaths, host: LabHost) -> int:
    pid = lab_hosts.container_pid(paths, host)
    if pid is None:
        raise LabError(f"{host.name} is not running")
    return pid


def _wait_gone(pid: int, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while processes.is_alive(pid):
        if time.monotonic() > deadline:
            raise LabError(message)
        time.sleep(0.05)


def _status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode:
        raise LabError(f"ip {' '.join(args)}: {done.stderr.strip()}")
