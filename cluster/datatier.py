"""Derived values of the data tier: the Redis/Sentinel broker and the PostgreSQL database.

Everything here is a pure function of the validated Cluster model (plus the secrets and, for
a few per-host tunables, that host's settings): no host's facts, so `--limit worker` computes
exactly what a full run computes. The Airflow roles take the broker URL, the transport options
and the database URLs from here; tasks/redis.py and tasks/postgres.py take the rest.
"""

import base64
import hashlib
import hmac
import re
import secrets as _random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .errors import ClusterConfigError

# Used until group_data/all.py defines `redis_master_name` (it must be the same on every host:
# the Airflow hosts name it in their transport options, the sentinels monitor it).
DEFAULT_MASTER_NAME = "airflow"

# Defaults of the per-host tunables below, for a host whose settings lack them.
DEFAULTS = {
    "sentinel_down_after_ms": 1500,
    "sentinel_failover_timeout_ms": 10000,
    "sentinel_parallel_syncs": 1,
    "redis_restart_delay": 15,
    "postgres_connection_budget": {
        "api_server": 60,
        "scheduler": 20,
        "dag_processor": 15,
        "triggerer": 15,
        "worker": 20,
    },
    "postgres_reserved_connections": 20,
}
BUDGET_KINDS = tuple(DEFAULTS["postgres_connection_budget"])
# PostgreSQL's own default; the computed max_connections never goes below it.
POSTGRES_MIN_CONNECTIONS = 100
# Groups whose hosts run Airflow processes that open connections to the metadata database.
POSTGRES_CLIENT_GROUPS = ("web", "scheduler", "worker")


def _setting(settings: Mapping[str, Any] | None, name: str):
    if settings is not None and name in settings:
        return settings[name]
    return DEFAULTS[name]


# --- Redis and Sentinel ---------------------------------------------------------------------


def master_name(cluster) -> str:
    """The name the sentinels monitor the primary under (Kombu's `master_name`)."""
    return cluster.settings.get("redis_master_name", DEFAULT_MASTER_NAME)


def sentinel_quorum(cluster) -> int:
    """Sentinels that must agree the primary is down: a majority of the redis group."""
    return len(cluster.groups["redis"]) // 2 + 1


def redis_endpoints(cluster) -> list[tuple[str, int]]:
    port = cluster.settings["redis_port"]
    return [(address, port) for address in cluster.addresses("redis")]


def sentinel_endpoints(cluster) -> list[tuple[str, int]]:
    port = cluster.settings["sentinel_port"]
    return [(address, port) for address in cluster.addresses("redis")]


def initial_primary(cluster) -> tuple[str, int]:
    """The primary of a cluster no sentinel knows yet: the first host of the redis group."""
    return redis_endpoints(cluster)[0]


def broker_url(cluster, secrets: Mapping[str, str]) -> str:
    """Celery's broker_url: every sentinel, `;`-separated, each with the password."""
    password = quote(secrets["redis_password"], safe="")
    return ";".join(
        f"sentinel://:{password}@{_url_host(address)}:{port}"
        for address, port in sentinel_endpoints(cluster)
    )


def broker_transport_options(cluster, secrets: Mapping[str, str]) -> dict[str, Any]:
    """Kombu's transport options for the sentinel broker (Airflow:
    `[celery_broker_transport_options]`, where `sentinel_kwargs` is written as JSON)."""
    return {
        "master_name": master_name(cluster),
        "sentinel_kwargs": {"password": secrets["redis_password"]},
    }


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def check_redis_settings(settings: Mapping[str, Any]) -> None:
    """Relations between a redis host's tunables that a single-value check cannot see."""
    down_after = _setting(settings, "sentinel_down_after_ms")
    failover_timeout = _setting(settings, "sentinel_failover_timeout_ms")
    restart_delay = _setting(settings, "redis_restart_delay")
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


def choose_primary(cluster, answers: Iterable[Mapping[str, Any]]) -> tuple[str, int] | None:
    """The current primary from what the sentinels (and, failing them, the servers) say.

    `answers` are the probe's records (tasks/redis.py): `{"kind": "sentinel", "ip", "port",
    "epoch", "flags"}` from `SENTINEL MASTER` and `{"kind": "server", "addr", "role",
    "connected_slaves"}` from `INFO replication`. Only addresses of the redis group count.
    The sentinels' answer with the highest config epoch wins (a sentinel that missed the last
    failover reports an older epoch), then one not flagged down, then the most common; servers
    are asked only when no sentinel answers, and a primary with replicas wins. None: nobody
    knows (a new cluster).
    """
    answers = list(answers)
    redis_port = cluster.settings["redis_port"]
    members = set(cluster.addresses("redis"))
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
    """Addresses any sentinel lists as a replica (`SENTINEL REPLICAS`, in the probe's records).
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


def redis_settings_in_force(address: str, settings: Mapping[str, Any], secrets) -> dict:
    """What `CONFIG GET` must answer on the redis-server at `address` when it runs on the
    deploy-owned settings (templates/etc/redis/airflow-cluster/redis.conf.j2)."""
    password = secrets["redis_password"]
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
    }


def redis_unit_override(settings: Mapping[str, Any]) -> str:
    """systemd drop-in for redis-server.service (see redis_restart_delay)."""
    return (
        "# Managed by the airflow-cluster deploy (tasks/redis.py); local edits are overwritten.\n"
        "# A crashed redis-server is restarted only after the sentinels had time to promote a\n"
        "# replica, so a crashed primary comes back as a replica (setting: redis_restart_delay).\n"
        "[Service]\n"
        f"RestartSec={_setting(settings, 'redis_restart_delay')}\n"
    )


# --- PostgreSQL -----------------------------------------------------------------------------


def check_postgres_settings(settings: Mapping[str, Any]) -> None:
    """The connection budget names each kind of Airflow process exactly once."""
    budget = _setting(settings, "postgres_connection_budget")
    if set(budget) != set(BUDGET_KINDS):
        raise ClusterConfigError(
            f"postgres_connection_budget must give a number for each of {', '.join(BUDGET_KINDS)}; "
            f"got {', '.join(sorted(budget)) or 'none'}"
        )


def postgres_connection_demand(cluster, settings: Mapping[str, Any] | None = None) -> dict:
    """Connections each kind of Airflow process may hold, times how many the inventory runs:
    an API server on every web host; a scheduler, DAG processor and triggerer on every
    scheduler host; a Celery worker (result backend) on every worker host."""
    budget = _setting(settings, "postgres_connection_budget")
    counts = {
        "api_server": len(cluster.groups["web"]),
        "scheduler": len(cluster.groups["scheduler"]),
        "dag_processor": len(cluster.groups["scheduler"]),
        "triggerer": len(cluster.groups["scheduler"]),
        "worker": len(cluster.groups["worker"]),
    }
    return {kind: count * budget[kind] for kind, count in counts.items()}


def postgres_max_connections(cluster, settings: Mapping[str, Any] | None = None) -> int:
    """max_connections: the demand above plus a reserve, never below PostgreSQL's 100."""
    demand = sum(postgres_connection_demand(cluster, settings).values())
    total = demand + _setting(settings, "postgres_reserved_connections")
    return max(total, POSTGRES_MIN_CONNECTIONS)


def postgres_client_addresses(cluster) -> tuple[str, ...]:
    """Addresses of the hosts that connect to the database, in inventory order, once each."""
    names = [name for group in POSTGRES_CLIENT_GROUPS for name in cluster.groups[group]]
    return tuple(dict.fromkeys(cluster.nodes[name].address for name in names))


@dataclass(frozen=True)
class HbaEntry:
    type: str
    database: str
    user: str
    address: str
    method: str


def pg_hba_entries(cluster) -> list[HbaEntry]:
    """pg_hba.conf: the postgres superuser over the local socket only; the Airflow role, to
    its database only, from each client host's address only, with a SCRAM password."""
    entries = [HbaEntry("local", "all", "postgres", "", "peer")]
    for address in postgres_client_addresses(cluster):
        prefix = 128 if ":" in address else 32
        entries.append(
            HbaEntry(
                "host",
                cluster.database_name,
                cluster.database_user,
                f"{address}/{prefix}",
                "scram-sha-256",
            )
        )
    return entries


def sql_alchemy_conn(cluster, secrets: Mapping[str, str]) -> str:
    """Airflow's `[database] sql_alchemy_conn` (the postgres host or external_database_url)."""
    return _postgres_url("postgresql+psycopg2", cluster, secrets)


def celery_result_backend(cluster, secrets: Mapping[str, str]) -> str:
    """Celery's `result_backend`: the same database through SQLAlchemy."""
    return _postgres_url("db+postgresql", cluster, secrets)


def _postgres_url(scheme: str, cluster, secrets: Mapping[str, str]) -> str:
    user = quote(cluster.database_user, safe="")
    password = quote(secrets["postgres_password"], safe="")
    url = (
        f"{scheme}://{user}:{password}@{_url_host(cluster.database_host)}:"
        f"{cluster.database_port}/{quote(cluster.database_name, safe='')}"
    )
    return f"{url}?{cluster.database_options}" if cluster.database_options else url


# SCRAM-SHA-256 verifiers as PostgreSQL stores them (RFC 5802/7677; src/common/scram-common.c):
# SCRAM-SHA-256$<iterations>:<salt b64>$<StoredKey b64>:<ServerKey b64>
SCRAM_ITERATIONS = 4096
_SCRAM = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return stored_key, server_key


def scram_verifier(password: str, salt: bytes | None = None, iterations=SCRAM_ITERATIONS) -> str:
    """The verifier PostgreSQL would store for `password`: sent instead of the password, so
    the password itself never reaches the database host (and its logs)."""
    salt = _random.token_bytes(16) if salt is None else salt
    stored_key, server_key = _scram_keys(password, salt, iterations)

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def scram_verifier_matches(password: str, verifier: str | None) -> bool:
    """Whether `verifier` (pg_authid.rolpassword) was made from `password`.

    Passwords are taken as UTF-8 without SASLprep, which is exact for the generated ones
    (ASCII); a supplied non-ASCII password may be re-set on every run.
    """
    match = _SCRAM.match(verifier or "")
    if not match:
        return False
    iterations, salt, stored_key, server_key = match.groups()
    expected = _scram_keys(password, base64.b64decode(salt), int(iterations))
    actual = (base64.b64decode(stored_key), base64.b64decode(server_key))
    return all(hmac.compare_digest(a, b) for a, b in zip(expected, actual))
