"""One lab and one deployed cluster, shared by every end-to-end test of the session.

The lab is recreated from scratch at the start (set LAB_REUSE=1 to keep one that is up) and
left running at the end only when LAB_KEEP=1. Tests reach the hosts over SSH with
pytest-testinfra, exactly as an operator would.
"""

import json
import os

import pytest
from labkit import INVENTORY, PROJECT, run_lab, run_pyinfra, ssh_host


@pytest.fixture(scope="session")
def cluster():
    from cluster.model import build_cluster, load_inventory

    return build_cluster(load_inventory(str(INVENTORY), project_dir=str(PROJECT)))


@pytest.fixture(scope="session")
def lab():
    """The lab, booted fresh (or reused with LAB_REUSE=1); its `status --json`."""
    if os.environ.get("LAB_REUSE") != "1":
        down = run_lab("down")
        assert down.returncode == 0, down.stderr
    up = run_lab("up")
    assert up.returncode == 0, f"lab up failed:\n{up.stdout}\n{up.stderr}"
    status = run_lab("status", "--json")
    assert status.returncode == 0, status.stderr
    yield json.loads(status.stdout)
    if os.environ.get("LAB_KEEP") != "1":
        run_lab("down")


@pytest.fixture(scope="session")
def hosts(lab, cluster):
    """testinfra hosts by inventory name, over SSH with the inventory's key and known hosts."""
    return {name: ssh_host(name) for name in cluster.nodes}


@pytest.fixture(scope="session")
def first_deploy(lab, request):
    """The first full deploy of the session. Tests that need an untouched lab run before it
    (see test_00_guards.py), so they ask for `lab` only."""
    run = run_pyinfra()
    assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
    return run


@pytest.fixture(scope="session")
def deployed(first_deploy):
    """A converged cluster: the first deploy, then a second full run that changed nothing."""
    rerun = run_pyinfra()
    assert rerun.returncode == 0, rerun.describe()
    return {"first": first_deploy, "rerun": rerun}
