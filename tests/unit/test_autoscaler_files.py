"""The worker autoscaler's host files (rendered as the worker role renders them), its state file,
its broker reading helpers, and the ops commands' refusals (all offline)."""

import io
import json
import subprocess
import zipfile
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from autoscaler import broker, config, state
from autoscaler.decision import AUTO, DRAINED, FIXED, Mode
from cluster.run import connections
from ops.cli import main as ops_main
from cluster.services import AUTOSCALER
from tasks.worker import autoscaler_vars, package_archive
from tests.unit.support import MARKER as MANAGED
from tests.unit.support import PROJECT, render_template
from tests.unit.test_airflow_render import (  # noqa: F401 (fixtures)
    CLUSTER, INVENTORY, airflow_python, secrets, verify_units,
)

WORKER = CLUSTER.groups["worker"][0]


def rendered(template, secrets, name=WORKER):
    run = SimpleNamespace(connections=connections(CLUSTER, secrets))
    settings = INVENTORY.get_host(name).data.dict()
    return render_template(INVENTORY, template, CLUSTER, name, secrets,
                           autoscaler=autoscaler_vars(run, settings))


def settings_file(secrets, name=WORKER):
    return rendered("templates/etc/airflow-cluster/autoscaler.json.j2", secrets, name)


def test_settings_file_is_what_the_autoscaler_reads(secrets, tmp_path):
    path = tmp_path / "autoscaler.json"
    path.write_text(settings_file(secrets))
    loaded = config.load(path)
    data = INVENTORY.get_host(WORKER).data
    assert loaded.policy.host == WORKER
    assert loaded.policy.hosts == CLUSTER.groups["worker"]
    assert (loaded.policy.min_instances, loaded.policy.max_instances) == (
        data.autoscale_min_instances, data.autoscale_max_instances)
    assert loaded.policy.concurrency == data.worker_concurrency
    assert loaded.policy.cooldown == data.autoscale_cooldown
    assert loaded.interval == data.autoscale_interval
    assert loaded.stop_timeout == data.worker_stop_timeout
    assert loaded.queues == [data.default_queue]
    # The workers' own broker URL and transport options (Sentinel, master name, password).
    own = connections(CLUSTER, secrets)
    assert loaded.broker_url == own.celery_broker_url
    # With the workers' visibility timeout: Kombu's default (1 h) would make the drain's Celery
    # client re-queue tasks that have been running for longer.
    assert loaded.transport_options == {**own.celery_broker_transport_options,
                                        "visibility_timeout": data.celery_visibility_timeout}


def test_settings_file_says_it_is_managed_and_holds_only_the_broker_password(secrets):
    text = settings_file(secrets)
    assert json.loads(text)["_comment"].startswith(MANAGED)
    assert [k for k, v in secrets.items() if v in text] == ["redis_password"]


def test_settings_files_of_two_workers_differ_only_in_the_host(secrets):
    first, second = CLUSTER.groups["worker"][:2]
    one, two = json.loads(settings_file(secrets, first)), json.loads(settings_file(secrets, second))
    assert one.pop("host") == first and two.pop("host") == second
    assert one == two


def test_autoscaler_unit_and_command_pass_systemd_analyze_verify(secrets, tmp_path):
    units = {
        f"/etc/systemd/system/{AUTOSCALER}":
            rendered(f"templates/etc/systemd/system/{AUTOSCALER}.j2", secrets),
    }
    unit = units[f"/etc/systemd/system/{AUTOSCALER}"]
    assert unit.startswith(f"# {MANAGED}")
    # The service restarts itself; stopping it leaves the instances (no BindsTo/PartOf).
    assert "\nRestart=always\n" in unit and "PartOf" not in unit
    done = verify_units(units, tmp_path / "root")
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


def test_the_package_imports_and_answers_in_the_airflow_venv(airflow_python, secrets, tmp_path):
    """The hosts run it from the deploy's zip with the Airflow venv's Python (3.11, the lock's
    Kombu and Celery), as the launcher does (-P: not from the current directory)."""
    path = tmp_path / "autoscaler.json"
    path.write_text(settings_file(secrets))
    archive = tmp_path / "autoscaler.zip"
    archive.write_bytes(package_archive())
    done = subprocess.run(
        [str(airflow_python), "-P", "-c",
         "import autoscaler.broker, autoscaler.control, autoscaler.daemon, celery, kombu;"
         "from autoscaler import config; import sys;"
         "print(config.load(sys.argv[1]).policy.host, config.__file__)", str(path)],
        capture_output=True, text=True, cwd=PROJECT, timeout=120,
        env={"PYTHONPATH": str(archive), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [WORKER, str(archive / "autoscaler" / "config.py")]


def test_the_package_archive_holds_every_module_and_is_the_same_bytes_each_time():
    archive = package_archive()
    names = zipfile.ZipFile(io.BytesIO(archive)).namelist()
    assert names == sorted(f"autoscaler/{p.name}" for p in (PROJECT / "autoscaler").glob("*.py"))
    assert package_archive() == archive


# --- the state file ----------------------------------------------------------------------------


def test_no_state_file_means_autoscaling(tmp_path):
    assert state.load(tmp_path / "state.json") == (Mode(AUTO), None)


@pytest.mark.parametrize("mode, before", [
    (Mode(AUTO), None), (Mode(FIXED, 3), None), (Mode(DRAINED), Mode(FIXED, 2)),
    (Mode(DRAINED), Mode(AUTO)),
])
def test_state_round_trip(tmp_path, mode, before):
    path = tmp_path / "state.json"
    state.save(path, mode, before)
    assert state.load(path) == (mode, before)


@pytest.mark.parametrize("text", ["{", '{"mode": "fast"}', '{"mode": "fixed"}',
                                  '{"mode": "fixed", "instances": -1}'])
def test_a_broken_state_file_is_one_clear_error(tmp_path, text):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(state.StateError, match=str(path)):
        state.load(path)


# --- reading the broker --------------------------------------------------------------------------


def test_unacknowledged_messages_are_counted_by_their_routing_key():
    # Kombu's Redis transport stores [message, exchange, routing key] per delivery tag.
    assert broker._routing_key(json.dumps([{"body": "..."}, "default", "default"])) == "default"
    assert broker._routing_key(b"not json") is None


def test_an_unreachable_broker_is_unreadable_not_a_crash():
    with pytest.raises(broker.BrokerUnreadable):
        broker.read("redis://127.0.0.1:9/0", {}, ["default"], "worker1", live=None,
                    live_seconds=15)


# --- the ops commands refuse bad input before touching a host -----------------------------------


@pytest.mark.parametrize("args, message", [
    (["scale", "web1", "--instances", "1", "-y"], "'web1' is not a worker host"),
    (["scale", WORKER, "--instances", "99", "-y"], "99 is outside"),
    (["drain", "nohost", "-y"], "'nohost' is not a worker host"),
    (["autoscale", "maybe", WORKER], "'maybe' is not one of"),
])
def test_ops_refuses_bad_input_before_any_ssh(args, message, monkeypatch):
    def no_ssh(*_args, **_kwargs):
        raise AssertionError("ssh was called")

    monkeypatch.setattr("ops.remote.subprocess.run", no_ssh)
    result = CliRunner().invoke(ops_main, args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_ops_asks_before_it_changes_anything(monkeypatch):
    calls = []
    monkeypatch.setattr("ops.remote.subprocess.run", lambda *a, **k: calls.append(a))
    result = CliRunner().invoke(ops_main, ["drain", WORKER], input="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output
    assert calls == []


def test_a_state_file_that_is_not_an_object_is_one_clear_error(tmp_path):
    path = tmp_path / "state.json"
    path.write_text("[1, 2]")
    with pytest.raises(state.StateError, match="not a JSON object"):
        state.load(path)


# --- systemd's view of the instances -------------------------------------------------------------


def fake_systemctl(monkeypatch, units, jobs):
    """systemctl answering list-units (JSON) and list-jobs (plain) as systemd 252 does."""
    def run(argv, **_kwargs):
        if "list-units" in argv:
            out = json.dumps([{"unit": u, "load": "loaded", "active": a, "sub": "x",
                               "description": "d"} for u, a in units.items()])
        elif "list-jobs" in argv:
            out = "".join(f"{i} {u} {t} running\n" for i, (u, t) in enumerate(jobs.items()))
        else:
            out = ""
        return subprocess.CompletedProcess(argv, 0, out, "")

    monkeypatch.setattr("autoscaler.units.subprocess.run", run)


def test_instances_are_running_or_stopping_by_their_state_and_job(monkeypatch):
    fake_systemctl(monkeypatch, {
        "airflow-worker@1.service": "active",
        "airflow-worker@2.service": "deactivating",   # warm stop: a stop job
        "airflow-worker@3.service": "deactivating",   # a warm restart: coming back
        "airflow-worker@4.service": "deactivating",   # crashed, Restart=on-failure
        "airflow-worker@5.service": "inactive",
        "airflow-worker@6.service": "inactive",       # a start queued
        "airflow-worker@7.service": "failed",
        "airflow-worker-logs.service": "active",
    }, {"airflow-worker@2.service": "stop", "airflow-worker@3.service": "restart",
        "airflow-worker@6.service": "start"})
    from autoscaler import units

    assert units.instances() == units.Instances(running=frozenset({1, 3, 4, 6}),
                                                stopping=frozenset({2}))


# --- drain ---------------------------------------------------------------------------------------


class FakeUnits:
    def __init__(self, running):
        self.running, self.stopped = set(running), []

    def instances(self):
        from autoscaler import units
        return units.Instances(frozenset(self.running), frozenset())

    def stop(self, numbers):
        self.stopped += list(numbers)
        self.running -= set(numbers)


def drain_config(tmp_path, secrets):
    path = tmp_path / "autoscaler.json"
    path.write_text(settings_file(secrets))
    loaded = config.load(path)
    return SimpleNamespace(**{**loaded.__dict__, "state_file": tmp_path / "state.json"})


def test_a_drain_whose_operator_went_away_still_stops_the_instances(monkeypatch, tmp_path,
                                                                     secrets):
    from autoscaler import control

    fake = FakeUnits({1, 2})
    monkeypatch.setattr(control, "units", fake)

    class App:
        class control:  # noqa: N801 - Celery's attribute name
            @staticmethod
            def cancel_consumer(*_args, **_kwargs):
                raise BrokenPipeError("the operator's SSH session is gone")

        def close(self):
            pass

    monkeypatch.setattr(control, "_celery_app", lambda _config: App())
    said = []
    control.drain(drain_config(tmp_path, secrets), timeout=1, say=said.append)
    assert sorted(fake.stopped) == [1, 2]
    assert state.load(tmp_path / "state.json")[0] == Mode(DRAINED)
    assert "remote control failed" in " ".join(said)
