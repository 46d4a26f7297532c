"""The operations commands on the deployed cluster, run as an operator runs them
(`python -m ops ...` in the project dir): `status --json` on the healthy cluster, `restart web`
under a client polling the public URL, a rolling `upgrade` to the other shipped Airflow 3.3.x
release and the deploy's own upgrade back (both shipped locks), with a DAG run before and
after each, and `failover-drill redis`. The worker-host power cut seen by `status` is in
test_zy_lab_power.

Everything here must be invisible to the clients of the public URL: the session's watch
(tests/lab/support.py, test_zx_public_url) counts any failed request.
"""

import json
import re

import pytest

from cluster.airflow_lock import shipped_versions
from lab.client import PROJECT, Poller, run_ops, run_pyinfra
from tests.lab.support import LAB

CLUSTER = LAB.cluster
HEALTH_DAG = "airflow_cluster_health"
VERSIONS_FILE = PROJECT / "group_data" / "all.py"
AIRFLOW_HOSTS = [n for n, node in CLUSTER.nodes.items()
                 if {"web", "scheduler", "worker"} & set(node.groups)]
# The release the cluster is deployed with, and the other shipped one.
DEPLOYED = CLUSTER.settings["airflow_version"]
OTHER = next(v for v in shipped_versions() if v != DEPLOYED)


def ops(*args, timeout=1800):
    done = run_ops(*args, timeout=timeout)
    print(done.stdout[-4000:], done.stderr[-2000:])
    return done


@pytest.fixture(scope="module")
def api(deployed):
    return LAB.admin_api()


def run_succeeds(api) -> None:
    api.unpause(HEALTH_DAG)
    run = api.finished(HEALTH_DAG, api.trigger(HEALTH_DAG), timeout=600)
    assert run["state"] == "success", (run, api.unsuccessful(HEALTH_DAG, run["dag_run_id"]))


def test_status_json_of_the_healthy_cluster(deployed):
    LAB.wait_cluster_healthy()
    done = ops("status", "--json", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["healthy"] and report["problems"] == []
    assert {h["name"] for h in report["hosts"]} == set(CLUSTER.nodes)
    assert report["redis"]["primary"] and len(report["redis"]["replicas"]) == len(
        CLUSTER.groups["redis"]) - 1
    assert len(report["load_balancer"]["vip_holders"]) == 1
    assert set(report["workers"]) == set(CLUSTER.groups["worker"])


def polled(function, *args):
    """function(*args) under a client polling the public URL 5x/s: (its result, the poller)."""
    poller = Poller(LAB)
    poller.start()
    try:
        result = function(*args)
    finally:
        poller.stop()
    print(f"requests failed: {len(poller.failures())} of {len(poller.samples)}")
    return result, poller


def test_restart_web_fails_no_request(deployed):
    done, poller = polled(ops, "restart", "web", "-y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(f"{name}: healthy" in done.stdout for name in CLUSTER.groups["web"])
    assert len(poller.samples) > 50
    assert poller.failures() == [], poller.failures()


def assert_runs(api, version) -> None:
    """Every Airflow host selects `version`'s venv, no process runs from another venv, the
    API servers report it."""
    assert api.json("GET", "/api/v2/version")["version"] == version
    for name in AIRFLOW_HOSTS:
        assert LAB.run(name, "readlink /opt/airflow/venv").stdout.strip() == \
            f"/opt/airflow/venv-{version}", name
        others = LAB.run(name, "grep -l -F /opt/airflow/venv- /proc/[0-9]*/maps 2>/dev/null | "
                               "xargs -r grep -h -o '/opt/airflow/venv-[^/]*' | sort -u")
        assert others.stdout.split() == [f"/opt/airflow/venv-{version}"], name


@pytest.fixture(scope="module")
def version_file_kept():
    """group_data/all.py as shipped, whatever `ops upgrade` recorded in it."""
    text = VERSIONS_FILE.read_text()
    yield text
    VERSIONS_FILE.write_text(text)


def test_ops_upgrade_to_the_other_release(api, version_file_kept):
    run_succeeds(api)
    done, poller = polled(ops, "upgrade", "--version", OTHER, "-y")
    assert done.returncode == 0, done.stdout + done.stderr
    assert poller.failures() == [], poller.failures()
    assert re.search(rf'^airflow_version = "{re.escape(OTHER)}"$', VERSIONS_FILE.read_text(),
                     re.MULTILINE)
    assert_runs(api, OTHER)
    run_succeeds(api)


def test_the_deploy_upgrades_back(api, version_file_kept):
    """group_data names the deployed release again: the deploy itself switches every host
    back (a version change: schedulers stopped, database migrated, services rolled)."""
    VERSIONS_FILE.write_text(version_file_kept)
    run, poller = polled(run_pyinfra)
    assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
    assert poller.failures() == [], poller.failures()
    assert_runs(api, DEPLOYED)
    run_succeeds(api)


def test_failover_drill_promotes_a_replica(deployed):
    LAB.wait_cluster_healthy()
    before = json.loads(ops("status", "--json", timeout=300).stdout)["redis"]["primary"]
    done = ops("failover-drill", "redis", "-y", timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    match = re.search(r"failover: (\S+) -> (\S+); the new primary took a write after ([\d.]+) s",
                      done.stdout)
    assert match, done.stdout
    assert match.group(1) == before.rpartition(":")[0] != match.group(2)
    assert f"primary   {match.group(2)}:" in done.stdout
    LAB.wait_cluster_healthy()
