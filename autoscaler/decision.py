"""The autoscaler's decision, pure: what it saw in, how many worker instances and which ones
to start or stop out. No clock, no broker, no systemd: everything arrives as arguments, so
every case is a unit test (tests/unit/test_autoscaler_decision.py).

The rule:
- need = ceil(load / worker_concurrency), load = queued + running tasks of the queues the
  workers serve (the Helm chart's KEDA rule, read from the broker instead of the database);
- this host's share of it: the worker hosts sorted by name split `need` evenly, the first
  `need % hosts` of them one more, so every host computes the same split without talking and
  the sum is exactly `need`; then clamped to [min_instances, max_instances]. The hosts are
  those whose autoscaler is alive, autoscaling and not drained (each marks itself in the
  broker every round, broker.py), so the others take over the share of a drained or dead
  host; the instances of hosts the operator fixed are taken off the need first;
- up at once, to the share, in one step;
- down only after the share stayed below the running count for `cooldown` seconds, one instance
  at a time (the highest number first), and never while another is still stopping: a stop is
  Celery's warm shutdown and may wait for long tasks;
- broker unreadable: nothing changes, except that a host below its minimum is brought up to it.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

AUTO, FIXED, DRAINED = "auto", "fixed", "drained"


@dataclass(frozen=True)
class Policy:
    """The host's settings (group_data/worker.py), from its config file."""

    host: str
    hosts: tuple[str, ...]  # every worker host (the share is computed over them, by name)
    concurrency: int  # task slots of one instance (worker_concurrency)
    min_instances: int
    max_instances: int
    cooldown: float  # seconds the share must stay below the running count before a scale-in

    def clamp(self, instances: int) -> int:
        return max(self.min_instances, min(self.max_instances, instances))


@dataclass(frozen=True)
class Mode:
    """What the operator asked for (the state file): autoscaling, a fixed count, or drained
    (the host is left alone: `drain` stops its instances, the autoscaler starts none)."""

    kind: str = AUTO
    instances: int | None = None  # FIXED only


@dataclass(frozen=True)
class Observation:
    now: float  # monotonic seconds
    # Queued + running tasks of the served queues, None when the broker could not be read.
    load: int | None
    running: frozenset[int]  # instance numbers starting, active or restarting
    stopping: frozenset[int]  # instance numbers in a (warm) stop
    error: str | None = None  # why load is None
    # The worker hosts whose autoscaler is alive and not drained (None: unknown, all of them).
    live_hosts: frozenset[str] | None = None
    # Live hosts the operator fixed -> their instance count.
    fixed: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Memory:
    """What the decision keeps between two rounds."""

    # Since when the share has been below the running count (None: it is not).
    below_since: float | None = None


@dataclass(frozen=True)
class Decision:
    target: int
    start: tuple[int, ...]
    stop: tuple[int, ...]
    reason: str
    memory: Memory

    @property
    def changes(self) -> bool:
        return bool(self.start or self.stop)


def cluster_need(load: int, concurrency: int) -> int:
    """Worker instances the whole cluster needs for `load` tasks."""
    return math.ceil(load / concurrency)


def host_share(need: int, hosts: tuple[str, ...], host: str) -> int:
    """This host's part of `need`, so the shares of all hosts sum to exactly `need`."""
    ordered = sorted(hosts)
    base, extra = divmod(need, len(ordered))
    return base + (1 if ordered.index(host) < extra else 0)


def decide(policy: Policy, mode: Mode, seen: Observation, memory: Memory) -> Decision:
    running = len(seen.running)
    if mode.kind == DRAINED:
        return _hold(running, "drained: left alone", Memory())
    if mode.kind == FIXED:
        target = policy.clamp(mode.instances)
        return _move(seen, target, f"fixed at {target} (autoscaling off)", Memory())
    if seen.load is None:
        target = max(running, policy.min_instances)
        why = f"broker unreadable ({seen.error}): no change"
        if target > running:
            why = f"broker unreadable ({seen.error}): up to the minimum {target}"
        return _move(seen, target, why, memory)

    need = cluster_need(seen.load, policy.concurrency)
    fixed = {h: n for h, n in seen.fixed.items() if h != policy.host and h in policy.hosts}
    left = max(0, need - sum(fixed.values()))
    hosts = sharing_hosts(policy, seen.live_hosts, fixed)
    share = host_share(left, hosts, policy.host)
    target = policy.clamp(share)
    inputs = (f"load {seen.load}, need {need}"
              + (f" ({left} beyond fixed {_pairs(fixed)})" if fixed else "")
              + f" over {len(hosts)} hosts ({','.join(hosts)}), share {share}, "
              f"target {target}, running {running}, stopping {len(seen.stopping)}")
    if target >= running:
        return _move(seen, target, inputs, Memory())
    # Below: scale in after the cooldown, one instance at a time.
    below_since = seen.now if memory.below_since is None else memory.below_since
    waited = seen.now - below_since
    if seen.stopping:
        return _hold(target, f"{inputs}: waiting for the stopping instance",
                     Memory(below_since))
    if waited < policy.cooldown:
        return _hold(target, f"{inputs}: cooldown {waited:.0f}/{policy.cooldown:.0f} s",
                     Memory(below_since))
    # The window starts again after each scale-in.
    return _move(seen, running - 1, f"{inputs}: below for {waited:.0f} s",
                 Memory(below_since=seen.now))


def sharing_hosts(policy: Policy, live_hosts: frozenset[str] | None,
                  fixed: Mapping[str, int] = MappingProxyType({})) -> tuple[str, ...]:
    """The hosts the need is split over, by name: the live autoscaling ones (this one always)."""
    return tuple(sorted(
        h for h in policy.hosts
        if h == policy.host or ((live_hosts is None or h in live_hosts) and h not in fixed)
    ))


def _pairs(counts: Mapping[str, int]) -> str:
    return ",".join(f"{h}={n}" for h, n in sorted(counts.items()))


def _hold(target: int, reason: str, memory: Memory) -> Decision:
    """Change nothing (yet); `target` is what the host is heading for."""
    return Decision(target=target, start=(), stop=(), reason=reason, memory=memory)


def _move(seen: Observation, target: int, reason: str, memory: Memory) -> Decision:
    """Start the lowest free numbers or stop the highest running ones to reach `target`."""
    running = sorted(seen.running)
    if target > len(running):
        taken = seen.running | seen.stopping
        free = (n for n in range(1, len(taken) + target + 1) if n not in taken)
        start = tuple(next(free) for _ in range(target - len(running)))
        return Decision(target, start, (), reason, memory)
    stop = tuple(reversed(running[target:]))
    return Decision(target, (), stop, reason, memory)
