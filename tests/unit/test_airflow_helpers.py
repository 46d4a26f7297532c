"""The pieces of the Airflow roles that need no host: the pinned lock, the admin password
hashes (checked against werkzeug, which FAB uses), the database status fact's parsing, the
values handed to airflow.cfg, the DAGs (parsed by Airflow) and the documented settings."""

import ast
import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from cluster.airflow_lock import locked_pins, lock_file, shipped_versions
from cluster.database import celery_result_backend, sql_alchemy_conn
from cluster.broker import broker_url, transport_options
from cluster.errors import ClusterConfigError
from cluster.model import build_cluster, load_inventory
from cluster.passwords import make_password_hash, password_hash_matches
from cluster.run import connections
from cluster.secret_store import load_or_create
from cluster.settings import SETTINGS
from facts.airflow_db import STATUS_MARKER, AirflowDbStatus
from operations.airflow_db import conn_sha256
from tests.unit.support import PROJECT as REPO

AIRFLOW_VENV = Path(os.environ.get("AIRFLOW_VENV", REPO / ".venv-airflow"))
INVENTORY = load_inventory(project_dir=REPO)
CLUSTER = build_cluster(INVENTORY, REPO)
SETTINGS_OF_ALL = INVENTORY.get_host(CLUSTER.groups["worker"][0]).data.dict()


@pytest.fixture(scope="module")
def airflow_python():
    python = AIRFLOW_VENV / "bin" / "python"
    assert python.exists(), f"{python} is missing: `make airflow-venv` creates it from the lock"
    return python


def run_python(python, code, *args, env=None):
    done = subprocess.run(
        [str(python), "-c", textwrap.dedent(code), *args],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# --- the lock ---------------------------------------------------------------------------------


def lock_pins():
    return locked_pins(lock_file(SETTINGS_OF_ALL["airflow_version"]))


def test_shipped_lock_pins_the_version_and_the_working_celery():
    pins = {pin.name: pin.version for pin in lock_pins()}
    assert pins["apache-airflow"] == SETTINGS_OF_ALL["airflow_version"]
    # Celery 5.7 / kombu 5.7 break the celery provider 3.26.0 (docs/architecture.md).
    assert (pins["celery"], pins["kombu"]) == ("5.6.3", "5.6.2")
    for provider in ("celery", "postgres", "redis", "fab"):
        assert f"apache-airflow-providers-{provider}" in pins
    # Debian 12's python3 is 3.11.2: redis needs async-timeout there (not in a 3.11.7 freeze);
    # Debian 13's is 3.13: libcst needs pyyaml-ft there (cluster/systems.py's Pythons).
    markers = {pin.name: str(pin.marker) for pin in lock_pins() if pin.marker}
    assert markers == {"async-timeout": 'python_full_version < "3.11.3"',
                       "pyyaml-ft": 'python_full_version >= "3.13"'}
    assert pins["async-timeout"] == "5.0.1"
    # Every pin carries the hashes of its files: hosts install with --require-hashes.
    assert all(pin.hashes for pin in lock_pins())


def test_every_shipped_lock_parses_as_pins_with_hashes():
    for version in shipped_versions():
        pins = locked_pins(lock_file(version))
        assert len({pin.name for pin in pins}) == len(pins) > 100
        assert all(len(h) == 64 for pin in pins for h in pin.hashes)


@pytest.mark.parametrize("line, message", [
    ("celery>=5.6", "not a pin"),
    ("celery[redis]==5.6.3", "not a pin"),
    ("celery @ https://example.invalid/celery.whl", "not a pin"),
    ("-e .", "not a requirement"),
])
def test_a_lock_line_that_is_not_an_exact_pin_is_refused(tmp_path, line, message):
    lock = tmp_path / "requirements-1.0.lock"
    lock.write_text(f"apache-airflow==1.0\n{line}\n")
    with pytest.raises(ClusterConfigError, match=message):
        locked_pins(lock)


def test_lock_of_an_unknown_version_is_refused():
    with pytest.raises(ClusterConfigError, match="no lock file"):
        lock_file("9.9.9")


def test_airflow_venv_matches_the_lock(airflow_python):
    """The venv the config tests use has exactly the lock installed (markers evaluated for
    its Python), and nothing that lock needs on Debian 12's Python 3.11.2 is missing."""
    out = run_python(
        airflow_python,
        """
        import json, sys
        from importlib.metadata import distributions
        from packaging.markers import Marker, default_environment
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name as norm
        installed = {norm(d.metadata["Name"]): d.version for d in distributions()}
        wanted, debian = {}, {}
        for name, version, marker in json.loads(sys.argv[1]):
            marker = Marker(marker) if marker else None
            if marker is None or marker.evaluate():
                wanted[name] = version
            debian_env = {**default_environment(), "python_full_version": "3.11.2"}
            if marker is None or marker.evaluate(debian_env):
                debian[name] = True
        # What the locked packages require on Debian's Python, extras aside.
        env = {**default_environment(), "python_full_version": "3.11.2", "extra": ""}
        needed = sorted(
            f"{d.metadata['Name']} -> {r}" for d in distributions() for r in d.requires or []
            if norm(Requirement(r).name) not in debian
            and (Requirement(r).marker is None or Requirement(r).marker.evaluate(env))
        )
        print("RESULT " + json.dumps({
            "differ": {n: [v, installed.get(n)] for n, v in wanted.items()
                       if installed.get(n) != v},
            "missing_on_debian": needed,
        }))
        """,
        json.dumps([(pin.name, pin.version, pin.marker and str(pin.marker))
                    for pin in lock_pins()]),
    )
    result = json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][7:])
    assert result["differ"] == {}
    assert result["missing_on_debian"] == []


# --- admin password hashes --------------------------------------------------------------------


def test_password_hash_round_trip():
    stored = make_password_hash("s3cret/p%ss")
    assert stored.startswith("scrypt:32768:8:1$")
    assert password_hash_matches("s3cret/p%ss", stored)
    assert not password_hash_matches("s3cret/p%sS", stored)
    assert make_password_hash("same") != make_password_hash("same"), "salted"
    for garbage in (None, "", "plain", "scrypt$x", "md5:1$salt$abc", "a$b$c$d"):
        assert not password_hash_matches("same", garbage)


def test_password_hashes_agree_with_werkzeug(airflow_python):
    """FAB stores werkzeug hashes: ours must be accepted by werkzeug, and werkzeug's
    (scrypt and pbkdf2) by ours."""
    password = "pa$s/w%rd-ü"
    ours = make_password_hash(password)
    out = run_python(
        airflow_python,
        """
        import json, sys
        from werkzeug.security import check_password_hash, generate_password_hash
        password, ours = sys.argv[1], sys.argv[2]
        print(json.dumps({
            "accepts_ours": check_password_hash(ours, password),
            "rejects_wrong": not check_password_hash(ours, password + "x"),
            "scrypt": generate_password_hash(password),
            "pbkdf2": generate_password_hash(password, method="pbkdf2:sha256:1000"),
        }))
        """,
        password,
        ours,
    )
    result = json.loads(out.splitlines()[-1])
    assert result["accepts_ours"] and result["rejects_wrong"]
    assert password_hash_matches(password, result["scrypt"])
    assert password_hash_matches(password, result["pbkdf2"])
    assert not password_hash_matches(password + "x", result["pbkdf2"])


# --- the database status fact -----------------------------------------------------------------


def test_status_fact_reads_the_marked_line_among_airflow_noise():
    answer = {"db": "current", "conn_sha256": "ab", "admin_password_hash": "scrypt:1:1:1$s$h",
              "celery_results": True}
    output = [
        "2026-11-24T03:11:42Z [warning  ] Using `httpx` with `starlette.testclient` ...",
        STATUS_MARKER + json.dumps(answer),
        "",
    ]
    assert AirflowDbStatus().process(output) == answer


def test_status_fact_without_an_answer_means_unknown():
    unknown = {"db": "unknown", "conn_sha256": None, "admin_password_hash": None,
               "celery_results": None}
    assert AirflowDbStatus().process([]) == unknown
    assert AirflowDbStatus().process(["Traceback (most recent call last):"]) == unknown
    assert AirflowDbStatus.default() == unknown


def test_status_fact_command_tolerates_a_host_without_airflow(tmp_path):
    command = AirflowDbStatus().command(python=str(tmp_path / "nope"), admin_user="admin")
    done = subprocess.run(
        ["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0 and done.stdout == ""


def test_conn_fingerprint_is_that_of_the_configured_url(tmp_path):
    secrets = load_or_create(tmp_path / "s.json")
    url = sql_alchemy_conn(CLUSTER.database, secrets["postgres_password"])
    assert conn_sha256(url) == conn_sha256(url) != conn_sha256(url + "x")
    assert len(conn_sha256(url)) == 64


# --- values handed to airflow.cfg --------------------------------------------------------------


def test_connections_come_from_the_data_tier(tmp_path):
    secrets = load_or_create(tmp_path / "s.json")
    derived = connections(CLUSTER, secrets)
    pg, redis = secrets["postgres_password"], secrets["redis_password"]
    assert derived.sql_alchemy_conn == sql_alchemy_conn(CLUSTER.database, pg)
    assert derived.celery_result_backend == celery_result_backend(CLUSTER.database, pg)
    assert derived.celery_broker_url == broker_url(CLUSTER.broker, redis)
    assert derived.celery_broker_transport_options == transport_options(CLUSTER.broker, redis)


# --- DAGs -------------------------------------------------------------------------------------


def parse_dags(airflow_python, folder, tmp_path) -> dict:
    """Airflow's DagBag of `folder`: {"errors": {file: error}, "dags": {dag_id: task ids}}."""
    out = run_python(
        airflow_python,
        """
        import json, sys
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(sys.argv[1])
        print("RESULT " + json.dumps({
            "errors": {k: str(v) for k, v in bag.import_errors.items()},
            "dags": {dag_id: sorted(dag.task_ids) for dag_id, dag in bag.dags.items()},
        }))
        """,
        str(folder),
        env={
            "PATH": os.environ["PATH"],
            "AIRFLOW_HOME": str(tmp_path),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "PYTHONDONTWRITEBYTECODE": "1",  # no __pycache__ in the repository's dags/
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(tmp_path / "logs"),
            "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(tmp_path / "dp"),
        },
    )
    return json.loads([line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:])


def test_dags_parse_in_airflow(airflow_python, tmp_path):
    result = parse_dags(airflow_python, REPO / "dags", tmp_path)
    assert result["errors"] == {}
    dags = result["dags"]
    assert set(dags) == {"airflow_cluster_fanout", "airflow_cluster_health", "airflow_cluster_load",
                         "airflow_cluster_drill"}
    assert dags["airflow_cluster_load"] == dags["airflow_cluster_drill"] == ["plan", "sleep"]
    assert len([t for t in dags["airflow_cluster_fanout"] if t.startswith("work_")]) >= 20
    assert sorted(dags["airflow_cluster_health"]) == [
        "broker_primary", "database", "worker_holds_no_secrets", "workers_answer"]


def test_lab_probe_dags_parse_in_airflow(airflow_python, tmp_path):
    """The DAGs the lab's delivery checks write (lab/client/dags.py) are valid DAGs."""
    from lab.client.dags import dag_source

    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "probe.py").write_text(dag_source("probe", "first", "second"))
    result = parse_dags(airflow_python, folder, tmp_path)
    assert result == {"errors": {}, "dags": {"probe": ["first", "second"]}}


# --- documented settings ----------------------------------------------------------------------

AIRFLOW_SETTINGS_FILES = ["group_data/web.py", "group_data/scheduler.py", "group_data/worker.py"]


def assignments_with_comments(path, start_marker=None):
    lines = (REPO / path).read_text().splitlines()
    if start_marker:
        lines = lines[next(i for i, line in enumerate(lines) if start_marker in line):]
    found = {}
    for node in ast.parse("\n".join(lines)).body:
        if isinstance(node, ast.Assign):
            name = node.targets[0].id
            found[name] = lines[node.lineno - 2].lstrip().startswith("#")
    return found


@pytest.mark.parametrize("path", AIRFLOW_SETTINGS_FILES + ["group_data/all.py"])
def test_airflow_settings_are_documented_and_known(path):
    marker = "--- Airflow (web, scheduler and worker hosts)" if path.endswith("all.py") else None
    found = assignments_with_comments(path, marker)
    assert found, path
    undocumented = [name for name, commented in found.items() if not commented]
    assert undocumented == [], f"{path}: no comment line above {undocumented}"
    assert [name for name in found if name not in SETTINGS] == []
