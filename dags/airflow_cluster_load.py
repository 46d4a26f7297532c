"""Example load DAGs of the airflow-cluster deploy: `tasks` tasks that each sleep `seconds`,
all free to run at once.

- airflow_cluster_load: no retries, to watch the worker autoscalers grow and shrink the
  workers (`python -m ops workers` shows the instances each worker host runs meanwhile); the
  lab tests and bench/autoscale.py use it.
- airflow_cluster_drill: each task retried up to 3 times, for the fault drills
  (tests/lab/test_zz_drills.py, bench/drills.py), which count the failed and retried tries. A
  task whose worker host dies mid-task stops heartbeating; the scheduler fails that try after
  `task_heartbeat_timeout` seconds (group_data/scheduler.py) and runs it again on another worker.

Trigger one with a configuration, e.g. from the REST API:
    POST /api/v2/dags/airflow_cluster_load/dagRuns
    {"logical_date": null, "conf": {"tasks": 100, "seconds": 20}}
"""

import socket
import time
from datetime import timedelta

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


def load_dag(dag_id, default_args):
    """`tasks` sleeping tasks, every one free to run at once: the workers, not the DAG, are
    the limit."""

    @dag(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
        catchup=False,
        tags=["airflow-cluster", "example"],
        params={
            "tasks": Param(100, type="integer", minimum=1, maximum=1000),
            "seconds": Param(20, type="integer", minimum=0, maximum=3600),
        },
        max_active_tasks=1000,
        default_args=default_args,
    )
    def load():
        sleep.partial(seconds="{{ params.seconds }}").expand(index=plan("{{ params.tasks }}"))

    return load()


# No retries: a task killed by a scale-in must show as failed, not be hidden by a retry.
load_dag("airflow_cluster_load", {"retries": 0})
# A try lost with its host is run again: the drills count how many were.
load_dag("airflow_cluster_drill", {"retries": 3, "retry_delay": timedelta(seconds=5)})
