"""Lab's Redis and Sentinel part: clients, the broker's health, and killing or starting a
redis-server. Named broker, not redis, so it can never be mistaken for redis-py."""

import time

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

# Shared, noisy machine: generous limits for everything that is not the measured figure.
REJOIN_TIMEOUT = 180
CLIENT_TIMEOUT = 0.5
# The drill's client retries itself (asking the sentinels again each time): redis-py's own
# default retries (3, with exponential backoff, since redis-py 6) would keep it on the dead
# primary for seconds and measure the client, not the failover.
NO_RETRY = {"retry": Retry(NoBackoff(), 0)}


class BrokerAccess:
    """Mixed into Lab, which provides cluster, names, master, redis_port, password and
    run(name, command)."""

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
