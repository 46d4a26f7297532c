"""Settings of the `scheduler` group: scheduler, DAG processor and triggerer on each host."""

# Port of the scheduler's health server (GET /health) on each scheduler host.
scheduler_health_port = 8974
# Seconds `systemctl (re)start airflow-scheduler` waits for the health server to answer
# (the rolling restart moves to the next host only after that).
scheduler_start_timeout = 180
# Processes each DAG processor parses DAG files with ([dag_processor] parsing_processes).
dag_processor_parsing_processes = 2
# Seconds between two looks of each DAG processor for new, changed and deleted files in every
# DAG bundle ([dag_processor] refresh_interval; Airflow's default is 300). A deploy that ships a
# DAG, or a push to dags_git_url, is parsed and visible within about this long plus a parse.
dag_bundle_refresh_interval = 10
# Seconds without a heartbeat after which the scheduler fails a running task's try, e.g. one
# whose worker host lost power ([scheduler] task_instance_heartbeat_timeout; Airflow's default
# is 300). A task with retries left then runs again on another worker. Running tasks heartbeat
# every 5 s through the Execution API, retrying a failed call for about 30 s.
task_heartbeat_timeout = 120
