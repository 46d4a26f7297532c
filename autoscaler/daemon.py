"""The autoscaler service (airflow-cluster-autoscaler.service): every `interval` seconds it
reads the operator's mode, the host's worker instances and the broker's load, asks the pure
decision (decision.py) and starts or stops instances accordingly.

One journal line per decision that changes something, and one whenever what it sees changes
(mode, readable or not, target, running, stopping), each with the inputs behind it. The last
round is also kept in the status file for `airflow-cluster-autoscaler status`.
"""

import json
import logging
import os
import tempfile
import time

from . import broker, state, units
from .config import Config
from .decision import DRAINED, FIXED, Memory, Observation, decide

log = logging.getLogger("airflow-cluster-autoscaler")
# A host whose autoscaler missed this many rounds no longer gets a share of the need.
LIVE_ROUNDS = 3


def run(config: Config) -> None:
    log.info(
        "started: host %s of %s, queues %s, %d slots per instance, instances %d..%d, "
        "cooldown %ss, every %ss",
        config.policy.host, ",".join(config.policy.hosts), ",".join(config.queues),
        config.policy.concurrency, config.policy.min_instances, config.policy.max_instances,
        config.policy.cooldown, config.interval,
    )
    memory, last_seen = Memory(), None
    while True:
        started = time.monotonic()
        try:
            with state.locked(config.state_file):
                memory, last_seen = one_round(config, memory, last_seen)
        except Exception:  # noqa: BLE001 - a bad round must not end the service
            log.exception("round failed; nothing changed")
        time.sleep(max(0.0, config.interval - (time.monotonic() - started)))


def one_round(config: Config, memory: Memory, last_seen):
    mode, _ = state.load(config.state_file)
    present = units.instances()
    load, live_hosts, fixed, error = None, None, {}, None
    try:
        reading = read_broker(config, live=mode.kind != DRAINED,
                              fixed=mode.instances if mode.kind == FIXED else None)
        load, live_hosts, fixed = reading.load, reading.live_hosts, reading.fixed
    except broker.BrokerUnreadable as e:
        error = str(e)
    seen = Observation(time.monotonic(), load, present.running, present.stopping, error,
                       live_hosts, fixed)
    decision = decide(config.policy, mode, seen, memory)
    if decision.start:
        units.start(decision.start)
    if decision.stop:
        units.stop(decision.stop)
    summary = (mode, load is None, decision.target, len(seen.running), len(seen.stopping))
    if decision.changes or summary != last_seen:
        log.info("%s: mode %s; %s", _action(decision), mode.kind, decision.reason)
    _write_status(config, mode, seen, decision)
    return decision.memory, summary


def read_broker(config: Config, live: bool | None, fixed: int | None = None) -> broker.Reading:
    """The load and the live hosts; marks this host alive (`live`, with its `fixed` count) or
    not (False)."""
    return broker.read(
        config.broker_url, config.transport_options, config.queues, config.policy.host,
        live=live, live_seconds=LIVE_ROUNDS * config.interval + broker.TIMEOUT, fixed=fixed,
    )


def _action(decision) -> str:
    if decision.start:
        return "start " + " ".join(units.unit(n) for n in decision.start)
    if decision.stop:
        return "stop (warm) " + " ".join(units.unit(n) for n in decision.stop)
    return "hold"


def _write_status(config: Config, mode, seen: Observation, decision) -> None:
    document = {
        "time": time.time(),
        "mode": mode.kind,
        "fixed_instances": mode.instances,
        "load": seen.load,
        "broker_error": seen.error,
        "live_hosts": None if seen.live_hosts is None else sorted(seen.live_hosts),
        "running": sorted(seen.running),
        "stopping": sorted(seen.stopping),
        "target": decision.target,
        "reason": decision.reason,
    }
    path = config.status_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as out:
        json.dump(document, out)
    os.replace(temporary, path)
