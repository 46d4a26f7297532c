"""Example DAG of the airflow-cluster deploy's fault drills: `tasks` tasks that each sleep
`seconds`, all free to run at once, each retried up to 3 times.

A task whose worker host dies mid-task stops heartbeating; the scheduler fails that try after
`task_heartbeat_timeout` seconds (group_data/scheduler.py) and, the task having retries left,
runs it again on whatever worker takes it. The drills (tests/lab/test_zz_drills.py,
bench/drills.py) trigger it while they break a host, then count the failed and retried tries:
    POST /api/v2/dags/airflow_cluster_drill/dagRuns
    {"logical_date": null, "conf": {"tasks": 50, "seconds": 5}}
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
    """Sleep `seconds`; return the host this try ran on."""
    print(f"task {index} sleeping {seconds} s on {socket.gethostname()}")
    time.sleep(int(seconds))
    return socket.gethostname()


@dag(
    dag_id="airflow_cluster_drill",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    tags=["airflow-cluster", "example"],
    params={
        "tasks": Param(50, type="integer", minimum=1, maximum=1000),
        "seconds": Param(5, type="integer", minimum=0, maximum=3600),
    },
    # Every task may run at once: the workers, not the DAG, are the limit.
    max_active_tasks=1000,
    # A try lost with its host is run again: the drills count how many were.
    default_args={"retries": 3, "retry_delay": timedelta(seconds=5)},
)
def airflow_cluster_drill():
    sleep.partial(seconds="{{ params.seconds }}").expand(index=plan("{{ params.tasks }}"))


airflow_cluster_drill()
