"""Failover drill of the Redis broker: seconds from killing the primary to the first write
acknowledged by the new one.

    python bench/failover.py [--drills 5] [--inventory inventory.py]

Each drill, on a deployed cluster (the lab by default): a client writes continuously through
the primary the sentinels name (RPUSH, then WAIT for the replicas); the primary's
redis-server gets SIGKILL; the client keeps asking the sentinels and retrying until a write
succeeds on the promoted replica. Then it checks that every write acknowledged before the
kill is readable, starts the old primary again and waits until it has rejoined as a replica
and the cluster is whole. Prints each drill and the median (goal: <= 5 s).

The drill is also what tests/lab/test_redis_failover.py runs (import bench.failover).
"""

import argparse
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
if str(PROJECT) not in sys.path:
    sys.path.insert(0, str(PROJECT))

# First: loading an inventory imports pyinfra's CLI, which monkey-patches with gevent.
from cluster import datatier  # noqa: E402
from cluster.model import build_cluster, load_inventory  # noqa: E402
from cluster.secret_store import load as load_secrets  # noqa: E402

import paramiko  # noqa: E402
import redis  # noqa: E402
from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402
from redis.sentinel import MasterNotFoundError, Sentinel  # noqa: E402

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


class Lab:
    """The deployed cluster as an operator sees it: SSH to the hosts, Redis and Sentinel over
    the network, with the inventory's addresses and the secrets file's password."""

    def __init__(self, inventory_path="inventory.py"):
        self.inventory = load_inventory(str(inventory_path), project_dir=str(PROJECT))
        self.cluster = build_cluster(self.inventory)
        self.secrets = load_secrets(self.cluster.settings["secrets_file"], project_dir=PROJECT)
        self.password = self.secrets["redis_password"]
        self.master = datatier.master_name(self.cluster)
        self.redis_port = self.cluster.settings["redis_port"]
        self.names = {self.cluster.node(n).address: n for n in self.cluster.groups["redis"]}
        self._ssh = {}
        self._lock = threading.Lock()

    # --- SSH ------------------------------------------------------------------------------

    def ssh(self, name) -> paramiko.SSHClient:
        with self._lock:
            client = self._ssh.get(name)
            if client is None or not client.get_transport() or not client.get_transport().is_active():
                data = self.inventory.get_host(name).data
                client = paramiko.SSHClient()
                client.load_host_keys(data.get("ssh_known_hosts_file"))
                client.set_missing_host_key_policy(paramiko.RejectPolicy())
                client.connect(
                    data.get("ssh_hostname"),
                    username=data.get("ssh_user", "root"),
                    key_filename=data.get("ssh_key"),
                    allow_agent=False,
                    look_for_keys=False,
                    timeout=30,
                )
                self._ssh[name] = client
            return client

    def run(self, name, command, timeout=120):
        _, stdout, stderr = self.ssh(name).exec_command(command, timeout=timeout)
        out, err = stdout.read().decode(), stderr.read().decode()
        return stdout.channel.recv_exit_status(), out, err

    def kill_redis_server(self, address) -> float:
        """SIGKILL the redis-server of the host at `address`; the host's clock at the kill
        (the containers share this machine's clock)."""
        name = self.names[address]
        rc, out, err = self.run(
            name,
            "pid=$(systemctl show -p MainPID --value redis-server); "
            'test "$pid" -gt 0 && date +%s.%N && kill -9 "$pid"',
        )
        if rc != 0:
            raise RuntimeError(f"could not kill redis-server on {name}: {out}{err}")
        return float(out.split()[0])

    def start_redis_server(self, address):
        name = self.names[address]
        rc, out, err = self.run(name, "systemctl start redis-server")
        if rc != 0:
            raise RuntimeError(f"could not start redis-server on {name}: {out}{err}")

    def close(self):
        for client in self._ssh.values():
            client.close()

    # --- Redis and Sentinel ---------------------------------------------------------------

    def sentinel(self, timeout=CLIENT_TIMEOUT) -> Sentinel:
        return Sentinel(
            datatier.sentinel_endpoints(self.cluster),
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
        return redis.Redis(
            host=address,
            port=self.redis_port,
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            **NO_RETRY,
        )

    def sentinel_client(self, address, timeout=5.0) -> redis.Redis:
        return redis.Redis(
            host=address,
            port=self.cluster.settings["sentinel_port"],
            password=self.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            **NO_RETRY,
        )

    def primary(self) -> str:
        return self.sentinel(timeout=5.0).discover_master(self.master)[0]

    def health(self) -> str | None:
        """None when the cluster is whole: every sentinel names the same primary, which
        has every other server as an online replica with an up link, and every sentinel sees
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
        """The primary of a whole cluster, waiting for it; AssertionError after `timeout`."""
        deadline = time.monotonic() + timeout
        problem = "not checked"
        while time.monotonic() < deadline:
            problem = self.health()
            if problem is None:
                return self.primary()
            time.sleep(1)
        raise AssertionError(f"cluster not whole after {timeout} s: {problem}")


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


def drill(lab: Lab, warmup=1.0, after=1.0) -> DrillResult:
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drills", type=int, default=5)
    parser.add_argument("--inventory", default="inventory.py")
    args = parser.parse_args(argv)
    lab = Lab(args.inventory)
    results = []
    try:
        for number in range(1, args.drills + 1):
            result = drill(lab)
            results.append(result)
            print(f"drill {number}: {result.line()}", flush=True)
    finally:
        lab.close()
    median = statistics.median(r.unavailable for r in results)
    lost = sum(len(r.lost_waited) for r in results)
    print(
        f"failover: median {median:.2f} s from SIGKILL of the primary to the first write on the "
        f"new one over {len(results)} drills (goal <= {GOAL_SECONDS:.0f} s); "
        f"WAIT-replicated writes lost: {lost}"
    )
    return 0 if median <= GOAL_SECONDS and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
