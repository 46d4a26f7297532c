"""Airflow's metadata database: PostgreSQL on the `postgres` host, or an external one.

`build_database` derives, once, from the inventory where the database is, who may connect
to it (pg_hba.conf's entries) and how many connections the inventory's Airflow processes may
open (max_connections). The templates and tasks only print these values; the URLs that carry
the password are made from them with the secrets (`sql_alchemy_conn`, `celery_result_backend`,
`worker_result_backend`).

Two roles: the metadata role (postgres_user), used by the API server and scheduler hosts only,
owns the database; the worker hosts store their Celery task results as the Celery results role
(celery_database_user), which may only read and write Celery's result tables (created and
granted by the deploy: templates/usr/local/sbin/airflow-cluster-db.j2). A worker host never
holds the metadata role's password.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from .database_url import parse_database_url
from .errors import ClusterConfigError
from .groups import CONTROL_PLANE_GROUPS
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
    # The metadata role (API server and scheduler hosts).
    user: str
    # The Celery results role (worker hosts): Celery's result tables only.
    celery_user: str
    # Extra libpq parameters from external_database_url, e.g. "sslmode=require" ("" when none).
    options: str
    # Address of the `postgres` host; None when the database is external (then the fields
    # below are empty: the deploy does not manage that server).
    postgres_address: str | None
    # Addresses of the hosts that connect as the metadata role (API server and scheduler
    # hosts) and as the Celery results role (worker hosts), in inventory order, once each.
    clients: tuple[str, ...]
    worker_clients: tuple[str, ...]
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
    celery_user = settings["celery_database_user"]
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
        _check_roles(parsed.user, celery_user)
        return Database(
            host=parsed.host, port=parsed.port, name=parsed.name, user=parsed.user,
            celery_user=celery_user, options=parsed.query, postgres_address=None, clients=(),
            worker_clients=(), hba_entries=(),
            connection_demand={}, max_connections=None,
        )

    address = addresses_of("postgres")[0]
    name, user = settings["postgres_database"], settings["postgres_user"]
    _check_roles(user, celery_user)
    clients = tuple(dict.fromkeys(a for g in CONTROL_PLANE_GROUPS for a in addresses_of(g)))
    worker_clients = tuple(dict.fromkeys(addresses_of("worker")))
    # The postgres superuser over the local socket only; each Airflow role, to its database
    # only, from the addresses of the hosts that use it only, with a SCRAM password.
    hba = [HbaEntry("local", "all", "postgres", "", "peer")]
    hba += [HbaEntry("host", name, user, host_network(a), "scram-sha-256") for a in clients]
    hba += [HbaEntry("host", name, celery_user, host_network(a), "scram-sha-256")
            for a in worker_clients]
    demand = _connection_demand(groups, postgres_settings["postgres_connection_budget"])
    reserve = postgres_settings["postgres_reserved_connections"]
    return Database(
        host=address, port=settings["postgres_port"], name=name, user=user,
        celery_user=celery_user, options="", postgres_address=address, clients=clients,
        worker_clients=worker_clients, hba_entries=tuple(hba),
        connection_demand=demand,
        max_connections=max(sum(demand.values()) + reserve, POSTGRES_MIN_CONNECTIONS),
    )


def _check_roles(user: str, celery_user: str) -> None:
    if celery_user == user:
        raise ClusterConfigError(
            f"celery_database_user is {celery_user!r}, the metadata database's role too: the "
            "workers' role must be another one (it may only touch Celery's result tables)"
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
    """Celery's `result_backend` of the API server and scheduler hosts: the same database
    through SQLAlchemy, as the metadata role."""
    return _postgres_url("db+postgresql", database, password)


def worker_result_backend(database: Database, celery_password: str) -> str:
    """Celery's `result_backend` of the worker hosts: as the Celery results role."""
    return _postgres_url("db+postgresql", database, celery_password, database.celery_user)


def _postgres_url(scheme: str, database: Database, password: str, user=None) -> str:
    user = quote(user or database.user, safe="")
    url = (
        f"{scheme}://{user}:{quote(password, safe='')}@{url_host(database.host)}:"
        f"{database.port}/{quote(database.name, safe='')}"
    )
    return f"{url}?{database.options}" if database.options else url
