"""The whole cluster: `pyinfra inventory.py deploy.py` (or `--limit GROUP` for one role).

The model is built and validated from the inventory before any operation is added, so a
bad inventory or a bad secret stops the run with one message and nothing on any host
changes. Roles run in dependency order, each gated on the host's groups.
"""

import os

from pyinfra import host, inventory

from cluster.model import build_cluster
from cluster.secret_store import load_or_create
from tasks import common, postgres, redis
from tasks import airflow, scheduler, web, worker
from tasks import lb

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))

cluster = build_cluster(inventory)
secrets = load_or_create(cluster.settings["secrets_file"], project_dir=PROJECT_DIR)

common.apply(cluster, secrets)
if "postgres" in host.groups:
    postgres.apply(cluster, secrets)
if "redis" in host.groups:
    redis.apply(cluster, secrets)
# Airflow: install, airflow.cfg, DAGs and (on one host) the database migration, on every
# Airflow host before any Airflow service (re)starts; then each role's services.
if set(airflow.AIRFLOW_GROUPS) & set(host.groups):
    airflow_changes = airflow.apply(cluster, secrets)
    if "web" in host.groups:
        web.apply(cluster, secrets, airflow_changes)
    if "scheduler" in host.groups:
        scheduler.apply(cluster, secrets, airflow_changes)
    if "worker" in host.groups:
        worker.apply(cluster, secrets, airflow_changes)
# Load balancer last: HAProxy in front of the API servers, keepalived holding the VIP.
if "lb" in host.groups:
    lb.apply(cluster, secrets)
