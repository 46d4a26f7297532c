"""Worker autoscaling on the lab (autoscaler/, tasks/worker.py, `python -m ops workers|scale|
autoscale|drain|undrain`), driven by the load DAG (dags/airflow_cluster_load.py) through the
load balancer's REST API:

- the autoscaler's broker count equals the Helm chart's KEDA query on a scheduler host;
- a burst of 100 tasks grows both worker hosts within 30 s, and every task succeeds on its
  first try;
- a scale-in while tasks run stops the instance only after its tasks finish; `ops drain`
  while tasks run kills none and leaves the host with no instance; `undrain` brings it back;
- a deploy re-run keeps the operator's count and changes nothing;
- idle, every host goes back to its minimum after the cooldown.

Each test leaves every worker host autoscaling. Only the burst (first after the rest check)
and the idle test start from the rest; the others fix or drain the counts themselves and wait
only for the load of the test before to end (no cooldowns waited for). The run configuration
of the load DAG sets its size; it has no retries, so a killed task shows as failed.
"""

import math
import subprocess
import sys
import time

import pytest

from cluster.groups import AIRFLOW_GROUPS
from lab.client import PROJECT, run_pyinfra, wait_for
from tests.lab.support import LAB

CLUSTER = LAB.cluster
LOAD = "airflow_cluster_load"
HEALTH = "airflow_cluster_health"
WORKERS = CLUSTER.groups["worker"]
SCHEDULER = CLUSTER.groups["scheduler"][0]
settings = LAB.data(WORKERS[0])
CONCURRENCY = settings.worker_concurrency
MINIMUM, MAXIMUM = settings.autoscale_min_instances, settings.autoscale_max_instances
# Generous: a scale-in takes a cooldown per instance, plus the stops.
REST_TIMEOUT = 120 + (MAXIMUM - MINIMUM + 1) * (settings.autoscale_cooldown + 60)
RUN_TIMEOUT = 900


@pytest.fixture(scope="module")
def api(role_deploy):
    role_deploy(*AIRFLOW_GROUPS)
    client = LAB.admin_api()
    client.unpause(LOAD)
    # The autoscalers count every queued task: the health DAG's hourly run landing mid-test
    # (seen: at 18:00, one task) changes the need under the tests' feet and restarts a
    # cooldown, and the KEDA query would count it too.
    client.pause(HEALTH)
    yield client
    client.unpause(HEALTH)


@pytest.fixture
def autoscaling_after():
    """Whatever a test fixed or drained, every worker host autoscales again afterwards."""
    yield
    for name in WORKERS:
        LAB.autoscaler(name, "undrain")
        LAB.autoscaler(name, "autoscale", "on")


def ops(*args) -> subprocess.CompletedProcess:
    """`python -m ops ARGS` as an operator runs it on this machine."""
    return subprocess.run([sys.executable, "-m", "ops", *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=1200)


def load(api, tasks, seconds) -> str:
    return api.trigger(LOAD, {"tasks": tasks, "seconds": seconds})


def sleepers(api, run_id) -> list[dict]:
    return [ti for ti in api.task_instances(LOAD, run_id) if ti["task_id"] == "sleep"]


def assert_every_task_succeeded_first_try(api, run_id, tasks):
    final = api.finished(LOAD, run_id, timeout=RUN_TIMEOUT)
    tis = sleepers(api, run_id)
    outcome = sorted({(ti["state"], ti["try_number"]) for ti in tis})
    assert len(tis) == tasks and outcome == [("success", 1)], outcome
    assert final["state"] == "success"
    return tis


def running_count(api, run_id, hostname=None) -> int:
    return sum(1 for ti in sleepers(api, run_id)
               if ti["state"] == "running" and (hostname is None or ti["hostname"] == hostname))


# --- installed and at rest ----------------------------------------------------------------------


@pytest.mark.parametrize("name", WORKERS)
def test_autoscaler_runs_on_every_worker_host_and_its_settings_are_private(api, name):
    host = LAB.host(name)
    assert host.service("airflow-cluster-autoscaler").is_running
    assert host.service("airflow-cluster-autoscaler").is_enabled
    config = host.file("/etc/airflow-cluster/autoscaler.json")
    assert (config.user, config.group, config.mode) == ("root", "root", 0o600)
    # The instances are the autoscaler's: none is enabled at boot by the deploy.
    assert host.run("systemctl is-enabled airflow-worker@1.service").stdout.strip() != "enabled"


def test_every_host_rests_at_its_minimum(api):
    LAB.wait_at_rest(timeout=REST_TIMEOUT)
    done = ops("workers")
    assert done.returncode == 0, done.stderr
    for name in WORKERS:
        assert name in done.stdout and "auto" in done.stdout


# --- scaling up -----------------------------------------------------------------------------------


def test_a_burst_grows_both_hosts_within_30_s_and_every_task_succeeds(api):
    LAB.wait_at_rest(timeout=REST_TIMEOUT)
    tasks = 100
    capacity_at_rest = MINIMUM * len(WORKERS) * CONCURRENCY
    # The burst reached the broker after the last reading at or below the capacity at rest
    # (`calm_at`): growth is timed from there, an upper bound. On a loaded machine a round of
    # readings takes seconds, so both hosts may be seen grown before the burst is: poll until
    # both are seen, in any order.
    calm_at, burst_at, grown_at, readings = time.monotonic(), None, {}, []
    run_id = load(api, tasks, 20)
    deadline = time.monotonic() + 300
    while (burst_at is None or len(grown_at) < len(WORKERS)) and time.monotonic() < deadline:
        if burst_at is None:
            read_at = time.monotonic()
            readings.append(LAB.broker_load(WORKERS[0]))
            if readings[-1] > capacity_at_rest:
                burst_at = read_at
            else:
                calm_at = read_at
        for name in WORKERS:
            if name not in grown_at and len(LAB.instances(name)) > MINIMUM:
                grown_at[name] = time.monotonic()
        time.sleep(0.5)
    assert burst_at is not None, f"the burst never reached the broker: {readings}"
    assert set(grown_at) == set(WORKERS), grown_at
    delays = {name: round(at - calm_at, 1) for name, at in grown_at.items()}
    print(f"instances grew {delays} s after the broker last held no more than the capacity "
          f"at rest ({readings[-2:]})")
    assert all(delay <= 30 for delay in delays.values()), delays
    tis = assert_every_task_succeeded_first_try(api, run_id, tasks)
    assert {ti["hostname"] for ti in tis} == set(WORKERS)


# --- the metric ---------------------------------------------------------------------------------


def test_broker_count_equals_the_keda_query(api, autoscaling_after):
    """With every host fixed at one instance, 40 tasks of 60 s leave some waiting in the
    queue's list and some running (unacknowledged): the broker must count both, as the KEDA
    query counts queued + running task instances in the database."""
    LAB.wait_idle(timeout=REST_TIMEOUT)
    for name in WORKERS:
        done = ops("scale", name, "--instances", "1", "-y")
        assert done.returncode == 0, done.stdout + done.stderr
    tasks = 40
    run_id = load(api, tasks, 60)
    wait_for("every task queued or running", lambda: LAB.keda_count(SCHEDULER)[0] == tasks,
             timeout=300, interval=1)

    def agree():
        before = LAB.broker_load(WORKERS[0])
        count, workers = LAB.keda_count(SCHEDULER)
        after = LAB.broker_load(WORKERS[-1])
        return (before, count, workers, after) if before == count == after else None

    before, count, workers, _ = wait_for("the broker count equal to the KEDA query", agree,
                                         timeout=60, interval=1)
    assert count == tasks and workers == math.ceil(tasks / CONCURRENCY)
    # Only 2 x 8 slots run: the rest waits in the queue's list, and is counted too.
    assert running_count(api, run_id) <= len(WORKERS) * CONCURRENCY < before
    for name in WORKERS:
        assert ops("autoscale", "on", name, "-y").returncode == 0
    assert_every_task_succeeded_first_try(api, run_id, tasks)


# --- scaling in ---------------------------------------------------------------------------------


def test_a_scale_in_lets_the_stopped_instance_finish_its_tasks(api, autoscaling_after):
    """worker1 fixed at 3 instances and worker2 at 1 run 32 tasks of 90 s, every slot busy.
    Both autoscaling again, the need (4) is split 2 + 2: after the cooldown worker1's instance 3
    stops while its 8 tasks run, and ends only once they have finished."""
    LAB.wait_idle(timeout=REST_TIMEOUT)
    first, second = WORKERS[0], WORKERS[1]
    assert ops("scale", first, "--instances", "3", "-y").returncode == 0
    assert ops("scale", second, "--instances", "1", "-y").returncode == 0
    tasks = 4 * CONCURRENCY
    run_id = load(api, tasks, 90)
    wait_for("every task running", lambda: running_count(api, run_id) == tasks, timeout=300,
             interval=2)
    assert running_count(api, run_id, first) == 3 * CONCURRENCY
    stopped_at = time.monotonic()
    assert ops("autoscale", "on", second, "-y").returncode == 0
    assert ops("autoscale", "on", first, "-y").returncode == 0
    wait_for(f"instance 3 of {first} stopping or stopped",
             lambda: 3 not in LAB.instances(first), timeout=settings.autoscale_cooldown + 120)
    print(f"scale-in {time.monotonic() - stopped_at:.0f} s after autoscaling went back on")
    assert running_count(api, run_id, first) > 2 * CONCURRENCY, "instance 3's tasks ended early"
    assert_every_task_succeeded_first_try(api, run_id, tasks)
    wait_for("instance 3 stopped", lambda: 3 not in LAB.autoscaler_status(first)["stopping"],
             timeout=120)
    waited = LAB.warm_stop_seconds(first, 3)
    print(f"instance 3's warm stop lasted {waited:.0f} s")
    assert waited > 10, "the instance stopped without waiting for its tasks"


def test_drain_lets_the_running_tasks_finish_and_undrain_brings_the_host_back(
        api, autoscaling_after):
    LAB.wait_idle(timeout=REST_TIMEOUT)
    name = WORKERS[0]
    tasks = 3 * CONCURRENCY
    run_id = load(api, tasks, 40)
    wait_for(f"tasks running on {name}", lambda: running_count(api, run_id, name) > 0,
             timeout=300, interval=1)
    drained = ops("drain", name, "-y")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    assert "running tasks:" in drained.stdout and "no instance running" in drained.stdout
    status = LAB.autoscaler_status(name)
    assert (status["mode"], status["running"], status["stopping"]) == ("drained", [], [])
    tis = assert_every_task_succeeded_first_try(api, run_id, tasks)
    assert name in {ti["hostname"] for ti in tis}
    # Drained, the host stays empty under load: the autoscaler leaves it alone.
    time.sleep(2 * settings.autoscale_interval)
    assert LAB.instances(name) == []
    undrained = ops("undrain", name, "-y")
    assert undrained.returncode == 0, undrained.stdout + undrained.stderr
    status = LAB.autoscaler_status(name)
    assert status["mode"] == "auto" and len(status["running"]) >= MINIMUM


# --- the deploy and idle ------------------------------------------------------------------------


def test_a_deploy_rerun_keeps_the_operators_count_and_changes_nothing(api, autoscaling_after):
    LAB.wait_idle(timeout=REST_TIMEOUT)
    name = WORKERS[0]
    assert ops("scale", name, "--instances", "2", "-y").returncode == 0
    run = run_pyinfra("--limit", "worker")
    assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
    assert run.changed_operations() == [], run.changed_operations()
    status = LAB.autoscaler_status(name)
    assert (status["mode"], status["running"]) == ("fixed", [1, 2])


def test_idle_hosts_go_back_to_their_minimum_and_say_why(api):
    """After the loads above, each host is back at its minimum (wait_at_rest), and each of its
    scale-ins was logged with the inputs behind it."""
    LAB.wait_at_rest(timeout=REST_TIMEOUT)
    for name in WORKERS:
        journal = LAB.run(name, "journalctl -u airflow-cluster-autoscaler --no-pager -o cat")
        stops = [line for line in journal.stdout.splitlines()
                 if line.startswith("stop (warm)") and "mode auto" in line]
        assert stops, f"no scale-in on {name}"
        # One line per decision, with the inputs that led to it.
        assert all("load " in line and "need " in line for line in stops), stops
