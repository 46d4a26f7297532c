"""Kombu end to end through the deployed broker, with the model's broker URL and transport
options (what Celery gets): messages published and consumed across a failover, none lost."""

import time
import uuid

import kombu
import kombu.exceptions
import kombu.simple

from lab.client import FAILOVER_TIMEOUT

BEFORE, DURING = 100, 200


def connection(redis_lab):
    urls = redis_lab.connections
    return kombu.Connection(
        urls.celery_broker_url,
        transport_options=urls.celery_broker_transport_options,
        connect_timeout=10,
    )


def errors(conn):
    return conn.recoverable_connection_errors + conn.connection_errors + (
        kombu.exceptions.OperationalError,
    )


class Publisher:
    """Puts payloads on queue `name`, reconnecting through the sentinels when the broker goes
    away and publishing the same payload again (at least once: never lost, maybe twice)."""

    def __init__(self, conn, name):
        self.conn, self.name = conn, name
        self.queue = None
        self.retries = 0

    def put(self, payload, timeout=FAILOVER_TIMEOUT * 2):
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.queue is None:
                    self.queue = self.conn.SimpleQueue(self.name)
                self.queue.put(payload)
                return
            except errors(self.conn):
                self.retries += 1
                self.queue = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


def consume(conn, name, count, timeout):
    """Up to `count` payloads from queue `name`, reconnecting through the sentinels when the
    broker goes away; stops after `timeout` seconds."""
    received, deadline, queue = [], time.monotonic() + timeout, None
    while len(received) < count and time.monotonic() < deadline:
        try:
            if queue is None:
                queue = conn.SimpleQueue(name)
            message = queue.get(block=True, timeout=2)
            received.append(message.payload)
            message.ack()
        except kombu.simple.SimpleQueue.Empty:
            continue
        except errors(conn):
            queue = None
            time.sleep(0.2)
    return received


def test_messages_survive_a_failover(redis_lab):
    name = f"test-kombu-{uuid.uuid4().hex}"
    old_primary = redis_lab.wait_healthy()
    publisher, consumer = connection(redis_lab), connection(redis_lab)
    try:
        queue = Publisher(publisher, name)
        sent = [{"n": n} for n in range(BEFORE + DURING)]
        for payload in sent[:BEFORE]:
            queue.put(payload)
        received = consume(consumer, name, BEFORE // 2, timeout=60)
        assert len(received) == BEFORE // 2

        redis_lab.kill_redis_server(old_primary)
        started = time.monotonic()
        for payload in sent[BEFORE:]:
            queue.put(payload)
            time.sleep(0.01)
        publishing = time.monotonic() - started
        # The same consumer connection, then a fresh one: both find the new primary.
        received += consume(consumer, name, len(sent) - len(received), timeout=FAILOVER_TIMEOUT * 2)
        fresh = connection(redis_lab)
        try:
            received += consume(fresh, name, len(sent), timeout=3)  # anything left over
        finally:
            fresh.release()
    finally:
        publisher.release()
        consumer.release()
        redis_lab.start_redis_server(old_primary)
    new_primary = redis_lab.wait_healthy()
    assert new_primary != old_primary
    missing = [p["n"] for p in sent if p not in received]
    assert missing == [], f"lost {len(missing)} of {len(sent)} messages: {missing[:20]}"
    duplicates = len(received) - len({p["n"] for p in received})
    print(f"\nkombu: {len(sent)} published ({DURING} across the failover, {publishing:.1f} s), "
          f"{len(received)} consumed, {duplicates} duplicates, {queue.retries} publish retries")
