"""Shared by the data tier's lab tests (test_redis*, test_postgres*, test_kombu*): a deployed
data tier, SSH access to its hosts and the operator's view of Redis (bench/failover.py).

By default the lab and the deploy come from the session fixtures of conftest.py (`deployed`:
a fresh lab, a full deploy and a re-run). With LAB_EXTERNAL=1 the lab is taken as already up,
with the common role deployed, and only the data tier is deployed, twice:
`pyinfra -y --json inventory.py deploy.py --limit redis --limit postgres`.
"""

import os

import pytest
from labkit import INVENTORY, PROJECT, run_pyinfra, ssh_host  # noqa: F401 (re-exported)

LAB_EXTERNAL = os.environ.get("LAB_EXTERNAL") == "1"
DATA_TIER_LIMIT = ("--limit", "redis", "--limit", "postgres")
_CACHE = {}


def data_tier_deploy(request):
    """{"first": run, "rerun": run} of a deployed data tier (one per session)."""
    if not LAB_EXTERNAL:
        return request.getfixturevalue("deployed")
    if "deploy" not in _CACHE:
        first = run_pyinfra(*DATA_TIER_LIMIT)
        assert first.returncode == 0 and first.totals.get("error", 0) == 0, first.describe()
        rerun = run_pyinfra(*DATA_TIER_LIMIT)
        assert rerun.returncode == 0, rerun.describe()
        _CACHE["deploy"] = {"first": first, "rerun": rerun}
    return _CACHE["deploy"]


def lab_view():
    """bench.failover.Lab: SSH, Redis and Sentinel clients with the inventory's settings."""
    if "lab" not in _CACHE:
        from bench.failover import Lab

        _CACHE["lab"] = Lab(str(INVENTORY))
    return _CACHE["lab"]


def listening(host, port):
    """The local addresses `host` listens on for TCP `port`."""
    out = host.check_output(f"ss -Hltn 'sport = :{port}'")
    return {line.split()[3].rsplit(":", 1)[0].strip("[]") for line in out.splitlines() if line}


def owner_and_mode(host, path):
    """(user, group, mode) of `path` on `host`."""
    f = host.file(path)
    assert f.exists, path
    return f.user, f.group, f.mode


@pytest.fixture(scope="session")
def data_tier(request):
    return data_tier_deploy(request)
