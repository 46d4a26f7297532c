"""Health check of the airflow-cluster deploy, run on a Celery worker like any task:

- broker: the sentinels agree on a Redis primary, and it answers as a primary;
- database: the database answers the worker's Celery result backend (its own role, which may
  use Celery's result tables only);
- workers: the Celery workers answer a ping (at least `min_workers` of them);
- least privilege: the worker host's configuration holds none of the cluster's secrets, the
  log server's file is unreadable, and the worker's database role cannot read Airflow's tables.

Hourly once unpaused; trigger it by hand after a change. Every check reads the worker's own
airflow.cfg, so it tests what the tasks use.
"""

from urllib.parse import unquote, urlsplit

import pendulum
from airflow.sdk import Param, dag, task


def _broker():
    """Sentinel addresses and options from [celery] broker_url and its transport options."""
    import json

    from airflow.configuration import conf

    sentinels, password = [], None
    for part in conf.get("celery", "broker_url").split(";"):
        url = urlsplit(part.strip())
        sentinels.append((url.hostname, url.port or 26379))
        password = unquote(url.password) if url.password else None
    options = conf.getsection("celery_broker_transport_options") or {}
    sentinel_kwargs = json.loads(options.get("sentinel_kwargs") or "{}")
    return sentinels, password, options["master_name"], sentinel_kwargs


@task
def broker_primary() -> str:
    """The sentinels name a primary, and that server says it is the primary."""
    from redis.sentinel import Sentinel

    sentinels, password, master_name, sentinel_kwargs = _broker()
    sentinel = Sentinel(
        sentinels, sentinel_kwargs=sentinel_kwargs, password=password, socket_timeout=5
    )
    address = sentinel.discover_master(master_name)
    role = sentinel.master_for(master_name, socket_timeout=5).info("replication")["role"]
    if role != "master":
        raise RuntimeError(f"sentinels name {address} as primary, but it reports role {role!r}")
    replicas = sentinel.discover_slaves(master_name)
    print(f"Redis primary {address[0]}:{address[1]}, replicas {replicas}")
    return f"{address[0]}:{address[1]}"


def _results_engine():
    """The worker's Celery result backend, as SQLAlchemy connects to it."""
    from airflow.configuration import conf
    from sqlalchemy import create_engine

    return create_engine(conf.get("celery", "result_backend").removeprefix("db+"),
                         pool_pre_ping=True)


@task
def database() -> str:
    """The database answers the worker's Celery result backend, which can read its tables."""
    from sqlalchemy import text

    engine = _results_engine()
    try:
        with engine.connect() as connection:
            server = connection.execute(text("SHOW server_version")).scalar()
            results = connection.execute(text("SELECT count(*) FROM celery_taskmeta")).scalar()
    finally:
        engine.dispose()
    print(f"PostgreSQL {server}, {results} Celery task results")
    return server


# What only API server and scheduler hosts may hold: (section, option) of airflow.cfg.
_CLUSTER_SECRETS = (("core", "fernet_key"), ("api", "secret_key"), ("api_auth", "jwt_secret"))


@task
def worker_holds_no_secrets() -> list[str]:
    """What task code on a worker host can reach holds no cluster secret: each attempt must be
    refused. Fails, naming what it got, otherwise."""
    import configparser
    import os

    from sqlalchemy import exc, text

    refused, reached = [], []
    config_path = os.environ.get("AIRFLOW_CONFIG") or os.path.join(
        os.environ.get("AIRFLOW_HOME", "/opt/airflow"), "airflow.cfg")
    config = configparser.RawConfigParser()
    config.read(config_path)
    for section, option in _CLUSTER_SECRETS:
        (reached if config.has_option(section, option) else refused).append(
            f"[{section}] {option} in {config_path}")
    conn = config.get("database", "sql_alchemy_conn", fallback="")
    (refused if conn.startswith("sqlite") else reached).append(
        "the metadata database's URL in airflow.cfg")
    log_server_config = os.path.join(os.path.dirname(config_path), "logserver.cfg")
    try:
        with open(log_server_config):
            reached.append(f"reading {log_server_config}")
    except PermissionError:
        refused.append(f"reading {log_server_config}")
    except FileNotFoundError:
        pass  # not a worker host of this deploy
    engine = _results_engine()
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM connection")).scalar()
            reached.append("Airflow's connection table as the result backend's role")
    except exc.ProgrammingError:  # permission denied
        refused.append("Airflow's connection table as the result backend's role")
    finally:
        engine.dispose()
    for line in refused:
        print(f"refused: {line}")
    if reached:
        raise RuntimeError(f"a task on this worker reached: {'; '.join(reached)}")
    return refused


@task
def workers_answer(params=None) -> list[str]:
    """At least `params["min_workers"]` Celery workers answer a ping through the broker."""
    from airflow.providers.celery.executors.celery_executor_utils import app

    min_workers = int(params["min_workers"])

    replies = app.control.ping(timeout=5.0) or []
    names = sorted(name for reply in replies for name in reply)
    print(f"{len(names)} workers answered: {names}")
    if len(names) < min_workers:
        raise RuntimeError(f"{len(names)} Celery workers answered a ping, expected {min_workers}")
    return names


@dag(
    dag_id="airflow_cluster_health",
    schedule="@hourly",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    params={"min_workers": Param(1, type="integer", minimum=1)},
    tags=["airflow-cluster", "health"],
)
def airflow_cluster_health():
    broker_primary()
    database()
    workers_answer()
    worker_holds_no_secrets()


airflow_cluster_health()
