"""The lab's Python API, for tests and for the CLI (`python -m lab`).

    from lab import api
    api.up()                         # or api.up("path/to/other_inventory.py")
    api.run("web1", "systemctl is-active ssh").stdout
    api.status()["hosts"]            # [{"name", "address", "state", "disk", "ssh"}, ...]
    api.kill("redis1"); api.start("redis1")     # plug pulled; booted again on its disk
    api.kill("redis1", "db1")                   # several plugs at the same moment
    api.stop("web1"); api.isolate("db1"); api.heal("db1")
    api.down()
"""

import fcntl
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from lab import certs, hosts as lab_hosts, image, network, power, processes, sshkeys
from lab.errors import LabError
from lab.inventory import LabHost, bridge_address, lab_subnet, load_hosts
from lab.mounts import unmount_all_under
from lab.paths import BRIDGE, DEFAULT_INVENTORY, PROXY_PORT, LabPaths
from lab.tinyproxy import proxy_state, start_proxy, stop_proxy

DEFAULT_BOOT_TIMEOUT = 300


def hosts(inventory_path=DEFAULT_INVENTORY) -> list[LabHost]:
    return load_hosts(inventory_path)


def up(inventory_path=DEFAULT_INVENTORY, *, timeout: float = DEFAULT_BOOT_TIMEOUT,
       fresh: bool = False, log=print) -> dict:
    """Boot every inventory host and wait until each answers SSH with systemd up.

    Does nothing if the lab already runs and every host answers. A lab whose hosts have disks
    (upper dirs) keeps them: stopped or killed hosts boot again on their own disk, as after a
    power cut. Only `fresh` (or no disks yet, or another inventory's lab) clears everything and
    boots every host from the base image, and says so. Returns status().
    """
    paths = LabPaths.from_env()
    lab = load_hosts(inventory_path)
    subnet = lab_subnet(lab)
    network.check_subnet_is_free(subnet, BRIDGE)  # before anything changes
    gateway = str(bridge_address(subnet))

    with _locked(paths):
        if not fresh and _is_up(paths, lab, gateway):
            log("lab is already up")
            return status(inventory_path)
        if not fresh and _has_disks(paths, lab):
            _resume(paths, lab, gateway, subnet, timeout, log)
            return status(inventory_path)
        started = time.monotonic()
        if paths.hosts_dir.is_dir() and any(paths.hosts_dir.glob("*/upper")):
            log("fresh lab: every host starts again from the base image (their disks are wiped)")
        _clean(paths)
        network.set_overcommit_memory()
        sshkeys.ensure_keypair(paths.ssh_key, "airflow-lab")
        uris = image.apt_source_uris()
        image.ensure_base(paths.suite, paths.base, paths.base_partial, paths.debootstrap_log,
                          uris, log)
        paths.hosts_suite.write_text(paths.suite + "\n")
        network.create_bridge(BRIDGE, gateway, subnet)
        start_proxy(paths, gateway, PROXY_PORT, str(subnet), image.allowed_hosts(uris))

        lab_key = sshkeys.public_key(paths.ssh_key)
        local_cas = certs.local_cas()

        def start(host: LabHost) -> None:
            paths.host_dir(host.name).mkdir(parents=True, exist_ok=True)
            sshkeys.ensure_keypair(paths.host_key(host.name), f"root@{host.name}")
            lab_hosts.prepare_upper(paths, host, lab, lab_key, local_cas)
            lab_hosts.boot(paths, host, BRIDGE)

        log(f"booting {len(lab)} hosts")
        _parallel(start, lab)
        sshkeys.write_known_hosts(
            paths.known_hosts,
            {host.address: sshkeys.public_key(paths.host_key(host.name)) for host in lab},
        )
        deadline = time.monotonic() + timeout
        _parallel(lambda host: lab_hosts.wait_ready(paths, host, deadline), lab)
        log(f"lab up: {len(lab)} hosts in {time.monotonic() - started:.1f} s")
    return status(inventory_path)


def kill(*host_names: str, inventory_path=DEFAULT_INVENTORY, log=print) -> float:
    """Pull the plugs of the hosts at the same moment: every process dies at once, no
    shutdown. Returns (and logs) the time.time() of the first SIGKILL."""
    paths = LabPaths.from_env()
    lab = load_hosts(inventory_path)
    hosts_ = [_find_host(name, lab) for name in host_names]
    with _locked(paths):
        pulled = power.kill(paths, hosts_)
    log(f"{', '.join(host_names)}: plug pulled at {pulled:.3f}")
    return pulled


def stop(host_name: str, inventory_path=DEFAULT_INVENTORY, *, log=print) -> None:
    """Shut HOST down cleanly; its disk stays."""
    paths = LabPaths.from_env()
    with _locked(paths):
        power.stop(paths, _find_host(host_name, inventory_path))
    log(f"{host_name}: shut down")


def start(host_name: str, inventory_path=DEFAULT_INVENTORY, *,
          timeout: float = DEFAULT_BOOT_TIMEOUT, log=print) -> None:
    """Boot HOST again on its disk, as it was; wait until it answers SSH."""
    paths = LabPaths.from_env()
    host = _find_host(host_name, inventory_path)
    with _locked(paths):
        _check_network(paths, load_hosts(inventory_path))
        power.start(paths, host, BRIDGE, timeout)
    log(f"{host_name}: up")


def isolate(host_name: str, inventory_path=DEFAULT_INVENTORY, *, log=print) -> float:
    """Cut HOST off the lab network (a partition); `heal` joins it again. Returns (and logs)
    the time.time() it was cut off."""
    paths = LabPaths.from_env()
    with _locked(paths):
        cut = power.isolate(paths, _find_host(host_name, inventory_path))
    log(f"{host_name}: isolated at {cut:.3f}")
    return cut


def heal(host_name: str, inventory_path=DEFAULT_INVENTORY, *, log=print) -> None:
    """Put an isolated HOST back on the lab network."""
    paths = LabPaths.from_env()
    with _locked(paths):
        power.heal(paths, _find_host(host_name, inventory_path), BRIDGE)
    log(f"{host_name}: back on the network")


def console_argv(host_name: str, inventory_path=DEFAULT_INVENTORY) -> list[str]:
    """The command prefix that runs a program inside HOST without the network (append the
    program and its arguments)."""
    return power.console_argv(LabPaths.from_env(), _find_host(host_name, inventory_path))


def down(*, log=print) -> None:
    """Stop every lab container and the proxy; remove the bridge, upper dirs and mounts.

    Needs no inventory: containers and proxy are found from pid files and /proc.
    Keeps the base image, the lab key, host keys and known_hosts (so the next up is warm).
    """
    paths = LabPaths.from_env()
    if not paths.root.is_dir():
        return
    with _locked(paths):
        _clean(paths)
    log("lab is down")


def status(inventory_path=DEFAULT_INVENTORY) -> dict:
    paths = LabPaths.from_env()
    lab = load_hosts(inventory_path)
    gateway = str(bridge_address(lab_subnet(lab)))

    def host_status(host: LabHost) -> dict:
        running = lab_hosts.container_pid(paths, host) is not None
        state = "running" if running else "stopped"
        try:
            if running and power.isolated(paths, host, BRIDGE):
                state = "isolated"
        except LabError:
            state = "unknown"  # dying or still booting: no init to ask yet
        return {
            "name": host.name,
            "address": host.address,
            "state": state,
            "disk": paths.upper(host.name).is_dir(),
            "ssh": running and paths.known_hosts.is_file() and lab_hosts.answers_ssh(paths, host),
        }

    with ThreadPoolExecutor(max_workers=len(lab)) as pool:
        host_states = list(pool.map(host_status, lab))
    return {
        "hosts": host_states,
        # The Debian release of the hosts' disks (None: no disks yet).
        "suite": _hosts_suite(paths) if any(h["disk"] for h in host_states) else None,
        "bridge": network.bridge_state(BRIDGE),
        "proxy": proxy_state(paths, gateway, PROXY_PORT),
    }


def ssh_argv(host_name: str, inventory_path=DEFAULT_INVENTORY, *, interactive: bool = False) -> list[str]:
    """The ssh command line for a lab host (append the remote command)."""
    paths = LabPaths.from_env()
    return sshkeys.ssh_argv(
        paths.ssh_key, paths.known_hosts, _find_host(host_name, inventory_path),
        connect_timeout=5, batch=not interactive, tty=interactive,
    )


def run(host_name: str, command, inventory_path=DEFAULT_INVENTORY, *, check: bool = False,
        timeout: float | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    """Run a command on a lab host over SSH. command: a shell string, or an argv list
    (quoted for the remote shell). Returns the CompletedProcess (text stdout/stderr)."""
    remote = command if isinstance(command, str) else shlex.join(command)
    argv = ssh_argv(host_name, inventory_path) + [remote]
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise LabError(
            f"{host_name}: {remote!r} exited {result.returncode}\n{result.stdout}{result.stderr}"
        )
    return result


# --- internals -------------------------------------------------------------------------------

def _find_host(host_name: str, inventory_path) -> LabHost:
    """HOST of the inventory at `inventory_path` (or of its hosts, already loaded)."""
    lab = inventory_path if isinstance(inventory_path, list) else load_hosts(inventory_path)
    for host in lab:
        if host.name == host_name:
            return host
    raise LabError(f"no host {host_name!r} in the inventory (hosts: {', '.join(h.name for h in lab)})")


@contextmanager
def _locked(paths: LabPaths):
    """One up/down at a time. flock: a killed holder releases it."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.lock, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _has_disks(paths: LabPaths, lab: list[LabHost]) -> bool:
    """Hosts of this inventory have disks (upper dirs) made from the base image of this suite
    (LAB_DISTRO), it is complete, and no other lab's host is running."""
    others = set(lab_hosts.running_containers(paths)) - {host.machine for host in lab}
    disks = any(paths.upper(host.name).is_dir() for host in lab)
    return (not others and disks and _hosts_suite(paths) == paths.suite and paths.base.is_dir()
            and not paths.base_partial.exists())


def _resume(paths: LabPaths, lab: list[LabHost], gateway: str, subnet, timeout: float,
            log) -> None:
    """Bring back what is down (bridge, proxy, hosts) and boot stopped hosts on their disks."""
    started = time.monotonic()
    if network.bridge_state(BRIDGE)["state"] != "up":
        network.create_bridge(BRIDGE, gateway, subnet)
    if proxy_state(paths, gateway, PROXY_PORT)["state"] != "running":
        start_proxy(paths, gateway, PROXY_PORT, str(subnet),
                    image.allowed_hosts(image.apt_source_uris()))
    running = [host for host in lab if lab_hosts.container_pid(paths, host) is not None]
    cut_off = [host.name for host in running if power.isolated(paths, host, BRIDGE)]
    if cut_off:
        raise LabError(f"isolated: {', '.join(cut_off)}; `python -m lab heal HOST` first")
    stopped = [host for host in lab if host not in running]
    new = [host for host in stopped if not paths.upper(host.name).is_dir()]
    if stopped:
        log(f"booting {', '.join(h.name for h in stopped)} on their disks (kept)"
            + (f"; new disks for {', '.join(h.name for h in new)}" if new else ""))
    if new:
        lab_key, local_cas = sshkeys.public_key(paths.ssh_key), certs.local_cas()
        for host in new:
            paths.host_dir(host.name).mkdir(parents=True, exist_ok=True)
            sshkeys.ensure_keypair(paths.host_key(host.name), f"root@{host.name}")
            lab_hosts.prepare_upper(paths, host, lab, lab_key, local_cas)
        sshkeys.write_known_hosts(
            paths.known_hosts,
            {host.address: sshkeys.public_key(paths.host_key(host.name)) for host in lab},
        )
    for host in stopped:
        lab_hosts.boot(paths, host, BRIDGE)
    deadline = time.monotonic() + timeout
    _parallel(lambda host: lab_hosts.wait_ready(paths, host, deadline), lab)
    log(f"lab up: {len(stopped)} of {len(lab)} hosts booted in "
        f"{time.monotonic() - started:.1f} s")


def _check_network(paths: LabPaths, lab: list[LabHost]) -> None:
    gateway = str(bridge_address(lab_subnet(lab)))
    if network.bridge_state(BRIDGE)["state"] != "up" or \
            proxy_state(paths, gateway, PROXY_PORT)["state"] != "running":
        raise LabError("the lab's bridge or proxy is down: `python -m lab up` brings them back")


def _hosts_suite(paths: LabPaths) -> str:
    """The suite the hosts' disks were made from (labs before LAB_DISTRO: bookworm)."""
    return paths.hosts_suite.read_text().strip() if paths.hosts_suite.is_file() else "bookworm"


def _is_up(paths: LabPaths, lab: list[LabHost], gateway: str) -> bool:
    if _hosts_suite(paths) != paths.suite:
        return False
    if network.bridge_state(BRIDGE)["state"] != "up":
        return False
    if proxy_state(paths, gateway, PROXY_PORT)["state"] != "running":
        return False
    if any(lab_hosts.container_pid(paths, host) is None for host in lab):
        return False
    if set(lab_hosts.running_containers(paths)) != {host.machine for host in lab}:
        return False  # another inventory's hosts are running: rebuild to match this one
    with ThreadPoolExecutor(max_workers=len(lab)) as pool:
        return all(pool.map(lambda host: lab_hosts.answers_ssh(paths, host), lab))


def _clean(paths: LabPaths) -> None:
    """Remove whatever a previous (possibly killed) run left, leaving the caches."""
    stop_proxy(paths)
    lab_hosts.stop_all(paths)
    # A killed `up` may leave debootstrap (and its chroot children) writing the partial image.
    partial = str(paths.base_partial)
    processes.terminate(
        [pid for pid, argv in processes.iter_processes() if any(partial in arg for arg in argv)],
        timeout=5,
    )
    unmount_all_under(paths.root)
    network.delete_stale_veths()
    network.delete_bridge(BRIDGE)
    if paths.hosts_dir.is_dir():
        for host_dir in paths.hosts_dir.iterdir():
            lab_hosts.remove_upper(paths, host_dir.name)
    if paths.base_partial.exists():
        shutil.rmtree(paths.base_partial)


def _parallel(function, lab: list[LabHost]) -> None:
    """function(host) for every host at once; all failures reported together."""
    with ThreadPoolExecutor(max_workers=len(lab)) as pool:
        futures = {host.name: pool.submit(function, host) for host in lab}
    failed = {name: future.exception() for name, future in futures.items() if future.exception()}
    if not failed:
        return
    first_name, first = next(iter(failed.items()))
    detail = str(first) if isinstance(first, LabError) else f"{first_name}: {first!r}"
    if len(failed) > 1:
        detail = f"{len(failed)} hosts failed: {', '.join(failed)}. First:\n{detail}"
    raise LabError(detail)
