"""The Airflow templates rendered offline for the lab inventory, then checked by the programs
that will read them: Airflow's own config parser (in a venv made from the shipped lock, see
AIRFLOW_VENV) reads every key of airflow.cfg with the value we mean, and `systemd-analyze
verify` accepts every unit with its drop-in.
"""

import configparser
import json
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from cluster.airflow_lock import INSTALLED_LOCK
from cluster.model import build_cluster, load_inventory
from cluster.run import connections
from cluster.secret_store import load_or_create
from cluster.services import LOG_SERVER, SCHEDULER_UNITS, WORKER_TEMPLATE
from tasks.airflow import DROP_IN_TEMPLATE
from tests.unit.support import MARKER as MANAGED
from tests.unit.support import PROJECT as REPO
from tests.unit.support import api_inventory, render_template

# The venv with exactly the lock installed (`make airflow-venv`).
AIRFLOW_VENV = Path(os.environ.get("AIRFLOW_VENV", REPO / ".venv-airflow"))
INVENTORY = load_inventory(project_dir=REPO)
CLUSTER = build_cluster(INVENTORY, REPO)
AIRFLOW_HOSTS = [
    name for name, node in CLUSTER.nodes.items()
    if {"web", "scheduler", "worker"} & set(node.groups)
]
UNITS_BY_GROUP = {
    "web": ["airflow-api-server.service"],
    "scheduler": list(SCHEDULER_UNITS),
    "worker": [WORKER_TEMPLATE, LOG_SERVER],
}
# Sections whose keys Airflow passes through to Kombu without describing them.
PASS_THROUGH_SECTIONS = {"celery_broker_transport_options"}


@pytest.fixture(scope="module")
def secrets(tmp_path_factory):
    return load_or_create(tmp_path_factory.mktemp("secrets") / "cluster.json")


@pytest.fixture(scope="module")
def awkward_secrets(tmp_path_factory):
    """Supplied secrets with the characters that need quoting in URLs and escaping in
    airflow.cfg (`%` is interpolated by Airflow's parser)."""
    path = tmp_path_factory.mktemp("awkward") / "cluster.json"
    path.write_text(json.dumps({
        "redis_password": "r%ed/is@pa:ss#1-long-enough",
        "postgres_password": "pg%25/p@ss:w#rd-long-enough",
        "api_secret_key": "api%key-with-percent-signs-32-chars%",
        "jwt_secret": "jwt%%secret-with-percent-signs-32-chars",
    }))
    path.chmod(0o600)
    return load_or_create(path)


def render(template, name, secrets, **overrides):
    """`template` as files.template renders it on host `name` (tasks/context.py's names)."""
    settings = {**INVENTORY.get_host(name).data.dict(), **overrides}
    return render_template(INVENTORY, template, CLUSTER, name, secrets, settings)


@pytest.fixture(scope="module")
def airflow_python():
    python = AIRFLOW_VENV / "bin" / "python"
    assert python.exists(), (
        f"{python} is missing: `make airflow-venv` creates it from the lock "
        "(or point AIRFLOW_VENV at a venv with the lock installed)"
    )
    return python


PARSE = textwrap.dedent("""
    import configparser, json, sys
    from importlib.metadata import version
    raw = configparser.RawConfigParser()
    raw.read(sys.argv[1])
    from airflow.configuration import conf
    from airflow.providers.celery.executors.default_celery import get_default_celery_config
    described = conf.configuration_description
    celery = get_default_celery_config(conf)
    print("RESULT " + json.dumps({
        "version": version("apache-airflow"),
        "raw": {f"{s}.{k}": raw.get(s, k) for s in raw.sections() for k in raw.options(s)},
        "airflow": {f"{s}.{k}": conf.get(s, k) for s in raw.sections() for k in raw.options(s)},
        "undescribed": [f"{s}.{k}" for s in raw.sections() for k in raw.options(s)
                        if k not in described.get(s, {}).get("options", {})],
        "celery": {k: celery[k] for k in ("broker_url", "broker_transport_options",
                                          "result_backend", "task_default_queue")},
    }))
""")


def airflow_reads(python, config_text, tmp_path):
    """What Airflow's own parser reads from `config_text` (an airflow.cfg)."""
    home = tmp_path / "home"
    home.mkdir()
    config = home / "airflow.cfg"
    config.write_text(config_text)
    env = {"PATH": os.environ["PATH"], "AIRFLOW_HOME": str(home), "AIRFLOW_CONFIG": str(config)}
    done = subprocess.run(
        [str(python), "-c", PARSE, str(config)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT "):])


def expected_values(name, secrets, log_dir):
    settings = INVENTORY.get_host(name).data
    node = CLUSTER.node(name)
    home = settings.airflow_home
    expected = {
        "core.executor": "CeleryExecutor",
        "core.auth_manager": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "core.dags_folder": f"{home}/dags",
        "core.plugins_folder": f"{home}/plugins",
        "core.load_examples": "False",
        "core.parallelism": str(settings.parallelism),
        "core.max_active_tasks_per_dag": str(settings.max_active_tasks_per_dag),
        "core.max_active_runs_per_dag": str(settings.max_active_runs_per_dag),
        "core.execution_api_server_url": CLUSTER.execution_api_url,
        "core.min_serialized_dag_update_interval": str(settings.serialized_dag_update_interval),
        "logging.base_log_folder": log_dir,
        "logging.dag_processor_child_process_log_directory": f"{log_dir}/dag_processor",
        "logging.worker_log_server_port": str(settings.worker_log_server_port),
        "api.base_url": CLUSTER.public_url,
        "api.expose_config": "False",
        "api.ssl_ca_file": f"{home}/lb-ca.pem",
        "fab.enable_proxy_fix": "True",
        "fab.cookie_secure": "True",
        "operators.default_queue": settings.default_queue,
        "scheduler.use_row_level_locking": "True",
        "scheduler.enable_health_check": "True",
        "celery.broker_url": connections(CLUSTER, secrets).celery_broker_url,
        "celery.worker_concurrency": str(settings.worker_concurrency),
        # The autoscalers count queued + running tasks in the broker: both are needed.
        "celery.task_acks_late": "True",
        "celery.worker_prefetch_multiplier": "1",
        "celery.worker_enable_remote_control": "True",
        "celery_broker_transport_options.master_name": CLUSTER.broker.master_name,
        "celery_broker_transport_options.sentinel_kwargs": json.dumps(
            connections(CLUSTER, secrets).celery_broker_transport_options["sentinel_kwargs"]
        ),
        "celery_broker_transport_options.visibility_timeout": str(
            settings.celery_visibility_timeout
        ),
        "celery.operation_timeout": str(settings.celery_publish_retry_seconds + 5),
        "celery.extra_celery_config": json.dumps({"task_publish_retry_policy": {
            "max_retries": 2 * settings.celery_publish_retry_seconds, "interval_start": 0,
            "interval_step": 0.5, "interval_max": 0.5}}, sort_keys=True),
        "dag_processor.dag_bundle_config_list": CLUSTER.dags.bundle_config,
        "dag_processor.dag_bundle_storage_path": f"{settings.airflow_state_dir}/dag-bundles",
    }
    if node.control_plane:
        expected |= {
            "core.fernet_key": secrets["fernet_key"],
            "database.sql_alchemy_conn": connections(CLUSTER, secrets).sql_alchemy_conn,
            "api.secret_key": secrets["api_secret_key"],
            "api_auth.jwt_secret": secrets["jwt_secret"],
            "celery.result_backend": connections(CLUSTER, secrets).celery_result_backend,
        }
    else:
        # A worker host: no cluster secret; its Celery results as the Celery results role.
        expected |= {
            "database.sql_alchemy_conn": "sqlite://",
            "celery.result_backend": connections(CLUSTER, secrets).worker_result_backend,
        }
    if "web" in node.groups:
        expected |= {
            "api.host": node.address,
            "api.port": str(settings.api_port),
            "api.workers": str(settings.api_workers),
        }
    if "scheduler" in node.groups:
        expected |= {
            "scheduler.scheduler_health_check_server_host": node.address,
            "scheduler.scheduler_health_check_server_port": str(settings.scheduler_health_port),
            "dag_processor.parsing_processes": str(settings.dag_processor_parsing_processes),
            "dag_processor.refresh_interval": str(settings.dag_bundle_refresh_interval),
            "scheduler.task_instance_heartbeat_timeout": str(settings.task_heartbeat_timeout),
        }
    return expected


@pytest.mark.parametrize("name", AIRFLOW_HOSTS)
@pytest.mark.parametrize("which", ["generated", "awkward"])
def test_airflow_reads_every_key_we_set(name, which, request, airflow_python, tmp_path):
    secrets = request.getfixturevalue("secrets" if which == "generated" else "awkward_secrets")
    lab = render("templates/opt/airflow/airflow.cfg.j2", name, secrets)
    # Importing Airflow creates its log folders: point them into tmp_path. Only those two
    # lines differ from the file the lab host gets.
    log_dir = str(tmp_path / "logs")
    text = render("templates/opt/airflow/airflow.cfg.j2", name, secrets, airflow_log_dir=log_dir)
    lab_dir = INVENTORY.get_host(name).data.airflow_log_dir
    assert text == lab.replace(f"= {lab_dir}", f"= {log_dir}")

    read = airflow_reads(airflow_python, text, tmp_path)
    assert read["version"] == INVENTORY.get_host(name).data.airflow_version
    expected = expected_values(name, secrets, log_dir)
    assert read["airflow"] == expected, "Airflow reads other values than we mean"
    # Every key is one Airflow knows (a typo would be silently ignored), except the
    # transport options Airflow hands to Kombu as they are.
    assert [k for k in read["undescribed"] if k.split(".")[0] not in PASS_THROUGH_SECTIONS] == []
    celery = read["celery"]
    assert celery["broker_url"] == connections(CLUSTER, secrets).celery_broker_url
    backends = connections(CLUSTER, secrets)
    assert celery["result_backend"] == (backends.celery_result_backend
                                        if CLUSTER.node(name).control_plane
                                        else backends.worker_result_backend)
    assert celery["task_default_queue"] == INVENTORY.get_host(name).data.default_queue
    assert celery["broker_transport_options"] == {
        **connections(CLUSTER, secrets).celery_broker_transport_options,
        "visibility_timeout": INVENTORY.get_host(name).data.celery_visibility_timeout,
    }


def test_airflow_cfg_is_the_same_on_hosts_of_the_same_groups(secrets):
    """Cross-host values come from the model: two workers differ in nothing but their name."""
    first, second = CLUSTER.groups["worker"][:2]
    one = render("templates/opt/airflow/airflow.cfg.j2", first, secrets)
    two = render("templates/opt/airflow/airflow.cfg.j2", second, secrets)
    assert one.replace(first, "X") == two.replace(second, "X")
    # Shared secrets are identical on every API server and scheduler host, absent on workers.
    for name in AIRFLOW_HOSTS:
        raw = configparser.RawConfigParser()
        raw.read_string(render("templates/opt/airflow/airflow.cfg.j2", name, secrets))
        held = {(s, k): raw.get(s, k) for s, k in SHARED_SECRETS if raw.has_option(s, k)}
        if CLUSTER.node(name).control_plane:
            assert held == {key: secrets[secret] for key, secret in SHARED_SECRETS.items()}
        else:
            assert held == {}, name


# The secrets every API server and scheduler host shares: (section, key) -> secret's name.
SHARED_SECRETS = {
    ("core", "fernet_key"): "fernet_key",
    ("api", "secret_key"): "api_secret_key",
    ("api_auth", "jwt_secret"): "jwt_secret",
}


@pytest.mark.parametrize("which", ["generated", "awkward"])
def test_the_log_servers_configuration_is_read_by_airflow(which, request, airflow_python,
                                                         tmp_path):
    """Its own file: the one place of a worker host with [api] secret_key."""
    secrets = request.getfixturevalue("secrets" if which == "generated" else "awkward_secrets")
    name = CLUSTER.groups["worker"][0]
    log_dir = str(tmp_path / "logs")
    text = render("templates/opt/airflow/logserver.cfg.j2", name, secrets,
                  airflow_log_dir=log_dir)
    read = airflow_reads(airflow_python, text, tmp_path)
    settings = INVENTORY.get_host(name).data
    assert read["airflow"] == {
        "core.load_examples": "False",
        "database.sql_alchemy_conn": "sqlite://",
        "logging.base_log_folder": log_dir,
        "logging.worker_log_server_port": str(settings.worker_log_server_port),
        "api.secret_key": secrets["api_secret_key"],
    }
    assert read["undescribed"] == []


def rendered_files(name, secrets):
    """dest -> text of every Airflow template host `name` gets."""
    node = CLUSTER.node(name)
    out = {
        "/opt/airflow/airflow.cfg": render("templates/opt/airflow/airflow.cfg.j2", name, secrets),
        "/usr/local/bin/airflow": render("templates/usr/local/bin/airflow.j2", name, secrets),
        "/opt/airflow/environment": render("templates/opt/airflow/environment.j2", name, secrets),
        "/usr/local/sbin/airflow-cluster-db": render_template(
            INVENTORY, "templates/usr/local/sbin/airflow-cluster-db.j2", CLUSTER, name, secrets,
            installed_lock=INSTALLED_LOCK,
        ),
    }
    if "worker" in node.groups:
        out["/opt/airflow/logserver.cfg"] = render(
            "templates/opt/airflow/logserver.cfg.j2", name, secrets)
        out["/etc/systemd/system/airflow-worker-logs.service.d/20-log-server-user.conf"] = render(
            "templates/etc/systemd/system/airflow-worker-logs.service.d/"
            "20-log-server-user.conf.j2", name, secrets)
    for group, units in UNITS_BY_GROUP.items():
        if group in node.groups:
            for unit in units:
                out[f"/etc/systemd/system/{unit}"] = render(
                    f"templates/etc/systemd/system/{unit}.j2", name, secrets
                )
                out[f"/etc/systemd/system/{unit}.d/10-airflow-cluster.conf"] = render(
                    DROP_IN_TEMPLATE, name, secrets
                )
    return out


@pytest.mark.parametrize("name", AIRFLOW_HOSTS)
def test_rendered_files_say_they_are_managed_and_are_deterministic(name, secrets):
    first, second = rendered_files(name, secrets), rendered_files(name, secrets)
    assert first == second
    for dest, text in first.items():
        lines = text.splitlines()
        head = lines[1] if lines[0].startswith("#!") else lines[0]
        assert head.startswith(f"# {MANAGED}"), dest
        assert "{{" not in text and "{%" not in text, dest


@pytest.mark.parametrize("name", AIRFLOW_HOSTS)
def test_only_airflow_cfg_holds_secrets(name, secrets):
    for dest, text in rendered_files(name, secrets).items():
        leaked = {key for key, value in secrets.items() if value in text}
        if dest.endswith("airflow.cfg") and CLUSTER.node(name).control_plane:
            assert leaked == {
                "fernet_key", "api_secret_key", "jwt_secret", "redis_password", "postgres_password"
            }
        elif dest.endswith("airflow.cfg"):
            # Task code reads these on a worker host: the broker's and its own results role's.
            assert leaked == {"redis_password", "celery_db_password"}, name
        elif dest.endswith("logserver.cfg"):
            assert leaked == {"api_secret_key"}
        else:
            assert leaked == set(), dest


# --- systemd units ------------------------------------------------------------------------

SYSTEMD_UNIT_DIR = Path("/usr/lib/systemd/system")


def verify_units(units: dict[str, str], root: Path):
    """`systemd-analyze verify` in a root tree holding the system's own units, the rendered
    ones, and a stub for every program they run (the venv does not exist here)."""
    shutil.copytree(SYSTEMD_UNIT_DIR, root / SYSTEMD_UNIT_DIR.relative_to("/"), symlinks=True)
    for dest, text in units.items():
        path = root / dest.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for match in re.finditer(r"^Exec\w+=[-@:+!]*(\S+)", text, re.MULTILINE):
            program = root / match.group(1).lstrip("/")
            if not program.exists():
                program.parent.mkdir(parents=True, exist_ok=True)
                program.write_text("#!/bin/sh\n")
                program.chmod(0o755)
    names = [
        Path(dest).name.replace("@.service", "@1.service")
        for dest in units
        if dest.endswith(".service")
    ]
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", "--generators=no", f"--root={root}", *names],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
@pytest.mark.parametrize("name", [CLUSTER.groups["web"][0], CLUSTER.groups["worker"][0]])
def test_units_pass_systemd_analyze_verify(name, secrets, tmp_path):
    units = {k: v for k, v in rendered_files(name, secrets).items() if k.startswith("/etc/")}
    assert len(units) >= 4
    done = verify_units(units, tmp_path / "root")
    # verify exits 0 on unknown keys and bad values too: any output is a finding.
    assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_analyze_verify_catches_a_broken_unit(secrets, tmp_path):
    """The check above can fail: a misspelt key is reported."""
    name = CLUSTER.groups["worker"][0]
    units = {k: v for k, v in rendered_files(name, secrets).items() if k.startswith("/etc/")}
    unit = f"/etc/systemd/system/{WORKER_TEMPLATE}"
    units[unit] = units[unit].replace("KillMode=mixed", "KilMode=mixed")
    done = verify_units(units, tmp_path / "root")
    assert "KilMode" in done.stdout + done.stderr


def test_worker_unit_stops_warmly_and_names_the_celery_worker(secrets):
    name = CLUSTER.groups["worker"][0]
    settings = INVENTORY.get_host(name).data
    unit = render(f"templates/etc/systemd/system/{WORKER_TEMPLATE}.j2", name, secrets)
    assert "\nKillMode=mixed\n" in unit
    assert f"\nTimeoutStopSec={settings.worker_stop_timeout}\n" in unit
    assert "--celery-hostname worker%i@%H" in unit
    # The host's log server runs once, in its own unit.
    assert "--skip-serve-logs" in unit


def test_drop_in_sandboxes_and_runs_as_airflow(secrets):
    name = CLUSTER.groups["web"][0]
    settings = INVENTORY.get_host(name).data
    drop_in = render(DROP_IN_TEMPLATE, name, secrets)
    for line in (
        f"User={settings.airflow_user}",
        f"Environment=AIRFLOW_HOME={settings.airflow_home}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={settings.airflow_log_dir} {settings.airflow_state_dir}",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
    ):
        assert f"\n{line}\n" in drop_in, line


# --- the Git DAG bundle -----------------------------------------------------------------------

GIT_URL = "ssh://git@git.example/data/dags.git"


@pytest.fixture(scope="module")
def git_cluster():
    inventory = api_inventory(all_data={"dags_git_url": GIT_URL, "dags_git_subdir": "dags"})
    return inventory, build_cluster(inventory, REPO)


def test_git_bundle_reaches_airflow_and_the_environment(git_cluster, secrets, airflow_python,
                                                        tmp_path):
    inventory, cluster = git_cluster
    name = cluster.groups["worker"][0]
    text = render_template(inventory, "templates/opt/airflow/airflow.cfg.j2", cluster, name,
                           secrets, {**inventory.get_host(name).data.dict(),
                                     "airflow_log_dir": str(tmp_path / "logs")})
    read = airflow_reads(airflow_python, text, tmp_path)["airflow"]
    bundles = json.loads(read["dag_processor.dag_bundle_config_list"])
    assert [b["name"] for b in bundles] == ["dags-folder", "dags-git"]
    assert bundles[1]["kwargs"]["repo_url"] == GIT_URL
    # The environment file as the units (EnvironmentFile) and the CLI wrapper (sh) read it.
    env = tmp_path / "environment"
    env.write_text(render_template(inventory, "templates/opt/airflow/environment.j2", cluster,
                                   name, secrets))
    value = subprocess.run(["sh", "-c", f'. {env}; printf %s "$AIRFLOW_CONN_DAGS_GIT"'],
                           capture_output=True, text=True, check=True).stdout
    assert value == cluster.dags.environment["AIRFLOW_CONN_DAGS_GIT"]
    connection = json.loads(value)
    assert connection["host"] == GIT_URL and connection["conn_type"] == "git"
    assert not any(v in value for v in secrets.values())
