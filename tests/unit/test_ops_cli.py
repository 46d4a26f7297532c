"""The operations commands `status`, `restart`, `upgrade` and `failover-drill`, offline.

- The CLI (click's CliRunner on ops.cli.main, over a copy of the shipped project): --help, and
  every bad input refused with a clear message before any host is connected to (Session is
  replaced by one that fails the test if it is ever made).
- `upgrade --dry` and ops.upgrade.plan: the steps in the order Airflow requires, each on the
  hosts of the right group.
- ops.status.assess/render from recorded inputs (the document ops/status/collect.py returns).
- ops.restart._worker_problem, and the shell script of failover-drill.
"""

import dataclasses
import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from cluster.model import build_cluster
from cluster.services import host_units
from operations import remote
from operations.airflow_upgrade import UpgradeError, migrate_with_schedulers_stopped
from ops import failover_drill, restart, upgrade
from ops.cli import main
from ops.status.assess import assess
from ops.status.render import render
from tests.unit.support import GROUPS, LAB_ADDRESSES, PROJECT, SECRETS, api_inventory

VIP = "172.29.213.10"


# --- the CLI, offline -----------------------------------------------------------------------


class NoSession:
    """Stands in for ops.session.Session: a command that gets this far would connect."""

    def __init__(self, *args, **kwargs):
        raise AssertionError("a host would have been connected to")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A copy of the shipped inventory, group_data and Airflow locks (an upgrade records the
    version in group_data: never in the working tree), with connecting forbidden."""
    shutil.copy(PROJECT / "inventory.py", tmp_path / "inventory.py")
    shutil.copytree(PROJECT / "group_data", tmp_path / "group_data",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(PROJECT / "files" / "airflow", tmp_path / "files" / "airflow")
    for module in ("ops.session", "ops.status", "ops.restart", "ops.upgrade",
                   "ops.failover_drill"):
        monkeypatch.setattr(f"{module}.Session", NoSession)
    return tmp_path


def ops(project, *args):
    return CliRunner().invoke(main, ["--project-dir", str(project), *args])


def assert_refused(result, *fragments):
    """Exit status non-zero, the reason on stderr, no traceback (the command stopped on its
    own: NoSession's AssertionError would show as result.exception)."""
    assert result.exit_code != 0, result.output
    assert not isinstance(result.exception, AssertionError), result.exception
    assert result.exit_code in (1, 2), (result.exit_code, result.exception)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize("command, options", [
    ("status", ["--json"]),
    ("restart", ["--limit", "--yes", "web|scheduler|worker"]),
    ("upgrade", ["--version", "--dry", "--yes"]),
    ("failover-drill", ["--yes", "redis"]),
])
def test_help(project, command, options):
    result = ops(project, command, "--help")
    assert result.exit_code == 0, result.output
    for option in options:
        assert option in result.stdout


@pytest.mark.parametrize("args, fragments", [
    (["restart", "nosuchrole"], ["'nosuchrole' is not one of 'web', 'scheduler', 'worker'"]),
    (["restart", "web", "--limit", "worker1"],
     ["--limit", "'worker1': not a web host (web hosts: web1, web2)"]),
    (["restart", "worker", "--limit", ","], ["--limit", "not a worker host"]),
    (["restart"], ["Missing argument"]),
    (["upgrade"], ["Missing option '--version'"]),
    (["upgrade", "--dry"], ["Missing option '--version'"]),
    (["failover-drill", "postgres"], ["'postgres' is not 'redis'"]),
    (["failover-drill"], ["Missing argument"]),
])
def test_usage_errors_before_connecting(project, args, fragments):
    result = ops(project, *args)
    assert_refused(result, *fragments)
    assert result.exit_code == 2  # click's usage error


def test_upgrade_to_a_version_without_a_lock(project):
    """Checked before the plan and before any connection: one `error:` line, exit 1."""
    result = ops(project, "upgrade", "--version", "9.9.9", "--yes")
    assert_refused(result, "error: ", "9.9.9", "no lock file",
                   "files/airflow/requirements-9.9.9.lock")
    assert result.exit_code == 1
    assert result.stderr.count("error: ") == 1


# --- upgrade: the plan ----------------------------------------------------------------------


def test_upgrade_dry_prints_the_plan_in_order_and_changes_nothing(project):
    before = {p.name: p.read_text() for p in (project / "group_data").glob("*.py")}
    result = ops(project, "upgrade", "--dry", "--version", "3.3.1")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split(".")[0] for line in lines] == [str(n) for n in range(1, 9)]
    assert lines[0].startswith("1. install Airflow 3.3.1 into /opt/airflow/venv-3.3.1")
    assert lines[0].endswith("[web1, web2, worker1, worker2]")
    assert "stop the schedulers" in lines[1] and lines[1].endswith("[web1, web2]")
    assert "airflow db migrate with 3.3.1" in lines[2] and lines[2].endswith("[web1]")
    assert "switch /opt/airflow/venv to /opt/airflow/venv-3.3.1" in lines[3]
    assert lines[4] == '5. record airflow_version = "3.3.1" in group_data'
    assert "start the schedulers" in lines[5]
    assert "API servers" in lines[6] and lines[6].endswith("[web1, web2]")
    assert "worker hosts" in lines[7] and lines[7].endswith("[worker1, worker2]")
    assert {p.name: p.read_text() for p in (project / "group_data").glob("*.py")} == before


def assert_plan(steps, cluster, version):
    """install (all Airflow hosts) -> stop schedulers -> migrate (one host) -> switch ->
    record -> start schedulers -> API servers -> workers, each on its group's hosts."""
    groups = cluster.groups
    airflow = tuple(n for n in cluster.nodes
                    if {"web", "scheduler", "worker"} & set(cluster.node(n).groups))
    words = ["install", "stop the schedulers", "db migrate", "switch", "record",
             "start the schedulers", "API servers", "worker hosts"]
    assert len(steps) == len(words)
    for step, word in zip(steps, words):
        assert word in step.title
    assert f"/opt/airflow/venv-{version}" in steps[0].title
    assert steps[3].title == f"switch /opt/airflow/venv to /opt/airflow/venv-{version}"
    # The migration on an API server or scheduler host: worker hosts cannot open the database.
    control_plane = tuple(n for n in airflow if cluster.node(n).control_plane)
    assert [step.hosts for step in steps] == [
        airflow, tuple(groups["scheduler"]), control_plane[:1], airflow, (),
        tuple(groups["scheduler"]), tuple(groups["web"]), tuple(groups["worker"])]


def test_plan_on_the_lab_inventory(cluster):
    assert_plan(upgrade.plan(cluster, "3.3.1"), cluster, "3.3.1")


def test_plan_with_schedulers_apart_from_the_api_servers():
    """The lab runs schedulers and API servers on the same hosts, so only an inventory where
    the groups differ shows a plan that takes one group for the other."""
    groups = {**GROUPS, "scheduler": ("sched1",)}
    inventory = api_inventory(groups, {**LAB_ADDRESSES, "sched1": "172.29.213.43"})
    cluster = build_cluster(inventory, PROJECT)
    steps = upgrade.plan(cluster, "3.3.1")
    assert_plan(steps, cluster, "3.3.1")
    assert steps[1].hosts == steps[5].hosts == ("sched1",)
    assert steps[6].hosts == ("web1", "web2")


def test_plan_migrates_on_an_api_server_or_scheduler_host_even_after_a_worker():
    """A worker host first in the inventory holds no database password: not it."""
    inventory = api_inventory({"worker": GROUPS["worker"], **GROUPS})
    cluster = build_cluster(inventory, PROJECT)
    assert list(cluster.nodes)[0] == "worker1"
    steps = upgrade.plan(cluster, "3.3.1")
    assert_plan(steps, cluster, "3.3.1")
    assert steps[2].hosts == ("web1",)


# --- status: assess and render from recorded inputs -----------------------------------------

ROLES = {"lb1": ["lb"], "lb2": ["lb"], "redis1": ["redis"], "redis2": ["redis"],
         "redis3": ["redis"], "db1": ["postgres"], "web1": ["web", "scheduler"],
         "web2": ["web", "scheduler"], "worker1": ["worker"], "worker2": ["worker"]}
REDIS = {name: LAB_ADDRESSES[name] for name in ("redis1", "redis2", "redis3")}


def worker_status(host, mode="auto", running=(1, 2), min_instances=1, online=True):
    """What `airflow-cluster-autoscaler status --celery` answers (autoscaler/__main__.py)."""
    return {"host": host, "mode": mode, "fixed_instances": None, "before_drain": None,
            "min_instances": min_instances, "max_instances": 4, "running": list(running),
            "stopping": [], "last_round": None,
            "celery": {f"worker{n}@{host}": {"online": online, "active": []} for n in running}}


def redis_inputs(primary="redis1"):
    """Every sentinel naming `primary`, the other servers its connected replicas."""
    address = REDIS[primary]
    records = [{"kind": "sentinel", "addr": f"{a}:26379", "ip": address, "port": 6379,
                "epoch": 1, "flags": "master", "replicas": [r for r in REDIS.values()
                                                            if r != address]}
               for a in REDIS.values()]
    for name, a in REDIS.items():
        if name == primary:
            records.append({"kind": "server", "addr": f"{a}:6379", "role": "master",
                            "connected_slaves": 2})
        else:
            records.append({"kind": "server", "addr": f"{a}:6379", "role": "slave",
                            "connected_slaves": 0, "master_host": address,
                            "master_port": 6379, "master_link": "connected"})
    replication = {"role": "master", "master_repl_offset": 5000, "replicas": [
        {"ip": a, "port": 6379, "state": "online", "offset": 4990, "lag": 0}
        for a in REDIS.values() if a != address]}
    return {"records": records, "replication": replication, "asked_on": "redis1"}


def healthy_inputs():
    """What collect() returns for the lab cluster when everything is up."""
    hosts = {}
    for name, groups in ROLES.items():
        expected = host_units(groups, vip=True)
        record = {"address": LAB_ADDRESSES[name], "groups": groups, "expected": expected,
                  "error": None,
                  "units": {unit.replace("*", "15"): "active" for unit in expected}}
        if "worker" in groups:
            record["units"].update({f"airflow-worker@{n}.service": "active" for n in (1, 2)})
            record["autoscaler"] = worker_status(name)
        if "lb" in groups:
            record["haproxy"] = {w: {"status": "UP", "sessions": 0} for w in ("web1", "web2")}
            record["addresses"] = [LAB_ADDRESSES[name]] + ([VIP] if name == "lb1" else [])
        hosts[name] = record
    health = {c: {"status": "healthy"} for c in
              ("metadatabase", "scheduler", "triggerer", "dag_processor")}
    return {"public_url": f"https://{VIP}/", "vip": VIP, "hosts": hosts,
            "redis": redis_inputs(),
            "airflow": {"health": health, "counts": {"queued": 0, "running": 1},
                        "running_by_host": {"worker1": ["health.check"]}}}


def test_healthy_cluster():
    report = assess(healthy_inputs())
    assert report["healthy"] is True
    assert report["problems"] == [] and report["notes"] == []
    assert report["redis"]["primary"] == "172.29.213.21:6379"
    assert [r["state"] for r in report["redis"]["replicas"]] == ["online", "online"]
    assert report["load_balancer"]["vip_holders"] == ["lb1"]
    text, document = render(report), json.dumps(report)
    assert text.splitlines()[-1] == "Healthy"
    for name in ROLES:
        assert name in text and f'"{name}"' in document
    assert "health.check" in text


def test_json_document_is_stable():
    report = json.loads(json.dumps(assess(healthy_inputs())))
    assert list(report) == ["healthy", "problems", "notes", "public_url", "hosts", "redis",
                            "load_balancer", "workers", "tasks", "airflow"]


def degraded(inputs):
    report = assess(inputs)
    assert report["healthy"] is False
    assert report["problems"]
    json.dumps(report)  # serialisable whatever went wrong
    return report, render(report)


def test_unreachable_host():
    inputs = healthy_inputs()
    inputs["hosts"]["worker2"] = {**inputs["hosts"]["worker2"], "error": "timed out",
                                  "units": None, "autoscaler": None}
    report, text = degraded(inputs)
    assert report["problems"] == ["worker2: unreachable (timed out)"]
    assert "worker2" in text and "UNREACHABLE: timed out" in text
    assert "DEGRADED (1)" in text


def test_api_server_down_in_one_haproxy():
    inputs = healthy_inputs()
    inputs["hosts"]["lb1"]["haproxy"]["web2"]["status"] = "DOWN"
    report, _ = degraded(inputs)
    assert report["problems"] == ["lb1: HAProxy sees API server web2 DOWN"]


def test_redis_named_primary_is_a_replica():
    """The sentinels name redis1, which answers as a replica: no primary."""
    inputs = healthy_inputs()
    server = next(r for r in inputs["redis"]["records"]
                  if r["kind"] == "server" and r["addr"].startswith(REDIS["redis1"]))
    server.update(role="slave", master_host=REDIS["redis2"], master_port=6379,
                  master_link="down")
    report, text = degraded(inputs)
    assert report["redis"]["primary"] is None
    assert any(p.startswith("redis: no primary") and "slave" in p for p in report["problems"])
    assert "primary NONE" in text


def test_redis_no_sentinel_answers():
    inputs = healthy_inputs()
    inputs["redis"]["records"] = [
        {"kind": "sentinel", "addr": f"{a}:26379", "error": "Connection refused"}
        for a in REDIS.values()] + [r for r in inputs["redis"]["records"] if r["kind"] == "server"]
    report, _ = degraded(inputs)
    assert report["redis"]["primary"] is None
    assert "redis: no sentinel answers" in report["problems"]
    assert "redis2: sentinel does not answer (Connection refused)" in report["problems"]


def test_redis_cannot_be_asked():
    inputs = healthy_inputs()
    inputs["redis"] = {"error": "no redis host can be reached"}
    report, _ = degraded(inputs)
    assert report["redis"] == {"primary": None, "replicas": [], "sentinels": []}
    assert report["problems"] == ["redis: no redis host can be reached"]


def test_drained_worker_host_is_a_note():
    inputs = healthy_inputs()
    inputs["hosts"]["worker1"]["autoscaler"] = worker_status("worker1", "drained", running=())
    report = assess(inputs)
    assert report["healthy"] is True
    assert report["notes"] == ["worker1: drained (python -m ops undrain worker1)"]
    assert "note: worker1: drained" in render(report)


def test_too_few_worker_instances():
    inputs = healthy_inputs()
    inputs["hosts"]["worker2"]["autoscaler"] = worker_status("worker2", running=(1,),
                                                             min_instances=2)
    report, _ = degraded(inputs)
    assert report["problems"] == ["worker2: 1 worker instances, fewer than 2"]


def test_celery_worker_not_online():
    inputs = healthy_inputs()
    inputs["hosts"]["worker1"]["autoscaler"]["celery"]["worker2@worker1"]["online"] = False
    report, _ = degraded(inputs)
    assert report["problems"] == ["worker1: Celery worker worker2@worker1 does not answer"]


# --- restart: when a worker host counts as healthy ------------------------------------------


@pytest.mark.parametrize("status, problem", [
    (worker_status("worker1"), None),
    (worker_status("worker1", running=(1,), min_instances=2),
     "1 worker instance(s) running, 2 wanted"),
    ({**worker_status("worker1", mode="fixed", running=(1, 2)), "fixed_instances": 3},
     "2 worker instance(s) running, 3 wanted"),
    (worker_status("worker1", online=False),
     "Celery workers not answering: worker1@worker1, worker2@worker1"),
    ({**worker_status("worker1"), "celery": {"error": "OperationalError: timed out"}},
     "Celery: OperationalError: timed out"),
    (worker_status("worker1", mode="drained", running=(), min_instances=2), None),
    ({"error": "no answer"}, "autoscaler: no answer"),
])
def test_worker_problem(status, problem):
    assert restart._worker_problem(status) == problem


# --- failover-drill: the script run on a redis host -----------------------------------------


def test_drill_script_is_valid_shell_without_a_password(cluster):
    """As the command builds it for the lab (the primary on redis1, asked of redis2's sentinel);
    the command runs it with `bash -c`, so bash must parse it."""
    broker = cluster.broker
    script = failover_drill.drill_script(broker.sentinels[1], broker.master_name,
                                         "172.29.213.21", broker.port)
    checked = subprocess.run(["bash", "-n", "-c", script], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert f"SENTINEL FAILOVER {broker.master_name} " in script
    assert f"GET-MASTER-ADDR-BY-NAME {broker.master_name} " in script
    assert "-h 172.29.213.22 -p 26379" in script
    # No password on a command line: redis-cli reads REDISCLI_AUTH, set on the host from
    # the auth file; no -a, no AUTH command, none of the (test) secrets.
    assert "REDISCLI_AUTH" in script and " -a " not in script and "AUTH " not in script
    for secret in SECRETS.values():
        assert secret not in script


# --- upgrade: what a failure leaves -----------------------------------------------------------


class RecordingSession:
    """Stands in for ops.session.Session in the upgrade's steps: records each command, fails
    those containing a word of `failing`, answers facts from `facts` (by class name)."""

    def __init__(self, failing=(), facts=None):
        self.commands, self.failing, self.facts = [], failing, facts or {}

    def run(self, name, command, timeout=60):
        text = command if isinstance(command, str) else command.get_raw_value()
        self.commands.append((name, text))
        ok = not any(word in text for word in self.failing)
        return remote.Result(ok, [], [] if ok else [f"{text}: failed"])

    def fact(self, name, cls, **kwargs):
        return self.facts[cls.__name__]


def test_a_failed_drain_still_undrains_the_worker_host():
    session = RecordingSession(failing=[" drain"],
                               facts={"AutoscalerStatus": worker_status("worker1")})
    with pytest.raises(UpgradeError, match="worker1: .* drain"):
        upgrade._roll_worker(session, "worker1")
    assert [c.split()[-1] for _, c in session.commands if "autoscaler" in c] == [
        "]", "undrain"]  # `... drain || [ $? -eq 3 ]`, then the undrain


def test_a_host_the_operator_drained_stays_drained(monkeypatch):
    status = worker_status("worker1", mode="drained", running=())
    session = RecordingSession(facts={"AutoscalerStatus": status,
                                      "ServiceStates": {u: "active" for u in
                                                        ("airflow-worker-logs.service",
                                                         "airflow-cluster-autoscaler.service")}})
    monkeypatch.setattr(restart, "SETTLE", 0)
    upgrade._roll_worker(session, "worker1")
    assert not any("drain" in c for _, c in session.commands)


@dataclasses.dataclass
class StandInHost:
    name: str


def test_a_failed_migration_starts_the_schedulers_again(monkeypatch):
    ran = []

    def run(state, host, command, timeout=None):
        text = command.get_raw_value()
        ran.append((host.name, text))
        return remote.Result("migrate" not in text, [], ["alembic: error"])

    monkeypatch.setattr(remote, "run", run)
    schedulers = [StandInHost("web1"), StandInHost("web2")]
    with pytest.raises(UpgradeError, match="migrate failed on web1: alembic: error"):
        migrate_with_schedulers_stopped(None, schedulers[0], "/opt/airflow/venv-9/bin/python",
                                        schedulers, ("airflow-scheduler.service",), say=print)
    assert [(host, text.split()[1]) for host, text in ran] == [
        ("web1", "stop"), ("web2", "stop"), ("web1", "/usr/local/sbin/airflow-cluster-db"),
        ("web1", "start"), ("web2", "start")]
