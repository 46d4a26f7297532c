"""Settings of the `worker` group: Celery workers (systemd units airflow-worker@N).

Cluster-wide worker settings (worker_concurrency, default_queue, worker_log_server_port)
are in group_data/all.py.
"""

# Celery worker processes per worker host: units airflow-worker@1 .. airflow-worker@N, each
# with worker_concurrency task slots and the Celery hostname worker<N>@<host>.
worker_instances = 1
# Seconds systemd lets a stopping worker finish its running tasks (Celery warm shutdown) before
# it kills them (TimeoutStopSec): keep it above the longest task you want to survive a restart.
worker_stop_timeout = 600
