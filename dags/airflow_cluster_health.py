"""Health check of the airflow-cluster deploy, run on a Celery worker like any task:

- broker: the sentinels agree on a Redis primary, and it answers as a primary;
- database: the metadata database answers and carries Airflow's schema (reached through
  the Celery result backend's URL: tasks do not get Airflow's own database setting);
- workers: the Celery workers answer a ping (at least `min_workers` of them).

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


@task
def database() -> str:
    """The metadata database answers and holds a migrated Airflow schema. Airflow keeps its
    own database setting from tasks: reach it as the Celery result backend does."""
    from airflow.configuration import conf
    from sqlalchemy import create_engine, text

    url = conf.get("celery", "result_backend").removeprefix("db+")
    engine = create_engine(url, pool_pre_ping=True)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            server = connection.execute(text("SHOW server_version")).scalar()
    finally:
        engine.dispose()
    if not version:
        raise RuntimeError("the metadata database has no Airflow schema version")
    print(f"PostgreSQL {server}, Airflow schema {version}")
    return version


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


airflow_cluster_health()
