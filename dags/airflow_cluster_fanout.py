"""Example fan-out DAG of the airflow-cluster deploy: `WIDTH` independent tasks the Celery
workers share, then one task that reports which worker hosts ran them.

Trigger it from the UI or the REST API (`POST /api/v2/dags/airflow_cluster_fanout/dagRuns`);
the lab tests do, and check that tasks ran on every worker host.
"""

import socket
import time
from collections import Counter
from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

# Parallel tasks per run: more than one worker's task slots, so every worker gets some.
WIDTH = 24
# Seconds each task works (sleeps): long enough for the tasks to spread over the workers.
WORK_SECONDS = 3


@task
def work(index: int) -> str:
    """Sleep a little; return the host this task ran on."""
    hostname = socket.gethostname()
    print(f"task {index} running on {hostname}")
    time.sleep(WORK_SECONDS)
    return hostname


@task
def summary(hostnames: list[str]) -> dict[str, int]:
    """How many tasks each worker host ran."""
    counts = dict(sorted(Counter(hostnames).items()))
    print(f"tasks per worker host: {counts}")
    return counts


@dag(
    dag_id="airflow_cluster_fanout",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["airflow-cluster", "example"],
    # A task that loses its worker or its Execution API call (a restart, a failover) is
    # run again rather than failing the run, as in any production DAG.
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
)
def airflow_cluster_fanout():
    summary([work.override(task_id=f"work_{index:02d}")(index) for index in range(WIDTH)])


airflow_cluster_fanout()
