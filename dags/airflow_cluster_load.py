"""Example load DAG of the airflow-cluster deploy: `tasks` tasks that each sleep `seconds`,
all free to run at once, to watch the worker autoscalers grow and shrink the workers.

Trigger it with a configuration, e.g. from the REST API:
    POST /api/v2/dags/airflow_cluster_load/dagRuns
    {"logical_date": null, "conf": {"tasks": 100, "seconds": 20}}
`python -m ops workers` shows the instances each worker host runs meanwhile. The lab tests
and bench/autoscale.py use it.
"""

import socket
import time

import pendulum
from airflow.sdk import Param, dag, task


@task
def plan(tasks: str) -> list[int]:
    """One index per task to map over (`tasks` arrives rendered: a string)."""
    return list(range(int(tasks)))


@task
def sleep(index: int, seconds: str) -> str:
    """Sleep `seconds`; return the host this task ran on."""
    print(f"task {index} sleeping {seconds} s on {socket.gethostname()}")
    time.sleep(int(seconds))
    return socket.gethostname()


@dag(
    dag_id="airflow_cluster_load",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["airflow-cluster", "example"],
    params={
        "tasks": Param(100, type="integer", minimum=1, maximum=1000),
        "seconds": Param(20, type="integer", minimum=0, maximum=3600),
    },
    # Every task may run at once: the workers, not the DAG, are the limit.
    max_active_tasks=1000,
    # No retries: a task killed by a scale-in must show as failed, not be hidden by a retry.
    default_args={"retries": 0},
)
def airflow_cluster_load():
    sleep.partial(seconds="{{ params.seconds }}").expand(index=plan("{{ params.tasks }}"))


airflow_cluster_load()
