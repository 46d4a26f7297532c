"""The load of the served queues, read from the broker with Kombu, the library and the URL the
Celery workers themselves use (Sentinel finds the current Redis primary).

Kombu's Redis transport keeps a queue as a list named after it (one more list per priority
step), and every message handed to a consumer but not acknowledged yet in the `unacked` hash as
[message, exchange, routing key]. With `task_acks_late` a task is acknowledged when it ends and
with `worker_prefetch_multiplier = 1` a worker holds no more messages than it has free slots,
so waiting (list lengths) + unacknowledged = queued + running tasks.

The autoscalers also mark themselves alive in the broker, in one sorted set scored by the
Redis server's clock (no host clock involved): each round a host that is not drained adds
itself, a drained one removes itself, and marks older than a few rounds are dropped. The
others then share the need of a drained or dead host between themselves.
"""

import json
from dataclasses import dataclass

from kombu import Connection
from kombu.exceptions import ChannelError

# Seconds one look at the broker may take before it counts as unreadable.
TIMEOUT = 5
# The sorted set of live autoscalers (member: host name, score: Redis time of its last round).
LIVE_KEY = "airflow-cluster:autoscalers"


class BrokerUnreadable(Exception):
    pass


@dataclass(frozen=True)
class Reading:
    load: int  # queued + running tasks of the queues
    live_hosts: frozenset[str]  # autoscalers alive and not drained


def read(broker_url: str, transport_options: dict, queues: list[str], host: str,
         live: bool | None, live_seconds: float) -> Reading:
    """The load of `queues` and the live hosts, after marking `host` alive (`live`), not alive
    (False) or neither (None: only look). BrokerUnreadable when the broker cannot be read."""
    try:
        with _connect(broker_url, transport_options) as conn:
            channel = conn.default_channel
            client = channel.client
            now_seconds, _ = client.time()
            with client.pipeline() as pipe:
                if live:
                    pipe.zadd(LIVE_KEY, {host: now_seconds})
                elif live is False:
                    pipe.zrem(LIVE_KEY, host)
                pipe.zremrangebyscore(LIVE_KEY, "-inf", now_seconds - live_seconds)
                pipe.zrange(LIVE_KEY, 0, -1)
                members = pipe.execute()[-1]
            return Reading(
                load=_load(channel, queues),
                live_hosts=frozenset(m.decode() if isinstance(m, bytes) else m for m in members),
            )
    except Exception as e:  # noqa: BLE001 - any failure means the same: no reading this round
        raise BrokerUnreadable(f"{type(e).__name__}: {e}") from e


def _connect(broker_url: str, transport_options: dict) -> Connection:
    options = {
        **transport_options,
        "socket_timeout": TIMEOUT,
        "socket_connect_timeout": TIMEOUT,
        "sentinel_kwargs": {
            **transport_options.get("sentinel_kwargs", {}),
            "socket_timeout": TIMEOUT,
            "socket_connect_timeout": TIMEOUT,
        },
    }
    conn = Connection(broker_url, transport_options=options, connect_timeout=TIMEOUT)
    conn.ensure_connection(max_retries=1)
    return conn


def _load(channel, queues: list[str]) -> int:
    waiting = sum(_waiting(channel, queue) for queue in queues)
    unacked = channel.client.hvals(channel.unacked_key)
    return waiting + sum(1 for raw in unacked if _routing_key(raw) in queues)


def _waiting(channel, queue: str) -> int:
    """Messages waiting in `queue` (every priority list); 0 when it has none (Redis keeps no
    empty list, and a passive declare of a missing queue is refused)."""
    try:
        return channel.queue_declare(queue=queue, passive=True).message_count
    except ChannelError:
        return 0


def _routing_key(raw: bytes) -> str | None:
    try:
        _message, _exchange, routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return routing_key
