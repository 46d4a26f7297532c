"""Airflow's metadata database: PostgreSQL on the `postgres` host, or an external one.

`build_database` derives, once, from the inventory where the database is, who may connect
to it (pg_hba.conf's entries) and how many connections the inventory's Airflow processes may
open (max_connections). The templates and tasks only print these values; the URLs that carry
the password are made from them with the secrets (`sql_alchemy_conn`, `celery_result_backend`).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .database_url import parse_database_url
from .errors import ClusterConfigError
from .groups import AIRFLOW_GROUPS
from .net import host_network, url_host

# The kinds of Airflow process that hold database connections (postgres_connection_budget).
BUDGET_KINDS = ("api_server", "scheduler", "dag_processor", "triggerer", "worker")
# PostgreSQL's own default; the computed max_connections never goes below it.
POSTGRES_MIN_CONNECTIONS = 100


@dataclass(frozen=True)
class HbaEntry:
    type: str
    database: str
    user: str
    address: str
    method: str


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    name: str
    user: str
    # Extra libpq parameters from external_database_url, e.g. "sslmode=require" ("" when none).
    options: str
    # Address of the `postgres` host; None when the database is external (then the fields
    # below are empty: the deploy does not manage that server).
    postgres_address: str | None
    # Addresses of the hosts that connect to the database, in inventory order, once each.
    clients: tuple[str, ...]
    # pg_hba.conf, in order.
    hba_entries: tuple[HbaEntry, ...]
    # Connections each kind of Airflow process may hold, times how many the inventory runs.
    connection_demand: Mapping[str, int]
    # max_connections: the demand plus the reserve, never below PostgreSQL's default.
    max_connections: int | None


def check_postgres_settings(settings: Mapping[str, Any]) -> None:
    """The connection budget names each kind of Airflow process exactly once."""
    budget = settings["postgres_connection_budget"]
    if set(budget) != set(BUDGET_KINDS):
        raise ClusterConfigError(
            f"postgres_connection_budget must give a number for each of {', '.join(BUDGET_KINDS)}; "
            f"got {', '.join(sorted(budget)) or 'none'}"
        )


def build_database(settings, groups, addresses_of, postgres_settings=None) -> Database:
    """The database of the inventory: `settings` are the cluster-wide ones, `groups` the role
    groups, `addresses_of(group)` their addresses, `postgres_settings` the postgres host's
    own settings (its connection budget, checked by role_checks; None without a postgres
    group)."""
    url = settings.get("external_database_url")
    postgres_hosts = groups["postgres"]
    if postgres_hosts and url:
        raise ClusterConfigError(
            f"both a 'postgres' group ({postgres_hosts[0]}) and external_database_url are set: "
            "keep one"
        )
    if not postgres_hosts:
        if not url:
            raise ClusterConfigError(
                "no database: add a 'postgres' group to the inventory or set external_database_url"
            )
        try:
            parsed = parse_database_url(url)
        except ValueError as e:  # already checked with the settings; kept for direct callers
            raise ClusterConfigError(f"setting 'external_database_url': {e}") from None
        return Database(
            host=parsed.host, port=parsed.port, name=parsed.name, user=parsed.user,
            options=parsed.query, postgres_address=None, clients=(), hba_entries=(),
            connection_demand={}, max_connections=None,
        )

    address = addresses_of("postgres")[0]
    name, user = settings["postgres_database"], settings["postgres_user"]
    clients = tuple(dict.fromkeys(a for group in AIRFLOW_GROUPS for a in addresses_of(group)))
    # The postgres superuser over the local socket only; the Airflow role, to its database
    # only, from each client host's address only, with a SCRAM password.
    hba = [HbaEntry("local", "all", "postgres", "", "peer")]
    hba += [HbaEntry("host", name, user, host_network(a), "scram-sha-256") for a in clients]
    demand = _connection_demand(groups, postgres_settings["postgres_connection_budget"])
    reserve = postgres_settings["postgres_reserved_connections"]
    return Database(
        host=address, port=settings["postgres_port"], name=name, user=user, options="",
        postgres_address=address, clients=clients, hba_entries=tuple(hba),
        connection_demand=demand,
        max_connections=max(sum(demand.values()) + reserve, POSTGRES_MIN_CONNECTIONS),
    )


def _connection_demand(groups, budget) -> dict[str, int]:
    """An API server on every web host; a scheduler, DAG processor and triggerer on every
    scheduler host; a Celery worker (result backend) on every worker host."""
    counts = {
        "api_server": len(groups["web"]),
        "scheduler": len(groups["scheduler"]),
        "dag_processor": len(groups["scheduler"]),
        "triggerer": len(groups["scheduler"]),
        "worker": len(groups["worker"]),
    }
    return {kind: count * budget[kind] for kind, count in counts.items()}


def sql_alchemy_conn(database: Database, password: str) -> str:
    """Airflow's `[database] sql_alchemy_conn` (the postgres host or external_database_url)."""
    return _postgres_url("postgresql+psycopg2", database, password)


def celery_result_backend(database: Database, password: str) -> str:
    """Celery's `result_backend`: the same database through SQLAlchemy."""
    return _postgres_url("db+postgresql", database, password)


def _postgres_url(scheme: str, database: Database, password: str) -> str:
    user = quote(database.user, safe="")
    url = (
        f"{scheme}://{user}:{quote(password, safe='')}@{url_host(database.host)}:"
        f"{database.port}/{quote(database.name, safe='')}"
    )
    return f"{url}?{database.options}" if database.options else url
