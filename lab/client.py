"""One client of a deployed cluster (the lab by default) for the end-to-end tests (tests/lab)
and the benchmarks (bench/): what an operator reaches from the control machine.

    from lab.client import Lab, run_pyinfra, wait_for
    lab = Lab()                                  # inventory.py: inventory, model, secrets
    lab.run("redis1", "systemctl is-active redis-server").stdout   # SSH: CompletedProcess
    lab.host("redis1").service("redis-server").is_running          # the same SSH, testinfra
    lab.server(address).ping(); lab.wait_healthy()                 # Redis and Sentinel
    api = lab.api(); api.login(lab.secrets["admin_password"])      # Airflow REST API, HTTPS
    lab.vip_holders(); lab.backend_status(address)                 # the load balancer
    run = run_pyinfra("--limit", "redis")        # `pyinfra -y --json`, results parsed
    failover_drill(lab)                          # SIGKILL the Redis primary under a writer

Every connection uses the inventory's addresses, SSH key and known hosts, the secrets file's
passwords and the cluster's CA, and never a proxy. Loading an inventory imports pyinfra's
CLI, which monkey-patches the standard library with gevent: this module imports it first, so
the sockets, threads and subprocesses made here are all gevent's.
"""

# First: loading an inventory imports pyinfra's CLI, which monkey-patches with gevent.
from cluster.model import build_cluster, load_inventory  # isort: skip
from cluster.run import connections
from cluster.secret_store import load as load_secrets

import base64
import csv
import functools
import http.client
import io
import json
import os
import shlex
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel

PROJECT = Path(__file__).resolve().parent.parent
INVENTORY = PROJECT / "inventory.py"
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
# A deploy installs packages through a proxy on a shared machine: be generous.
DEPLOY_TIMEOUT = 3600

# The broker's failover goal: seconds from the primary's death to the first acknowledged write.
GOAL_SECONDS = 5.0
# Shared, noisy machine: generous limits for everything that is not the measured figure.
FAILOVER_TIMEOUT = 60
REJOIN_TIMEOUT = 180
CLIENT_TIMEOUT = 0.5
RETRY_INTERVAL = 0.05
# The drill's client retries itself (asking the sentinels again each time): redis-py's own
# default retries (3, with exponential backoff, since redis-py 6) would keep it on the dead
# primary for seconds and measure the client, not the failover.
NO_RETRY = {"retry": Retry(NoBackoff(), 0)}


def wait_for(what, predicate, timeout, interval=2.0, *, fail=True):
    """predicate()'s first truthy value within `timeout` seconds (an exception counts as a
    falsy answer and is retried). At the deadline: AssertionError naming `what`, or with
    fail=False the last falsy value (None after an exception)."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() > deadline:
            if not fail:
                return None if isinstance(last, str) else last
            raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")
        time.sleep(interval)


# --- the lab CLI and pyinfra ----------------------------------------------------------------


def _in_project(argv, timeout) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, timeout=timeout)


def run_lab(*args, timeout=900) -> subprocess.CompletedProcess:
    """`python -m lab ARGS` from the project dir (timeout=None: no limit)."""
    return _in_project([sys.executable, "-m", "lab", *args], timeout)


class PyinfraRun:
    """One `pyinfra --json` run: its exit code, its results payload and its log."""

    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stderr = completed.stderr
        self.stdout = completed.stdout
        try:
            self.payload = json.loads(completed.stdout)
        except json.JSONDecodeError:
            self.payload = None

    @property
    def results(self):
        return (self.payload or {}).get("results") or {}

    @property
    def totals(self):
        return self.results.get("totals", {})

    def changed_operations(self):
        """Names of the operations that changed something, with their hosts."""
        return [
            (op["name"], op["success"])
            for op in self.results.get("operations", [])
            if op["success"]
        ]

    def describe(self):
        return f"exit {self.returncode}\n--- stderr (tail) ---\n{self.stderr[-4000:]}"


def run_pyinfra(*args, inventory=INVENTORY, target=("deploy.py",), timeout=DEPLOY_TIMEOUT):
    """`pyinfra -y --json INVENTORY deploy.py ARGS` from the project dir (another command
    with e.g. target=("fact", "server.Hostname"))."""
    return PyinfraRun(_in_project([PYINFRA, "-y", "--json", str(inventory), *target, *args], timeout))


# --- the cluster ------------------------------------------------------------------------------


class Lab:
    """The deployed cluster of an inventory as an operator sees it: SSH to the hosts, Redis
    and Sentinel, the load balancer and the Airflow REST API over the network. The inventory
    and the model are loaded once; the secrets when first used (the first deploy makes them)."""

    def __init__(self, inventory=INVENTORY):
        self.inventory_path = str(inventory)
        self.inventory = load_inventory(self.inventory_path, project_dir=str(PROJECT))
        self.cluster = build_cluster(self.inventory, PROJECT)
        # Redis: the server address -> host name of every redis host.
        self.names = {self.cluster.node(n).address: n for n in self.cluster.groups["redis"]}
        self.master = self.cluster.broker.master_name
        self.redis_port = self.cluster.broker.port
        self._hosts = {}
        self._lock = threading.Lock()

    def data(self, name):
        """The settings (pyinfra host data) of inventory host `name`."""
        return self.inventory.get_host(name).data

    @functools.cached_property
    def secrets(self) -> dict[str, str]:
        return load_secrets(self.cluster.settings["secrets_file"], project_dir=PROJECT)

    @property
    def connections(self):
        """cluster.run.Connections: the broker URL, its transport options, the DB URLs."""
        return connections(self.cluster, self.secrets)

    @property
    def password(self) -> str:
        """Redis's and Sentinel's password."""
        return self.secrets["redis_password"]

    # --- SSH --------------------------------------------------------------------------------

    def ssh_argv(self, name, *options) -> list[str]:
        """The ssh command line for host `name` with the inventory's user, key and known
        hosts (strict checking), as pyinfra connects; `options` go before the destination."""
        return ["ssh", *self._ssh_options(name), *options, self._destination(name)]

    def run(self, name, command, timeout=120) -> subprocess.CompletedProcess:
        """`command` (a shell string) on host `name` over SSH: its exit code and text output."""
        return subprocess.run(
            [*self.ssh_argv(name), command],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )

    def host(self, name):
        """A testinfra host for `name`, over the same SSH (cached)."""
        import testinfra

        with self._lock:
            if name not in self._hosts:
                self._hosts[name] = testinfra.get_host(
                    f"ssh://{self._destination(name)}",
                    ssh_extra_args=shlex.join(self._ssh_options(name)),
                )
            return self._hosts[name]

    def _ssh_options(self, name) -> list[str]:
        data = self.data(name)
        return [
            "-i", data.get("ssh_key"),
            "-o", f"UserKnownHostsFile={data.get('ssh_known_hosts_file')}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
        ]

    def _destination(self, name) -> str:
        data = self.data(name)
        return f"{data.get('ssh_user') or 'root'}@{data.get('ssh_hostname')}"

    # --- Redis and Sentinel -----------------------------------------------------------------

    def sentinel(self, timeout=CLIENT_TIMEOUT) -> Sentinel:
        return Sentinel(
            list(self.cluster.broker.sentinels),
            sentinel_kwargs={
                "password": self.password,
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                **NO_RETRY,
            },
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            **NO_RETRY,
        )

    def server(self, address, timeout=5.0) -> redis.Redis:
        """The redis-server at `address`."""
        return self._redis(address, self.redis_port, timeout)

    def sentinel_client(self, address, timeout=5.0) -> redis.Redis:
        """The sentinel at `address`."""
        return self._redis(address, self.cluster.settings["sentinel_port"], timeout)

    def _redis(self, address, port, timeout) -> redis.Redis:
        return redis.Redis(
            host=address,
            port=port,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            **NO_RETRY,
        )

    def primary(self) -> str:
        return self.sentinel(timeout=5.0).discover_master(self.master)[0]

    def health(self) -> str | None:
        """None when the broker is whole: every sentinel names the same primary, which has
        every other server as an online replica with an up link, and every sentinel sees
        those replicas and the other sentinels. Else what is missing."""
        addresses = list(self.names)
        views = {}
        for address in addresses:
            try:
                views[address] = self.sentinel_client(address).sentinel_master(self.master)
            except redis.RedisError as e:
                return f"sentinel {address}: {e}"
        primaries = {(v["ip"], int(v["port"])) for v in views.values()}
        if len(primaries) != 1:
            return f"sentinels disagree on the primary: {primaries}"
        (primary, _), = primaries
        for address, view in views.items():
            if not view["is_master"] or view["is_sdown"] or view["is_odown"]:
                return f"sentinel {address} flags the primary {view['flags']}"
            if int(view["num-slaves"]) != len(addresses) - 1:
                return f"sentinel {address} knows {view['num-slaves']} replicas"
            if int(view["num-other-sentinels"]) != len(addresses) - 1:
                return f"sentinel {address} knows {view['num-other-sentinels']} other sentinels"
            for replica in self.sentinel_client(address).sentinel_slaves(self.master):
                healthy = replica["is_slave"] and not replica["is_sdown"]
                if not healthy or replica.get("master-link-status") != "ok":
                    return f"sentinel {address}: replica {replica['ip']} {replica['flags']}"
        try:
            info = self.server(primary).info("replication")
        except redis.RedisError as e:
            return f"primary {primary}: {e}"
        if info.get("role") != "master":
            return f"{primary} reports role {info.get('role')}"
        replicas = [info[k] for k in info if k.startswith("slave") and k[5:].isdigit()]
        online = {r["ip"] for r in replicas if r.get("state") == "online"}
        if online != set(addresses) - {primary}:
            return f"primary {primary} has online replicas {sorted(online)}"
        for address in set(addresses) - {primary}:
            try:
                r = self.server(address).info("replication")
            except redis.RedisError as e:
                return f"replica {address}: {e}"
            if r.get("master_host") != primary or r.get("master_link_status") != "up":
                return f"replica {address}: master {r.get('master_host')} {r.get('master_link_status')}"
        return None

    def wait_healthy(self, timeout=REJOIN_TIMEOUT) -> str:
        """The primary of a whole broker, waiting for it; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        problem = "not checked"
        while time.monotonic() < deadline:
            problem = self.health()
            if problem is None:
                return self.primary()
            time.sleep(1)
        raise AssertionError(f"cluster not whole after {timeout} s: {problem}")

    def kill_redis_server(self, address) -> float:
        """SIGKILL the redis-server of the host at `address`; the host's clock at the kill
        (the lab's containers share this machine's clock)."""
        name = self.names[address]
        done = self.run(
            name,
            "pid=$(systemctl show -p MainPID --value redis-server); "
            'test "$pid" -gt 0 && date +%s.%N && kill -9 "$pid"',
        )
        if done.returncode != 0:
            raise RuntimeError(f"could not kill redis-server on {name}: {done.stdout}{done.stderr}")
        return float(done.stdout.split()[0])

    def start_redis_server(self, address):
        name = self.names[address]
        done = self.run(name, "systemctl start redis-server")
        if done.returncode != 0:
            raise RuntimeError(f"could not start redis-server on {name}: {done.stdout}{done.stderr}")

    # --- the load balancer ------------------------------------------------------------------

    def lb_setting(self, key):
        """A load balancer setting (the lb hosts share them)."""
        return self.data(self.cluster.groups["lb"][0]).get(key)

    def vip_holders(self, names=None) -> list[str]:
        """The hosts (of `names`, default the lb hosts) that have the VIP on an interface."""
        vip = self.cluster.lb_vip
        return [name for name in names or self.cluster.groups["lb"]
                if vip in self.run(name, f"ip -o addr show to {vip}/32").stdout]

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the load balancer's certificate: the cluster's CA, or the system's when
        the certificate is publicly trusted."""
        ca = self.cluster.tls.ca_path
        return ssl.create_default_context(cafile=str(ca) if ca else None)

    def http_get(self, address, port, path="/", headers=None, timeout=10):
        """(status, headers, body) of a plain HTTP GET."""
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def https_get(self, address, path="/", timeout=10):
        """(status, peer certificate DER, body) over HTTPS to the load balancer's port,
        verifying with the cluster's CA."""
        conn = http.client.HTTPSConnection(
            address, self.lb_setting("lb_https_port"), timeout=timeout, context=self.ssl_context()
        )
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            der = conn.sock.getpeercert(binary_form=True)
            return response.status, der, response.read()
        finally:
            conn.close()

    def stats_auth(self, password=None) -> dict[str, str]:
        """The Authorization header of HAProxy's stats page (default: the right password)."""
        user = self.lb_setting("lb_stats_user")
        password = self.secrets["stats_password"] if password is None else password
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}

    def stats_csv(self, address) -> list[dict]:
        """HAProxy's stats on the lb host at `address` as rows (dicts)."""
        status, _, body = self.http_get(
            address, self.lb_setting("lb_stats_port"), "/;csv", headers=self.stats_auth()
        )
        if status != 200:
            raise AssertionError(f"stats page of {address}: {status} {body[:300]!r}")
        return list(csv.DictReader(io.StringIO(body.decode().lstrip("# "))))

    def backend_status(self, address) -> dict[str, str]:
        """API server name -> its status (UP, DOWN, MAINT ...) in HAProxy at `address`."""
        return {row["svname"]: row["status"] for row in self.stats_csv(address)
                if row["pxname"] == "api_servers" and row["svname"] not in ("FRONTEND", "BACKEND")}

    # --- Airflow ----------------------------------------------------------------------------

    def api(self, base_url=None) -> "Api":
        """The Airflow REST API at the public URL (env AIRFLOW_TEST_API_URL: another URL,
        e.g. one API server while no load balancer is up), not logged in yet."""
        base_url = base_url or os.environ.get("AIRFLOW_TEST_API_URL", self.cluster.public_url)
        admin = self.data(self.cluster.groups["web"][0]).get("airflow_admin_user")
        return Api(base_url, self.ssl_context(), admin)


class ApiError(Exception):
    """An Airflow REST API call that did not answer as expected."""


class Api:
    """The Airflow REST API at `base_url` over HTTPS (never through a proxy), as `admin`."""

    def __init__(self, base_url, context, admin):
        self.base_url = base_url.rstrip("/")
        self.admin = admin
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        self.token = None

    def call(self, method, path, body=None, auth=True, timeout=30):
        """(status, JSON answer, or the text of an error answer)."""
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base_url + path, method=method, headers=headers,
            data=None if body is None else json.dumps(body).encode(),
        )
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def json(self, method, path, body=None, ok=(200,)):
        """The answer of a call that must answer with a status in `ok`; else ApiError."""
        status, answer = self.call(method, path, body)
        if status not in ok:
            raise ApiError(f"{method} {path}: {status} {answer}")
        return answer

    def login(self, password, user=None):
        """Log in as `user` (default: the admin user) with `password`."""
        status, answer = self.call(
            "POST", "/auth/token", {"username": user or self.admin, "password": password},
            auth=False,
        )
        if status not in (200, 201):
            raise ApiError(f"login as {user or self.admin}: {status} {answer}")
        self.token = answer["access_token"]

    def unpause(self, dag_id, timeout=300):
        """Unpause `dag_id` once it is parsed."""
        wait_for(f"{dag_id} parsed", lambda: self.call("GET", f"/api/v2/dags/{dag_id}")[0] == 200,
                 timeout=timeout)
        self.json("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})

    def trigger(self, dag_id) -> str:
        """A new run of `dag_id`: its id."""
        return self.json("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})[
            "dag_run_id"
        ]

    def dag_run(self, dag_id, run_id) -> dict:
        return self.json("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")

    def task_instances(self, dag_id, run_id) -> list[dict]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100"
        return self.json("GET", path)["task_instances"]

    def finished(self, dag_id, run_id, timeout, interval=2.0) -> dict:
        """The run's JSON once it has ended (success or failed)."""

        def ended():
            current = self.dag_run(dag_id, run_id)
            return current if current["state"] in ("success", "failed") else None

        return wait_for(f"{dag_id} run {run_id} finished", ended, timeout=timeout,
                        interval=interval)


# --- the Redis failover drill -------------------------------------------------------------------


@dataclass
class Write:
    seq: int
    at: float  # time.time() of the acknowledgement (RPUSH's reply)
    server: str
    replicas: int  # WAIT's answer just after: replicas that had the write (0: none or no answer)


class Writer(threading.Thread):
    """Writes `seq` numbers to one list through whatever server the sentinels name."""

    def __init__(self, lab: Lab, key: str):
        super().__init__(daemon=True)
        self.lab, self.key = lab, key
        self.acked: list[Write] = []
        self.errors = 0
        self._halt = threading.Event()

    def run(self):
        sentinel = self.lab.sentinel()
        client, server, seq = None, None, 0
        while not self._halt.is_set():
            try:
                if client is None:
                    server = sentinel.discover_master(self.lab.master)[0]
                    client = self.lab.server(server, timeout=CLIENT_TIMEOUT)
                seq += 1
                client.rpush(self.key, seq)
                write = Write(seq, time.time(), server, 0)
                self.acked.append(write)
                # Then how many replicas have it (a new primary may have none for a while).
                write.replicas = int(client.execute_command("WAIT", len(self.lab.names) - 1, 200))
                time.sleep(0.005)
            except (redis.RedisError, MasterNotFoundError, OSError):
                self.errors += 1
                if client is not None:
                    client.close()
                client = None
                time.sleep(RETRY_INTERVAL)

    def stop(self):
        self._halt.set()
        self.join(10)

    def first_write_on(self, not_server, after):
        for write in list(self.acked):
            if write.at > after and write.server != not_server:
                return write
        return None


@dataclass
class DrillResult:
    old_primary: str
    new_primary: str
    # Seconds from the SIGKILL to the first write acknowledged by the new primary.
    unavailable: float
    # Seconds between the last acknowledged write before the kill and that first write.
    gap: float
    acked_before: int
    waited_before: int
    # Writes acknowledged before the kill that the new primary does not have.
    lost_acked: list
    lost_waited: list
    rejoined_as_replica: bool

    def line(self):
        return (
            f"{self.old_primary} -> {self.new_primary}: {self.unavailable:.2f} s from kill to "
            f"first write (gap {self.gap:.2f} s); acknowledged before the kill: "
            f"{self.acked_before} ({self.waited_before} WAIT-replicated), lost: "
            f"{len(self.lost_acked)} ({len(self.lost_waited)} WAIT-replicated)"
        )


def failover_drill(lab: Lab, warmup=1.0, after=1.0) -> DrillResult:
    """A client writes continuously through the primary the sentinels name (RPUSH, then WAIT
    for the replicas); the primary's redis-server gets SIGKILL; the client keeps asking the
    sentinels and retrying until a write succeeds on the promoted replica. Then: which writes
    acknowledged before the kill the new primary has, the old primary started again, and
    whether it rejoined as a replica of a whole broker."""
    old = lab.wait_healthy()
    key = f"bench:failover:{uuid.uuid4().hex}"
    writer = Writer(lab, key)
    writer.start()
    try:
        time.sleep(warmup)
        killed_at = lab.kill_redis_server(old)
        deadline = time.monotonic() + FAILOVER_TIMEOUT
        first = None
        while first is None and time.monotonic() < deadline:
            time.sleep(0.05)
            first = writer.first_write_on(old, killed_at)
        if first is None:
            raise AssertionError(f"no write succeeded within {FAILOVER_TIMEOUT} s of the kill")
        time.sleep(after)
    finally:
        writer.stop()
    before = [w for w in writer.acked if w.at < killed_at]
    stored = {int(x) for x in lab.server(first.server).lrange(key, 0, -1)}
    result = DrillResult(
        old_primary=old,
        new_primary=first.server,
        unavailable=first.at - killed_at,
        gap=first.at - max((w.at for w in before), default=killed_at),
        acked_before=len(before),
        waited_before=sum(1 for w in before if w.replicas >= 1),
        lost_acked=[w.seq for w in before if w.seq not in stored],
        lost_waited=[w.seq for w in before if w.replicas >= 1 and w.seq not in stored],
        rejoined_as_replica=False,
    )
    lab.start_redis_server(old)
    lab.wait_healthy()
    replication = lab.server(old).info("replication")
    result.rejoined_as_replica = (
        replication.get("role") == "slave" and replication.get("master_host") == lab.primary()
    )
    lab.server(lab.primary()).delete(key)
    return result
