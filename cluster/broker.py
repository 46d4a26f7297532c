"""The Celery broker: Redis supervised by Sentinel on the `redis` hosts.

`build_broker` derives, once, from the inventory what every host needs to know (the
servers, the sentinels, their quorum, the name they monitor the primary under). The rest
are pure helpers of that model: the URLs Celery connects with, which server is the primary
from what the sentinels answer, and which lines of a runtime file copy deploy-owned
settings. Nothing here reads a host's facts, so `--limit worker` computes what a full
run computes.
"""

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .errors import ClusterConfigError
from .net import url_host


@dataclass(frozen=True)
class Broker:
    # The name the sentinels monitor the primary under (setting: redis_master_name).
    master_name: str
    # Sentinels that must agree the primary is down: a majority of the redis group.
    quorum: int
    # (address, port) of the redis-server and of the sentinel on every redis host, in order.
    servers: tuple[tuple[str, int], ...]
    sentinels: tuple[tuple[str, int], ...]
    # Celery's task_publish_retry_policy: a publish retried through a failover (setting:
    # celery_publish_retry_seconds), and the seconds Airflow lets one publish take with it.
    publish_retry_policy: Mapping[str, float]
    publish_timeout: int

    @property
    def initial_primary(self) -> tuple[str, int]:
        """The primary of a cluster no sentinel knows yet: the first host of the group."""
        return self.servers[0]

    @property
    def port(self) -> int:
        return self.servers[0][1]


def build_broker(settings: Mapping[str, Any], addresses: tuple[str, ...]) -> Broker:
    """The broker of the redis hosts at `addresses` (cluster-wide settings)."""
    return Broker(
        master_name=settings["redis_master_name"],
        quorum=len(addresses) // 2 + 1,
        servers=tuple((a, settings["redis_port"]) for a in addresses),
        sentinels=tuple((a, settings["sentinel_port"]) for a in addresses),
        publish_retry_policy=publish_retry_policy(settings["celery_publish_retry_seconds"]),
        publish_timeout=settings["celery_publish_retry_seconds"] + 5,
    )


# Seconds between two attempts of a publish while the broker fails over.
PUBLISH_RETRY_INTERVAL = 0.5


def publish_retry_policy(seconds: int) -> dict[str, float]:
    """Celery's task_publish_retry_policy that keeps retrying for about `seconds` (Celery's
    default gives up after 0.6 s, well before Sentinel has promoted a replica). Each attempt
    asks the sentinels for the primary again."""
    return {
        "max_retries": math.ceil(seconds / PUBLISH_RETRY_INTERVAL),
        "interval_start": 0,
        "interval_step": PUBLISH_RETRY_INTERVAL,
        "interval_max": PUBLISH_RETRY_INTERVAL,
    }


def broker_url(broker: Broker, password: str) -> str:
    """Celery's broker_url: every sentinel, `;`-separated, each with the password."""
    password = quote(password, safe="")
    return ";".join(
        f"sentinel://:{password}@{url_host(address)}:{port}" for address, port in broker.sentinels
    )


def transport_options(broker: Broker, password: str) -> dict[str, Any]:
    """Kombu's transport options for the sentinel broker (Airflow:
    `[celery_broker_transport_options]`, where `sentinel_kwargs` is written as JSON)."""
    return {"master_name": broker.master_name, "sentinel_kwargs": {"password": password}}


def check_redis_settings(settings: Mapping[str, Any], replicas: int) -> None:
    """Relations between a redis host's tunables that a single-value check cannot see
    (`replicas`: how many replicas a primary of the group has)."""
    needed = settings["redis_min_replicas_to_write"]
    if needed > replicas:
        raise ClusterConfigError(
            f"redis_min_replicas_to_write ({needed}) is more than the {replicas} replicas "
            f"{replicas + 1} redis hosts have: the primary would refuse every write"
        )
    down_after = settings["sentinel_down_after_ms"]
    failover_timeout = settings["sentinel_failover_timeout_ms"]
    restart_delay = settings["redis_restart_delay"]
    if failover_timeout <= down_after:
        raise ClusterConfigError(
            f"sentinel_failover_timeout_ms ({failover_timeout}) must be larger than "
            f"sentinel_down_after_ms ({down_after})"
        )
    # A crashed primary that systemd restarts before the sentinels replace it comes back as
    # the primary: no failover, and the replicas resynchronise from it.
    if restart_delay * 1000 < down_after + 3000:
        raise ClusterConfigError(
            f"redis_restart_delay ({restart_delay} s) must exceed sentinel_down_after_ms "
            f"({down_after} ms) by at least 3 s, so a crashed primary is replaced before "
            "systemd restarts it"
        )


def choose_primary(broker: Broker, answers: Iterable[Mapping[str, Any]]) -> tuple[str, int] | None:
    """The current primary from what the sentinels (and, failing them, the servers) say.

    `answers` are the records of facts.redis.RedisClusterView: `{"kind": "sentinel", "ip",
    "port", "epoch", "flags"}` from `SENTINEL MASTER` and `{"kind": "server", "addr", "role",
    "connected_slaves"}` from `ROLE`; records with an "error" carry neither and do not count.
    Only addresses of the redis group count. The sentinels' answer with the highest config
    epoch wins (a sentinel that missed the last failover reports an older epoch), then one not
    flagged down, then the most common; servers are asked only when no sentinel answers, and a
    primary with replicas wins. None: nobody knows (a new cluster).
    """
    answers = list(answers)
    redis_port = broker.port
    members = {address for address, _ in broker.servers}
    sentinel_votes = []
    for answer in answers:
        if answer.get("kind") != "sentinel":
            continue
        if answer.get("ip") not in members or int(answer.get("port", -1)) != redis_port:
            continue
        down = any(flag in ("s_down", "o_down") for flag in str(answer.get("flags")).split(","))
        sentinel_votes.append((int(answer.get("epoch", 0)), not down, answer["ip"]))
    if sentinel_votes:
        best = max(vote[:2] for vote in sentinel_votes)
        counts = Counter(vote[2] for vote in sentinel_votes if vote[:2] == best)
        return counts.most_common(1)[0][0], redis_port

    masters = []
    for answer in answers:
        if answer.get("kind") != "server" or answer.get("role") != "master":
            continue
        address = str(answer.get("addr", "")).rpartition(":")[0].strip("[]")
        if address in members and int(answer.get("connected_slaves", 0)) > 0:
            masters.append((int(answer["connected_slaves"]), address))
    if masters:
        return max(masters)[1], redis_port
    return None


def known_replicas(answers: Iterable[Mapping[str, Any]]) -> set[str]:
    """Addresses any sentinel lists as a replica (`SENTINEL REPLICAS`, in the records of
    facts.redis.RedisClusterView).
    Sentinel reconfigures those itself when they come back as primaries."""
    return {
        address
        for answer in answers
        if answer.get("kind") == "sentinel"
        for address in answer.get("replicas", ())
    }


_DIRECTIVE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9-]*)\b")


def config_directives(text: str) -> list[str]:
    """The directive names a rendered redis.conf/sentinel.conf sets, in order, lower-case."""
    names = []
    for line in text.splitlines():
        match = _DIRECTIVE.match(line)
        if match and match.group(1).lower() not in names:
            names.append(match.group(1).lower())
    return names


def stale_copy_names(owned_text: str) -> list[str]:
    """Lines of the runtime file that are copies of deploy-owned settings.

    CONFIG REWRITE (and Sentinel's own rewrite) writes every setting that differs from its
    default into the runtime file, including those read from an `include`d file, and later
    lines win: those copies would shadow a changed deploy-owned value. `requirepass` is also
    written in its ACL form, `user default on #<sha256> ...`.
    """
    names = [name for name in config_directives(owned_text) if name not in ("include", "sentinel")]
    if "requirepass" in names:
        names.append("user")
    return names


def stale_copy_pattern(names: Iterable[str]) -> str:
    """An extended regex (grep -E / sed -E) matching the runtime lines setting `names`."""
    names = list(names)
    if not names:
        raise ValueError("no directive names")
    return "^[[:space:]]*(" + "|".join(re.escape(n) for n in names) + ")([[:space:]].*)?$"


def redis_settings_in_force(address: str, settings: Mapping[str, Any], password: str) -> dict:
    """What `CONFIG GET` must answer on the redis-server at `address` when it runs on the
    deploy-owned settings (templates/etc/redis/airflow-cluster/redis.conf.j2)."""
    return {
        "bind": f"{address} 127.0.0.1",
        "port": str(settings["redis_port"]),
        "protected-mode": "yes",
        "requirepass": password,
        "masterauth": password,
        "maxmemory": str(settings["redis_maxmemory_mb"] * 1024 * 1024),
        "maxmemory-policy": "noeviction",
        "appendonly": "yes",
        "appendfsync": settings["redis_appendfsync"],
        "min-replicas-to-write": str(settings["redis_min_replicas_to_write"]),
        "min-replicas-max-lag": str(settings["redis_min_replicas_max_lag"]),
    }
