"""The Airflow roles on the lab: services on the right hosts only, private config with the
cluster's secrets (no default one), both schedulers alive, the fan-out DAG run through the load
balancer's REST API on both workers with its task logs readable, the health-check DAG, and
converged re-runs (a full one, and `--limit worker` alone).

By default the deploy comes from conftest.py (`deployed`: a fresh lab, a full deploy and a
re-run). With LAB_EXTERNAL=1 the lab is taken as already up with the common role and the data
tier (and, for the API tests, the load balancer) deployed, and only the Airflow roles are:
`pyinfra -y --json inventory.py deploy.py --limit web --limit scheduler --limit worker`.
Requests go from this machine to the lab's addresses only (172.29.213.0/24), never through a
proxy.
"""

import json
import secrets
from urllib.parse import urlsplit

import pytest
from packaging.utils import canonicalize_name

from cluster.airflow_lock import UV_ENV, locked_pins, lock_file, uv_install_command
from cluster.airflow_lock import venv_command
from cluster.airflow_lock import versioned_venv
from cluster.wheelhouse import WHEELHOUSE, uv_path
from cluster.groups import AIRFLOW_GROUPS
from cluster.passwords import make_password_hash
from facts.airflow_db import HELPER, STATUS_MARKER
from facts.python import SystemPython
from lab.client import run_pyinfra, wait_for
from cluster.services import ROLE_UNITS as ALL_ROLE_UNITS
from tests.lab.support import LAB, LAB_EXTERNAL

CLUSTER = LAB.cluster
ROLE_UNITS = {group: ALL_ROLE_UNITS[group] for group in AIRFLOW_GROUPS}
AIRFLOW_HOSTS = [
    name for name, node in CLUSTER.nodes.items() if set(ROLE_UNITS) & set(node.groups)
]
FANOUT, HEALTH = "airflow_cluster_fanout", "airflow_cluster_health"
# Placeholders and well-known defaults that must never reach a host.
DEFAULT_SECRETS = [
    "{FERNET_KEY}", "{SECRET_KEY}", "{JWT_SECRET_KEY}", "temporary_key",
    "airflow:airflow@", "redis://redis:6379",
]
CONTROL_PLANE_HOSTS = [name for name in AIRFLOW_HOSTS if CLUSTER.node(name).control_plane]
# What task code on a worker host must not find (issue #12): the secrets only API server and
# scheduler hosts hold, and the admin password, which no host holds.
WORKERS_LACK = ("fernet_key", "jwt_secret", "api_secret_key", "postgres_password",
                "admin_password")


@pytest.fixture(scope="module")
def airflow_deploy(role_deploy):
    return role_deploy(*AIRFLOW_GROUPS)["first"]


ssh, data = LAB.host, LAB.data


def expected_units(name):
    """The units running and enabled on `name` (worker instances are the autoscaler's)."""
    groups = CLUSTER.node(name).groups
    return [unit for group in ROLE_UNITS if group in groups for unit in ROLE_UNITS[group]]


ALL_UNITS = sorted(
    {u for units in ROLE_UNITS.values() for u in units} | {"airflow-worker@1.service"}
)


# --- services and files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CLUSTER.nodes))
def test_airflow_services_run_on_the_right_hosts_only(airflow_deploy, name):
    host = ssh(name)
    wanted = expected_units(name)
    for unit in wanted:
        service = host.service(unit)
        assert service.is_running, f"{unit} not running on {name}"
        assert service.is_enabled, f"{unit} not enabled on {name}"
    own_instances = ["airflow-worker@1.service"] if "worker" in CLUSTER.node(name).groups else []
    for unit in ALL_UNITS:
        if unit not in wanted + own_instances:
            state = host.run(f"systemctl is-active {unit}; systemctl is-enabled {unit}").stdout
            assert "active\n" not in state.replace("inactive", ""), f"{unit} active on {name}"
            assert "enabled" not in state, f"{unit} enabled on {name}"


@pytest.mark.parametrize("name", CLUSTER.groups["worker"])
def test_worker_hosts_run_their_minimum_of_instances(airflow_deploy, name):
    """The autoscaler starts autoscale_min_instances instances at rest."""
    minimum = data(name).autoscale_min_instances
    wait_for(f"{minimum} instance(s) on {name}",
             lambda: len(LAB.instances(name)) == minimum, timeout=300, interval=2)
    for number in LAB.instances(name):
        assert ssh(name).service(f"airflow-worker@{number}.service").is_running


@pytest.mark.parametrize("name", AIRFLOW_HOSTS)
def test_config_is_private_and_holds_no_default_secret(airflow_deploy, name):
    host, settings = ssh(name), data(name)
    config = host.file(f"{settings.airflow_home}/airflow.cfg")
    assert (config.user, config.group) == ("root", settings.airflow_group)
    assert config.mode & 0o027 == 0, oct(config.mode)  # 0640 or stricter
    assert host.file("/usr/local/sbin/airflow-cluster-db").mode & 0o007 == 0
    rendered = [config.path, "/usr/local/bin/airflow", "/usr/local/sbin/airflow-cluster-db"]
    rendered += host.run(
        "ls /etc/systemd/system/airflow-*.service /etc/systemd/system/airflow-*.service.d/*"
    ).stdout.split()
    for path in rendered:
        text = host.file(path).content_string
        assert "Managed by the airflow-cluster deploy" in text, path
        for default in DEFAULT_SECRETS:
            assert default not in text, f"{default!r} in {path} on {name}"
    # Airflow's fallback database: on worker hosts only, which never open it.
    assert ("sqlite://" in config.content_string) != CLUSTER.node(name).control_plane
    for path in rendered:
        if path != config.path:
            text = host.file(path).content_string
            assert not [k for k, v in LAB.secrets.items() if v in text], f"a secret in {path}"


@pytest.mark.parametrize("name", CONTROL_PLANE_HOSTS)
def test_airflow_reads_the_cluster_secrets(airflow_deploy, name):
    """What Airflow itself reads on an API server or scheduler host: the shared keys of the
    secrets file."""
    host = ssh(name)
    wanted = LAB.secrets
    for section, key, secret in (
        ("core", "fernet_key", "fernet_key"),
        ("api", "secret_key", "api_secret_key"),
        ("api_auth", "jwt_secret", "jwt_secret"),
    ):
        got = host.run(f"airflow config get-value {section} {key}")
        assert got.rc == 0, got.stderr
        assert got.stdout.strip().splitlines()[-1] == wanted[secret], f"[{section}] {key}"


@pytest.mark.parametrize("name", CLUSTER.groups["worker"])
def test_task_user_on_a_worker_finds_no_cluster_secret(airflow_deploy, name):
    """As the user task code runs as: no file it can read, and no environment or command line
    of any process it can see, holds the fernet key, the JWT secret, the API secret key, the
    metadata database's password or the admin password. (The patterns reach the host on
    standard input, into a root-only file: never on a command line.) A canary the task user
    may read proves each scan finds what is there."""
    settings = data(name)
    canary = f"canary-{secrets.token_hex(16)}"
    patterns = "\n".join(LAB.secrets[key] for key in WORKERS_LACK) + "\n"
    where, seen = "/run/airflow-cluster-test-secrets", "/run/airflow-cluster-test-seen"
    canary_file = f"{settings.airflow_state_dir}/airflow-cluster-test-canary"
    put = LAB.run(name, f"umask 077 && cat > {where} && install -m 0644 /dev/null {canary_file} "
                        f"&& echo {canary} > {canary_file}", input=patterns)
    assert put.returncode == 0, put.stderr
    task_user = f"runuser -u {settings.airflow_user} --"
    try:
        # Every file the task user can read, the whole tree but the kernel's: the canary only.
        files = LAB.run(name, f"{{ cat {where}; echo {canary}; }} | {task_user} grep -rlsF "
                              "-D skip -f - / --exclude-dir=proc --exclude-dir=sys "
                              "--exclude-dir=dev", timeout=900)
        assert files.stdout.split() == [canary_file], (files.returncode, files.stdout)
        # Every process's environment and command line it can read, kept for root to grep.
        dump = LAB.run(name, f"umask 077 && {task_user} sh -c 'for f in /proc/[0-9]*/environ "
                             "/proc/[0-9]*/cmdline; do cat $f; echo; done 2>/dev/null' "
                             f"| tr '\\0' '\\n' > {seen} && grep -cF -f {where} {seen}")
        assert dump.stdout.strip() == "0", dump.stdout
        # The scan read the processes that matter: the worker's environment, the log server.
        scanned = LAB.run(name, f"cat {seen}").stdout
        assert f"AIRFLOW_CONFIG={settings.airflow_home}/airflow.cfg" in scanned
        assert "celery worker" in scanned and "airflow serve-logs" in scanned
        # The log server's key is there, for its own user only.
        own = ssh(name).file(f"{settings.airflow_home}/logserver.cfg")
        assert (own.user, own.group, own.mode) == ("root", settings.log_server_user, 0o640)
        assert LAB.secrets["api_secret_key"] in own.content_string
    finally:
        LAB.run(name, f"rm -f {where} {seen} {canary_file}")


@pytest.mark.parametrize("name", CLUSTER.groups["worker"])
def test_log_server_runs_as_its_own_user(airflow_deploy, name):
    settings = data(name)
    shown = ssh(name).run("systemctl show airflow-worker-logs.service -p User -p "
                          "SupplementaryGroups -p Environment").stdout
    assert f"User={settings.log_server_user}\n" in shown, shown
    assert f"SupplementaryGroups={settings.airflow_group}\n" in shown, shown
    assert f"AIRFLOW_CONFIG={settings.airflow_home}/logserver.cfg" in shown, shown
    user = ssh(name).run("ps -o user:32= -p $(systemctl show -p MainPID --value "
                         "airflow-worker-logs.service)").stdout
    assert user.strip() == settings.log_server_user, user


def pins_of_lock(version: str, host) -> set[str]:
    """name==version of every pin of the shipped lock that applies on `host`'s Python (the
    markers its SystemPython fact reports)."""
    fact = SystemPython()
    markers = fact.process(host.run(fact.command()).stdout.splitlines())["markers"]
    return {f"{pin.name}=={pin.version}" for pin in locked_pins(lock_file(version))
            if pin.applies(markers)}


def frozen(host, uv: str, python: str) -> set[str]:
    """name==version (PEP 503 names) of what uv finds in the venv of `python`; pip and
    setuptools, which come with the venv module, left out."""
    done = host.run(f"{uv} pip freeze --python {python}")
    assert done.rc == 0, done.stderr
    pins = {f"{canonicalize_name(n)}=={v}" for n, v in (l.split("==") for l in done.stdout.split())}
    return {p for p in pins if not p.startswith(("pip==", "setuptools=="))}


@pytest.mark.parametrize("name", AIRFLOW_HOSTS)
def test_venv_holds_exactly_the_lock_installed_by_uv_and_compiled(airflow_deploy, name):
    host, settings = ssh(name), data(name)
    venv = versioned_venv(settings.airflow_venv, settings.airflow_version)
    python, uv = f"{venv}/bin/python", uv_path(settings.uv_version)
    assert frozen(host, uv, python) == pins_of_lock(settings.airflow_version, host)
    assert host.run(f"{uv} pip check --python {python}").rc == 0
    installer = host.run(f"cat {venv}/lib/python3*/site-packages/apache_airflow-*.dist-info/INSTALLER")
    assert installer.stdout.strip() == "uv"
    # Compiled ahead: the airflow user cannot write bytecode into the root-owned venv.
    compiled = host.run(f"ls {venv}/lib/python3*/site-packages/airflow/__pycache__/")
    assert "__init__.cpython-" in compiled.stdout, compiled.stderr
    env = host.file(UV_ENV)
    assert (env.user, env.mode) == ("root", 0o600)
    # Setting wheelhouse (on in the lab): uv is told no proxy, the wheels are on the host.
    assert settings.wheelhouse and "PROXY" not in env.content_string
    wheels = host.run(f"ls {WHEELHOUSE}").stdout.split()
    assert len(wheels) >= len(pins_of_lock(settings.airflow_version, host))
    # uv came from the control machine: no uv venv, no pip involved.
    assert host.file(uv).mode == 0o755 and not host.file("/opt/airflow-cluster/uv").exists


def test_a_host_with_no_route_to_the_index_installs_from_the_wheelhouse(airflow_deploy):
    """The proof of setting wheelhouse: a worker whose way to the package index (the lab's
    proxy, its only one) is cut installs the lock into a new venv with the deploy's own
    command and an empty uv cache, from the wheels the deploy uploaded."""
    name = CLUSTER.groups["worker"][-1]
    host, settings = ssh(name), data(name)
    proxy = urlsplit(settings.http_proxy)
    version = settings.airflow_version
    scratch, cache = "/root/wheelhouse-proof", "/root/wheelhouse-proof-cache"
    # A policy-routing rule drops exactly TCP (protocol 6) to the proxy's port: the control
    # machine's SSH comes from the same address.
    rule = f"to {proxy.hostname} ipproto 6 dport {proxy.port} blackhole"
    cut = f"ip rule add {rule}"
    assert host.run(cut).rc == 0
    try:
        reach = host.run(f"timeout 5 bash -c '</dev/tcp/{proxy.hostname}/{proxy.port}'")
        assert reach.rc != 0, "the proxy is still reachable: the route is not cut"
        python, uv = f"{scratch}/bin/python", uv_path(settings.uv_version)
        install = uv_install_command(uv, python,
                                     f"{settings.airflow_home}/requirements-{version}.lock",
                                     WHEELHOUSE)
        done = host.run(f"rm -rf {scratch} {cache} && {venv_command(uv, scratch)} && "
                        f". {UV_ENV} && UV_CACHE_DIR={cache} {install}")
        assert done.rc == 0, done.stderr
        assert frozen(host, uv, python) == pins_of_lock(version, host)
    finally:
        host.run(f"ip rule del {rule}")
        host.run(f"rm -rf {scratch} {cache}")


@pytest.mark.parametrize("name", AIRFLOW_HOSTS)
def test_units_pass_systemd_analyze_verify_on_the_host(airflow_deploy, name):
    done = ssh(name).run("systemd-analyze verify " + " ".join(expected_units(name)))
    # sshd's PAM may greet a login with a pam_nologin banner while a unit is still starting:
    # that is the SSH session talking, not systemd-analyze.
    said = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if line.strip() and "pam_nologin" not in line
    ]
    assert done.rc == 0 and said == [], done.stdout + done.stderr


def test_workers_stop_warmly_and_run_sandboxed(airflow_deploy):
    name = CLUSTER.groups["worker"][0]
    host = ssh(name)
    shown = host.run(
        "systemctl show airflow-worker@1.service -p KillMode -p User -p NoNewPrivileges "
        "-p ProtectSystem -p PrivateTmp"
    ).stdout
    props = dict(line.split("=", 1) for line in shown.splitlines() if "=" in line)
    assert props == {
        "KillMode": "mixed", "User": data(name).airflow_user, "NoNewPrivileges": "yes",
        "ProtectSystem": "strict", "PrivateTmp": "yes",
    }
    timeout = host.run(
        'systemd-analyze timespan "$(systemctl show -p TimeoutStopUSec --value '
        'airflow-worker@1.service)"'
    ).stdout
    microseconds = [line.split(":")[1] for line in timeout.splitlines() if "μs:" in line]
    assert [int(m) for m in microseconds] == [data(name).worker_stop_timeout * 1_000_000]


# --- components alive --------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLUSTER.groups["scheduler"])
@pytest.mark.parametrize("job", ["SchedulerJob", "DagProcessorJob", "TriggererJob"])
def test_scheduler_components_alive(airflow_deploy, name, job):
    host = ssh(name)
    wait_for(
        f"{job} on {name} alive",
        lambda: host.run(f"airflow jobs check --job-type {job} --hostname {name}").rc == 0,
        timeout=300,
        interval=5,
    )


@pytest.mark.parametrize("name", CLUSTER.groups["scheduler"])
def test_scheduler_health_server(airflow_deploy, name):
    address, port = CLUSTER.node(name).address, data(name).scheduler_health_port
    wait_for(
        f"scheduler health on {name}",
        lambda: ssh(name).run(f"curl -fsS http://{address}:{port}/health").rc == 0,
        timeout=300,
    )


def test_both_api_servers_up_in_haproxy(airflow_deploy):
    def backends_up(address):
        servers = LAB.backend_status(address)
        return servers == {name: "UP" for name in CLUSTER.groups["web"]}

    for address in CLUSTER.addresses("lb"):
        wait_for(f"every API server UP in HAProxy on {address}", lambda: backends_up(address),
                 timeout=300)


# --- the REST API through the load balancer ---------------------------------------------------


@pytest.fixture(scope="module")
def api(airflow_deploy):
    # AIRFLOW_TEST_API_URL: another URL (e.g. one API server) while no load balancer is up.
    return LAB.admin_api()


def test_version_through_the_load_balancer(api):
    status, answer = api.call("GET", "/api/v2/version")
    assert status == 200, answer
    assert answer["version"] == data(AIRFLOW_HOSTS[0]).airflow_version


def test_wrong_admin_password_is_refused(api):
    admin = data(AIRFLOW_HOSTS[0]).airflow_admin_user
    status, _ = api.call(
        "POST", "/auth/token", {"username": admin, "password": "not-the-password"}, auth=False
    )
    assert status in (400, 401, 403)


def trigger(api, dag_id):
    """Unpause `dag_id` once it is parsed and trigger a run: the run's id."""
    api.unpause(dag_id)
    return api.trigger(dag_id)


def run_dag(api, dag_id, timeout):
    return api.finished(dag_id, trigger(api, dag_id), timeout)


@pytest.fixture(scope="module")
def fanout_run(api):
    return run_dag(api, FANOUT, timeout=900)


def test_fanout_dag_succeeds_on_every_worker(api, fanout_run):
    tis = api.task_instances(FANOUT, fanout_run["dag_run_id"])
    work = [ti for ti in tis if ti["task_id"].startswith("work_")]
    assert len(work) >= 20
    assert {ti["state"] for ti in tis} == {"success"}, [(t["task_id"], t["state"]) for t in tis]
    assert fanout_run["state"] == "success"
    hosts = {ti["hostname"] for ti in work}
    assert hosts == set(CLUSTER.groups["worker"]), hosts


def test_first_dag_run_of_the_fresh_cluster_retried_nothing(api, fanout_run):
    """The session's first DAG run (on the just-deployed cluster): every task on its first try."""
    tis = api.task_instances(FANOUT, fanout_run["dag_run_id"])
    assert [(t["task_id"], t["try_number"]) for t in tis if t["try_number"] != 1] == []


def test_task_log_readable_through_the_api(api, fanout_run):
    run_id = fanout_run["dag_run_id"]
    ti = next(t for t in api.task_instances(FANOUT, run_id) if t["task_id"] == "work_00")
    path = (f"/api/v2/dags/{FANOUT}/dagRuns/{run_id}/taskInstances/work_00/logs/"
            f"{ti['try_number']}?full_content=true")
    status, log = api.call("GET", path)
    assert status == 200, log
    text = json.dumps(log)
    assert f"task 0 running on {ti['hostname']}" in text, text[-2000:]


def test_stopping_a_worker_lets_its_running_tasks_finish(api, fanout_run):
    """systemctl stop = Celery's warm shutdown: the tasks running on the stopped worker end in
    success, the other worker takes the rest, and the run succeeds."""
    worker = CLUSTER.groups["worker"][0]
    run_id = trigger(api, FANOUT)

    def running_on_worker():
        return [ti["task_id"] for ti in api.task_instances(FANOUT, run_id)
                if ti["state"] == "running" and ti["hostname"] == worker]

    interrupted = wait_for(f"a task running on {worker}", running_on_worker, timeout=300,
                           interval=0.2)
    stopped = ssh(worker).run("systemctl stop airflow-worker@1.service")
    try:
        assert stopped.rc == 0, stopped.stderr
        final = api.finished(FANOUT, run_id, timeout=900)
    finally:
        started = ssh(worker).run("systemctl start airflow-worker@1.service")
        assert started.rc == 0, started.stderr
    tis = {ti["task_id"]: ti for ti in api.task_instances(FANOUT, run_id)}
    states = {task: ti["state"] for task, ti in tis.items()}
    assert {states[task] for task in interrupted} == {"success"}, states
    # Finished by the stopped worker on their first try: a killed task would have been
    # retried (the DAG allows retries), which is not a warm shutdown.
    assert {(tis[t]["try_number"], tis[t]["hostname"]) for t in interrupted} == {(1, worker)}, tis
    assert final["state"] == "success", states


def test_health_check_dag_succeeds(api):
    run = run_dag(api, HEALTH, timeout=600)
    tis = api.task_instances(HEALTH, run["dag_run_id"])
    assert {ti["task_id"]: ti["state"] for ti in tis} == {
        "broker_primary": "success", "database": "success", "workers_answer": "success",
        "worker_holds_no_secrets": "success",
    }
    # What the least-privilege task tried on its worker and was refused, in its log, which the
    # API reads from that worker's log server.
    ti = next(t for t in tis if t["task_id"] == "worker_holds_no_secrets")
    path = (f"/api/v2/dags/{HEALTH}/dagRuns/{run['dag_run_id']}/taskInstances/"
            f"worker_holds_no_secrets/logs/{ti['try_number']}?full_content=true")
    status, log = api.call("GET", path)
    assert status == 200, log
    text = json.dumps(log)
    home = data(CLUSTER.groups["worker"][0]).airflow_home
    for refused in ("[core] fernet_key", "[api] secret_key", "[api_auth] jwt_secret",
                    "the metadata database's URL", f"reading {home}/logserver.cfg",
                    "Airflow's connection table"):
        assert f"refused: {refused}" in text, (refused, text[-3000:])


def test_admin_password_is_put_back_by_the_next_deploy(api):
    """The admin password follows the secrets file: changed behind the deploy's back, the next
    run sets it again (and changes nothing else)."""
    name = CLUSTER.groups["web"][0]
    admin, email = data(name).airflow_admin_user, data(name).airflow_admin_email
    changed = ssh(name).run(
        f"printf %s '{make_password_hash('changed-by-hand')}' | "
        f"airflow-cluster-db set-admin {admin} {email} -"
    )
    assert changed.rc == 0, changed.stderr
    assert api.call("POST", "/auth/token", {"username": admin, "password": "changed-by-hand"},
                    auth=False)[0] in (200, 201)
    run = run_pyinfra("--limit", "web")
    assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
    assert [name for name, _ in run.changed_operations()] == [
        f"Airflow | admin user {admin!r}: created once, password from the secrets file"
    ]
    api.login(LAB.secrets["admin_password"])
    assert api.call("POST", "/auth/token", {"username": admin, "password": "changed-by-hand"},
                    auth=False)[0] in (400, 401, 403)


def test_database_status_skips_airflow_only_while_code_and_database_are_unchanged():
    """The helper answers "current" from its stamp, without importing Airflow, while the
    installed migration code and the database's recorded versions are the ones Airflow last
    called current; a stamp that does not match the database makes it ask Airflow again."""
    name = CLUSTER.groups["web"][0]
    host, settings = ssh(name), data(name)
    # Airflow made unimportable: only the stamp can say "current" then.
    no_airflow = "/run/airflow-cluster-test-no-airflow"
    assert host.run(f"mkdir -p {no_airflow}/airflow && echo 'raise ImportError' "
                    f"> {no_airflow}/airflow/__init__.py && chmod -R a+rX {no_airflow}").rc == 0
    stamp = f"{settings.airflow_state_dir}/db-current.json"

    def status(*, airflow=True):
        prefix = "" if airflow else f"PYTHONPATH={no_airflow} "
        done = host.run(f"{prefix}{settings.airflow_venv}/bin/python {HELPER} status "
                        f"{settings.airflow_admin_user}")
        assert done.rc == 0, done.stderr
        line = [l for l in done.stdout.splitlines() if l.startswith(STATUS_MARKER)][-1]
        return json.loads(line[len(STATUS_MARKER):])

    try:
        assert status()["db"] == "current"
        assert host.file(stamp).mode == 0o600
        fast = status(airflow=False)
        assert fast["db"] == "current" and fast["admin_password_hash"], fast
        assert fast["celery_results"] is True, fast  # the workers' role has its tables
        # The database recorded other versions than the stamp holds: Airflow must answer.
        wrong = host.run(
            f"python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); "
            f"s[\"versions\"][\"alembic_version\"]=[\"0\"]; json.dump(s, open(sys.argv[1], \"w\"))' "
            f"{stamp}"
        )
        assert wrong.rc == 0, wrong.stderr
        assert status(airflow=False) == {
            "db": "unknown", "conn_sha256": None, "admin_password_hash": None,
            "celery_results": None, "error": "ImportError",
        }
        # Airflow's "current" puts the right stamp back.
        assert status()["db"] == "current"
        assert status(airflow=False)["db"] == "current"
    finally:
        host.run(f"rm -rf {no_airflow}")


# --- converged re-runs ------------------------------------------------------------------------


def test_second_airflow_deploy_changes_nothing(airflow_deploy):
    args = [a for g in AIRFLOW_GROUPS for a in ("--limit", g)] if LAB_EXTERNAL else ()
    rerun = run_pyinfra(*args)
    assert rerun.returncode == 0 and rerun.totals.get("error", 0) == 0, rerun.describe()
    assert rerun.changed_operations() == [], rerun.changed_operations()


def test_limit_worker_renders_the_workers_identically(airflow_deploy):
    fingerprint = ("sha256sum /opt/airflow/airflow.cfg /opt/airflow/environment "
                   "/opt/airflow/dags/* /opt/airflow/plugins/* /etc/systemd/system/airflow-* "
                   "/etc/systemd/system/airflow-*.d/* /usr/local/bin/airflow "
                   "/etc/airflow-cluster/* /usr/local/sbin/airflow-cluster-autoscaler "
                   "/usr/local/lib/airflow-cluster/autoscaler.zip 2>&1")
    before = {name: ssh(name).run(fingerprint).stdout for name in CLUSTER.groups["worker"]}
    run = run_pyinfra("--limit", "worker")
    assert run.returncode == 0 and run.totals.get("error", 0) == 0, run.describe()
    assert run.changed_operations() == [], run.changed_operations()
    after = {name: ssh(name).run(fingerprint).stdout for name in CLUSTER.groups["worker"]}
    assert after == before
