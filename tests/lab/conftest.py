"""One lab and one deployed cluster, shared by every end-to-end test of the session.

The lab is recreated from scratch at the start (set LAB_REUSE=1 to keep one that is up) and
left running at the end only when LAB_KEEP=1. Tests reach the hosts over SSH with
pytest-testinfra, exactly as an operator would (lab.client, through support.LAB).

By default every role comes from one full deploy (`deployed`: a fresh lab, a full deploy and
a re-run). With LAB_EXTERNAL=1 the lab is taken as already up with the common role deployed,
and each test module deploys only its own roles (`role_deploy`), e.g. the data tier:
`pyinfra -y --json inventory.py deploy.py --limit redis --limit postgres`.
"""

import json
import os

import pytest

from lab.client import run_lab, run_pyinfra
from tests.lab.support import LAB, LAB_EXTERNAL, PUBLIC_URL_WATCH


@pytest.fixture(scope="session")
def cluster():
    return LAB.cluster


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
    return {name: LAB.host(name) for name in cluster.nodes}


@pytest.fixture(scope="session")
def first_deploy(lab, request):
    """The first full deploy of the session. Tests that need an untouched lab run before it
    (see test_00_guards.py), so they ask for `lab` only. With every command, its output and
    every file's diff printed (-vvv --diff): test_common searches that for the secrets."""
    run = run_pyinfra("-vvv", "--diff")
    assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
    return run


@pytest.fixture(scope="session")
def deployed(first_deploy):
    """A converged cluster: the first deploy, then a second full run that changed nothing."""
    rerun = run_pyinfra()
    assert rerun.returncode == 0, rerun.describe()
    # From here on a client polls the public URL (test_zx_public_url.py checks what it saw).
    PUBLIC_URL_WATCH.start()
    return {"first": first_deploy, "rerun": rerun}


@pytest.fixture(scope="session")
def role_deploy(request):
    """deploy(*groups, rerun=False) -> {"first": run, "rerun": run or None}: the session's
    deploy of the roles of `groups`. By default that is `deployed` (every role, and its
    re-run); with LAB_EXTERNAL=1 `pyinfra ... --limit GROUP...` once per session (and a
    second time with rerun=True)."""
    done = {}

    def deploy(*groups, rerun=False):
        if not LAB_EXTERNAL:
            return request.getfixturevalue("deployed")
        if (groups, rerun) not in done:
            limits = [arg for group in groups for arg in ("--limit", group)]
            first = run_pyinfra(*limits)
            assert first.returncode == 0 and first.totals.get("error", 0) == 0, first.describe()
            again = None
            if rerun:
                again = run_pyinfra(*limits)
                assert again.returncode == 0, again.describe()
            done[groups, rerun] = {"first": first, "rerun": again}
        return done[groups, rerun]

    return deploy


@pytest.fixture(scope="session")
def data_tier(role_deploy):
    """{"first": run, "rerun": run} of a deployed data tier (Redis, Sentinel, PostgreSQL)."""
    return role_deploy("redis", "postgres", rerun=True)


@pytest.fixture(scope="module")
def redis_lab(data_tier):
    """The lab client once the broker is whole (every Redis and Sentinel test module)."""
    LAB.wait_healthy()
    return LAB
