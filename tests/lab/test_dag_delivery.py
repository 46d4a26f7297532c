"""DAG delivery on the deployed cluster: a DAG shipped by a deploy is parsed and runs, a
changed one shows its new task, a removed one is no longer scheduled, a broken one is an
import error the others survive; a new plugin restarts the services that load it; with the Git
DAG bundle a pushed DAG runs without a deploy.

The deploys here ship a scratch copy of dags/ (`--data dags_dir=...`), then, in one deploy, a
plugin (`--data plugins_dir=...`) and a Git repository served by db1's sshd as the DAG bundle;
the module ends with a plain deploy that restores the cluster as the other tests know it.
The DAG processors look for new and deleted files every dag_bundle_refresh_interval (10 s):
90 s per wait leaves room for a loaded machine while a missing mechanism (Airflow's default
refresh is 300 s) still fails. The seconds measured are printed (bench/dag_delivery.py
reports them).
"""

import json
import subprocess
import sys

import pytest

from lab.client import PROJECT, run_pyinfra, wait_for
from lab.client.dags import GIT_BUNDLE, DagWaits, GitServer, SyncedFolder, dag_source
from lab.client.dags import plugin_folder, plugin_source
from tests.lab.support import LAB

LIVE_TIMEOUT = 90
RUN_TIMEOUT = 600
PROBE = "delivery_probe"
BROKEN = "delivery_broken.py"
# A DAG file with a syntax error (it names airflow and a DAG: Airflow's safe mode parses only
# files that do).
BROKEN_SOURCE = dag_source("delivery_broken", "t").replace("with DAG(", "with DAG((", 1)


def deploy(*data):
    run = run_pyinfra(*data)
    assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
    return run


@pytest.fixture(scope="module")
def api(deployed):
    return LAB.admin_api()


@pytest.fixture(scope="module")
def folder(api):
    """The scratch DAG folder the module deploys; the plain deploy at the end restores dags/."""
    folder = SyncedFolder()
    yield folder
    try:
        deploy()
    finally:
        folder.cleanup()


@pytest.fixture(scope="module")
def waits(api):
    return DagWaits(api)


def run_to_success(api, dag_id):
    api.unpause(dag_id)
    run = api.finished(dag_id, api.trigger(dag_id), timeout=RUN_TIMEOUT)
    assert run["state"] == "success", (run, api.unsuccessful(dag_id, run["dag_run_id"]))
    return run


@pytest.fixture(scope="module")
def shipped(folder):
    """A deploy shipping a new DAG and a DAG file with a syntax error."""
    folder.write(f"{PROBE}.py", dag_source(PROBE, "first"))
    folder.write(BROKEN, BROKEN_SOURCE)
    return deploy(*folder.data())


def test_new_dag_is_listed_and_runs(api, waits, shipped):
    seconds = waits.listed(PROBE, LIVE_TIMEOUT)
    print(f"new DAG listed {seconds:.1f} s after the deploy")
    run_to_success(api, PROBE)


def test_broken_dag_is_an_import_error_and_the_others_run(api, waits, shipped):
    wait_for(f"{BROKEN} reported", lambda: any(
        e["filename"].endswith(BROKEN) for e in waits.import_errors()), timeout=LIVE_TIMEOUT)
    listing = subprocess.run([sys.executable, "-m", "ops", "dags", "--json"], cwd=PROJECT,
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 1, listing.stderr  # 1: some DAG file does not import
    report = json.loads(listing.stdout)
    assert [e["file"].rsplit("/", 1)[-1] for e in report["import_errors"]] == [BROKEN]
    assert "SyntaxError" in report["import_errors"][0]["error"]
    assert {d["dag_id"] for d in report["dags"]} >= {PROBE, "airflow_cluster_health"}
    run_to_success(api, "airflow_cluster_health")


def test_changed_dag_shows_its_new_task(waits, folder, shipped):
    folder.write(f"{PROBE}.py", dag_source(PROBE, "first", "second"))
    deploy(*folder.data())
    seconds = waits.has_task(PROBE, "second", LIVE_TIMEOUT)
    print(f"changed DAG's new task listed {seconds:.1f} s after the deploy")


def test_redeploy_without_change_changes_nothing(folder, shipped):
    rerun = deploy(*folder.data())
    assert rerun.changed_operations() == [], rerun.changed_operations()


def test_removed_dag_is_no_longer_scheduled(waits, folder, shipped):
    folder.remove(f"{PROBE}.py")
    folder.remove(BROKEN)
    deploy(*folder.data())
    seconds = waits.gone(PROBE, LIVE_TIMEOUT)
    print(f"removed DAG stale {seconds:.1f} s after the deploy")
    wait_for("the import error cleared", lambda: not any(
        e["filename"].endswith(BROKEN) for e in waits.import_errors()), timeout=LIVE_TIMEOUT)


# Every Airflow service loads plugins when it starts: the names of their restart operations.
PLUGIN_LOADERS = tuple(
    f"| {unit}.service restarted"
    for unit in ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer")
) + ("| running worker instances restarted",)


@pytest.fixture(scope="module")
def git_server(folder):
    """db1 serves a repository, which plugin_and_git makes the Git DAG bundle."""
    server = GitServer(LAB, "db1")
    server.install()
    server.push({"README.md": "DAGs of the lab's Git bundle check.\n"}, "empty")
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def plugin_and_git(folder, git_server):
    """One deploy that brings a plugin and makes the Git repository the DAG bundle (each
    restarts every Airflow service: one restart instead of two): (its run, its data). Both
    stay until the module's last deploy, which restores plugins/ and dags/."""
    plugins = plugin_folder()
    plugins.write("lab_probe_plugin.py", plugin_source("lab_probe_plugin"))
    data = [*folder.data(), *plugins.data(), *git_server.data()]
    yield deploy(*data), data
    plugins.cleanup()


def test_a_new_plugin_restarts_the_services_and_is_loaded(api, plugin_and_git):
    run, data = plugin_and_git
    restarted = [name for name, _ in run.changed_operations() if " restarted " in name]
    for loader in PLUGIN_LOADERS:
        assert any(loader in name for name in restarted), restarted
    wait_for("the plugin listed by the API servers", lambda: "lab_probe_plugin" in {
        p["name"] for p in api.collection("/api/v2/plugins", "plugins")}, timeout=300)
    rerun = deploy(*data)
    assert rerun.changed_operations() == [], rerun.changed_operations()


def test_pushed_dag_runs_without_a_deploy(api, waits, git_server, plugin_and_git):
    git_server.push({"git_probe.py": dag_source("git_probe", "from_git")}, "a DAG")
    seconds = waits.listed("git_probe", LIVE_TIMEOUT, bundle=GIT_BUNDLE)
    print(f"pushed DAG listed {seconds:.1f} s after the push")
    # A worker checks the bundle out at the version the run was parsed from, over SSH too.
    run_to_success(api, "git_probe")
