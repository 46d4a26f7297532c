"""The Redis failover drill: SIGKILL the primary under a writer and measure the outage."""

import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from redis.sentinel import MasterNotFoundError

from lab.client.broker import CLIENT_TIMEOUT

if TYPE_CHECKING:  # Lab lives in the package's __init__, which imports this module.
    from lab.client import Lab

# The broker's failover goal: seconds from the primary's death to the first acknowledged write.
GOAL_SECONDS = 5.0
# Shared, noisy machine: generous limits for everything that is not the measured figure.
FAILOVER_TIMEOUT = 60
RETRY_INTERVAL = 0.05


@dataclass
class Write:
    seq: int
    at: float  # time.time() of the acknowledgement (RPUSH's reply)
    server: str
    replicas: int  # WAIT's answer just after: replicas that had the write (0: none or no answer)


class Writer(threading.Thread):
    """Writes `seq` numbers to one list through whatever server the sentinels name."""

    def __init__(self, lab: "Lab", key: str):
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


def failover_drill(lab: "Lab", warmup=1.0, after=1.0) -> DrillResult:
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
