"""What a deploy run prepares on the control machine, once, before any host operation: the
validated model, the secrets (generated on first use), the load balancer's TLS material, the
DAG repository's deploy key, and the connection URLs that carry secrets. The roles receive it
ready-made.
"""

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyinfra.api import State
from pyinfra.context import ctx_state

from .broker import broker_url, transport_options
from .dag_sources import check_local_files
from .database import celery_result_backend, sql_alchemy_conn, worker_result_backend
from .deploy_key import ensure_deploy_key
from .model import Cluster, build_cluster
from .secret_store import load_or_create
from .tls import TlsFiles, ensure_tls


@dataclass(frozen=True)
class Connections:
    """Where Airflow connects, each URL with its password (airflow.cfg only)."""

    # The metadata role: API server and scheduler hosts only.
    sql_alchemy_conn: str
    celery_result_backend: str
    # The Celery results role: worker hosts.
    worker_result_backend: str
    celery_broker_url: str
    celery_broker_transport_options: Mapping[str, Any]


@dataclass(frozen=True)
class Run:
    cluster: Cluster
    secrets: Mapping[str, str]
    connections: Connections
    tls: TlsFiles
    # The private key the hosts read the DAG repository with (a control-machine file), when
    # the cluster has one over SSH (cluster.dags.git).
    dags_git_key: Path | None


def prepare(inventory, project_dir=None) -> Run:
    """Validate the inventory, then make or load what lives on the control machine.
    Raises ClusterConfigError (one line) on any problem; touches no host."""
    cluster = build_cluster(inventory, project_dir)
    check_local_files(cluster.dags)
    secrets = load_or_create(cluster.settings["secrets_file"], project_dir=project_dir)
    git = cluster.dags.git
    return Run(
        cluster=cluster,
        secrets=secrets,
        connections=connections(cluster, secrets),
        tls=ensure_tls(cluster.tls),
        dags_git_key=ensure_deploy_key(git.key, git.key_generated) if git and git.key else None,
    )


def connections(cluster: Cluster, secrets: Mapping[str, str]) -> Connections:
    database, broker = cluster.database, cluster.broker
    return Connections(
        sql_alchemy_conn=sql_alchemy_conn(database, secrets["postgres_password"]),
        celery_result_backend=celery_result_backend(database, secrets["postgres_password"]),
        worker_result_backend=worker_result_backend(database, secrets["celery_db_password"]),
        celery_broker_url=broker_url(broker, secrets["redis_password"]),
        celery_broker_transport_options=transport_options(broker, secrets["redis_password"]),
    )


# pyinfra executes deploy.py once per host, each in a greenlet of one process. `prepare`
# never yields to another greenlet (no network, no subprocess: files and cryptography
# only), so the first host's execution runs it to the end and the others find its result.
# Keyed on the State itself (not pyinfra's `state` proxy, which outlives every run).
_RUNS: "weakref.WeakKeyDictionary[State, Run]" = weakref.WeakKeyDictionary()


def prepare_once(inventory, project_dir=None) -> Run:
    """`prepare` for the current pyinfra run, done by the first host that asks."""
    state = ctx_state.get()
    if state not in _RUNS:
        _RUNS[state] = prepare(inventory, project_dir)
    return _RUNS[state]
