"""The load of the served queues, read from the broker with Kombu, the library and the URL the
Celery workers themselves use (Sentinel finds the current Redis primary).

Kombu's Redis transport keeps a queue as a list named after it (one more list per priority
step), and every message handed to a consumer but not acknowledged yet in the `unacked` hash as
[message, exchange, routing key]. With `task_acks_late` a task is acknowledged when it ends and
with `worker_prefetch_multiplier = 1` a worker holds no more messages than it has free slots,
so  waiting (list lengths) + unacknowledged = queued + running tasks.
"""

import json

from kombu import Connection
from kombu.exceptions import ChannelError

# Seconds one look at the broker may take before it counts as unreadable.
TIMEOUT = 5


class BrokerUnreadable(Exception):
    pass


def queue_load(broker_url: str, transport_options: dict, queues: list[str]) -> int:
    """Queued + running tasks of `queues`; BrokerUnreadable when the broker cannot be read."""
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
    try:
        with Connection(broker_url, transport_options=options, connect_timeout=TIMEOUT) as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.default_channel
            waiting = sum(_waiting(channel, queue) for queue in queues)
            unacked = channel.client.hvals(channel.unacked_key)
            return waiting + sum(1 for raw in unacked if _routing_key(raw) in queues)
    except Exception as e:  # noqa: BLE001 - any failure means the same: no reading this round
        raise BrokerUnreadable(f"{type(e).__name__}: {e}") from e


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
