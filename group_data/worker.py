"""Settings of the `worker` group: Celery workers (systemd units airflow-worker@N).

Cluster-wide worker settings (worker_concurrency, default_queue, worker_log_server_port)
are in group_data/all.py.
"""

# Celery worker processes per worker host are the units airflow-worker@1 .. airflow-worker@N,
# each with worker_concurrency task slots and the Celery hostname worker<N>@<host>. The host's
# autoscaler (airflow-cluster-autoscaler.service) starts and stops them: N follows the queued +
# running tasks of the queues the workers serve, read from the broker, divided by
# worker_concurrency and shared between the worker hosts (`python -m ops scale|autoscale|drain`
# steer it by hand).

# System user of the host's task log server (airflow-worker-logs.service): it holds [api]
# secret_key, which the task code (airflow_user) must not read, and reads the task logs through
# airflow_group.
log_server_user = "airflow-logs"

# Fewest instances on each worker host, whatever the load (0: none when idle).
autoscale_min_instances = 1
# Most instances on each worker host: each takes worker_concurrency task processes' memory.
autoscale_max_instances = 3
# Seconds the load must stay below the running instances before one of them stops (warmly:
# its running tasks finish first); the window starts again after each stop. Scale-up is
# immediate.
autoscale_cooldown = 30
# Seconds between two looks of the autoscaler at the broker (the Helm chart's KEDA rule: 5).
autoscale_interval = 5
# Seconds systemd lets a stopping worker finish its running tasks (Celery warm shutdown) before
# it kills them (TimeoutStopSec): keep it above the longest task you want to survive a restart.
worker_stop_timeout = 600
