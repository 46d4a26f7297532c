"""The lab's power and network controls (`python -m lab kill|stop|start|isolate|heal HOST`,
and `up` booting stopped hosts on their kept disks), on a lab host no test needs afterwards
being down: each test brings its host back. Runs after the other end-to-end tests, before the fault drills (zy)."""

import json
import subprocess

import pytest

from lab.client import run_lab, run_ops, wait_for
from tests.lab.support import LAB

CLUSTER = LAB.cluster
# A second API server: the cluster keeps serving while it is down.
HOST = CLUSTER.groups["web"][-1]
PEER = CLUSTER.groups["redis"][0]
MARKER = "/var/lib/lab-power-marker"


def lab(*args):
    done = run_lab(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    if args[0] in ("kill", "stop", "isolate"):
        LAB.forget(*args[1:])
    return done


def answers(name) -> bool:
    """Whether `name` answers SSH within 30 s (a dead host times out: no answer)."""
    try:
        return LAB.run(name, "true", timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def reaches(name, address) -> bool:
    """Whether host `name` opens a TCP connection to `address`'s SSH port."""
    probe = f"timeout 3 bash -c '</dev/tcp/{address}/22'"
    try:
        return LAB.run(name, probe, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def state(name) -> str:
    status = json.loads(lab("status", "--json").stdout)
    return next(h["state"] for h in status["hosts"] if h["name"] == name)


@pytest.fixture
def marker(first_deploy):
    """A file on HOST's disk, synced: it must survive a power cut and a clean stop."""
    done = LAB.run(HOST, f"echo kept > {MARKER} && sync")
    assert done.returncode == 0, done.stderr
    yield
    LAB.run(HOST, f"rm -f {MARKER}")


def boots_with_its_disk():
    wait_for(f"{HOST} answering SSH", lambda: answers(HOST), timeout=300, interval=2)
    assert LAB.run(HOST, f"cat {MARKER}").stdout.strip() == "kept"


def test_kill_pulls_the_plug_and_up_boots_the_host_on_its_disk(marker):
    boot_id = LAB.run(HOST, "cat /proc/sys/kernel/random/boot_id").stdout
    lab("kill", HOST)
    assert state(HOST) == "stopped" and not answers(HOST)
    # The other hosts run on.
    assert answers(PEER)
    done = lab("up")
    assert "on their disks (kept)" in done.stdout, done.stdout
    boots_with_its_disk()
    assert LAB.run(HOST, "cat /proc/sys/kernel/random/boot_id").stdout != boot_id
    assert answers(PEER)


def test_stop_shuts_down_cleanly_and_start_boots_it_again(marker):
    lab("stop", HOST)
    assert state(HOST) == "stopped"
    lab("start", HOST)
    boots_with_its_disk()


def test_isolate_cuts_the_host_off_and_heal_joins_it_again(first_deploy):
    address = CLUSTER.node(HOST).address
    peer = CLUSTER.node(PEER).address
    lab("isolate", HOST)
    try:
        assert state(HOST) == "isolated"
        assert not answers(HOST)
        # Not from this machine, and not from its peers either.
        assert not reaches(PEER, address)
    finally:
        lab("heal", HOST)
    assert state(HOST) == "running"
    wait_for(f"{HOST} answering SSH again", lambda: answers(HOST), timeout=60)
    assert reaches(HOST, peer)


def test_ops_status_names_a_worker_host_whose_power_is_cut(first_deploy):
    """`python -m ops status --json` with a worker host's plug pulled: non-zero, that host
    named unreachable; healthy again once `lab up` has booted it."""
    worker = CLUSTER.groups["worker"][-1]
    LAB.wait_cluster_healthy()
    lab("kill", worker)
    try:
        done = run_ops("status", "--json", timeout=300)
        assert done.returncode != 0, done.stdout
        report = json.loads(done.stdout)
        assert not report["healthy"]
        entry = next(h for h in report["hosts"] if h["name"] == worker)
        assert not entry["reachable"]
        assert any(p.startswith(f"{worker}: unreachable") for p in report["problems"])
    finally:
        lab("up")
    LAB.wait_cluster_healthy()
