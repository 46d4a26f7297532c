"""The load of the served queues, read from the broker with Kombu, the library and the URL the
Celery workers themselves use (Sentinel finds the current Redis primary).

Kombu's Redis transport keeps a queue as a list named after it (one more list per priority
step), and every message handed to a consumer but not acknowledged yet in the `unacked` hash as
[message, exchange, routing key]. With `task_acks_late` a task is acknowledged when it ends and
with `worker_prefetch_multiplier = 1` a worker holds no more messages than it has free slots,
so waiting (list lengths) + unacknowledged = queued + running tasks.

The lists and the hash are read in one transaction, so a message moving from one to the other
meanwhile is counted once.

The autoscalers also mark themselves alive in the broker, in one sorted set scored by the
Redis server's clock (no host clock involved): each round a host that is not drained adds
itself, a drained one removes itself, and marks older than a few rounds are dropped; a host
fixed by the operator also records its count. The autoscaling hosts then share the need that
the fixed hosts do not cover, and take over the share of a drained or dead host.
"""

import json
from dataclasses import dataclass

from kombu import Connection

# Seconds one look at the broker may take before it counts as unreadable.
TIMEOUT = 5
# The sorted set of live autoscalers (member: host name, score: Redis time of its last round)
# and the hash of the fixed ones' instance counts.
LIVE_KEY = "airflow-cluster:autoscalers"
FIXED_KEY = "airflow-cluster:autoscalers:fixed"


class BrokerUnreadable(Exception):
    pass


@dataclass(frozen=True)
class Reading:
    load: int  # queued + running tasks of the queues
    live_hosts: frozenset[str]  # autoscalers alive and not drained
    fixed: dict[str, int]  # live hosts fixed by the operator -> their instance count


def read(broker_url: str, transport_options: dict, queues: list[str], host: str,
         live: bool | None, live_seconds: float, fixed: int | None = None) -> Reading:
    """The load of `queues` and the live hosts, after marking `host` alive (`live`; `fixed`:
    its count when the operator fixed it), not alive (False) or neither (None: only look).
    BrokerUnreadable when the broker cannot be read."""
    try:
        with _connect(broker_url, transport_options) as conn:
            channel = conn.default_channel
            client = channel.client
            now_seconds, _ = client.time()
            with client.pipeline(transaction=True) as pipe:
                if live:
                    pipe.zadd(LIVE_KEY, {host: now_seconds})
                if live is False or (live and fixed is None):
                    pipe.hdel(FIXED_KEY, host)
                if live is False:
                    pipe.zrem(LIVE_KEY, host)
                if live and fixed is not None:
                    pipe.hset(FIXED_KEY, host, fixed)
                pipe.zremrangebyscore(LIVE_KEY, "-inf", now_seconds - live_seconds)
                pipe.zrange(LIVE_KEY, 0, -1)
                pipe.hgetall(FIXED_KEY)
                lists = _queue_lists(channel, queues)
                for name in lists:
                    pipe.llen(name)
                pipe.hvals(channel.unacked_key)
                answers = pipe.execute()
            unacked = answers[-1]
            waiting = sum(answers[-1 - len(lists):-1])
            members, fixed_counts = answers[-3 - len(lists)], answers[-2 - len(lists)]
            live_hosts = frozenset(_text(m) for m in members)
            return Reading(
                load=waiting + sum(1 for raw in unacked if _routing_key(raw) in queues),
                live_hosts=live_hosts,
                fixed={_text(h): int(n) for h, n in fixed_counts.items()
                       if _text(h) in live_hosts},
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


def _queue_lists(channel, queues: list[str]) -> list[str]:
    """The Redis lists of `queues`: one per priority step, named as the transport names them."""
    return list(dict.fromkeys(
        channel._q_for_pri(queue, step) for queue in queues for step in channel.priority_steps
    ))


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _routing_key(raw: bytes) -> str | None:
    try:
        _message, _exchange, routing_key = json.loads(raw)
    except (ValueError, TypeError):
        return None
    return routing_key
