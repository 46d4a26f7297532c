"""Settings of the `web` group: the Airflow API servers behind the load balancer.

The port is `api_port` in group_data/all.py (HAProxy's backends need it too).
"""

# uvicorn worker processes of each API server ([api] workers); roughly the host's CPU count.
api_workers = 2
# Seconds `systemctl (re)start airflow-api-server` waits for the API to answer its health check
# (the rolling restart moves to the next host only after that).
api_start_timeout = 180
# Seconds a rolling restart (deploy, `python -m ops restart web`) lets the requests under way on
# an API server finish after draining it in HAProxy, before restarting it anyway.
api_drain_timeout = 30
