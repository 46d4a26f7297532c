"""The whole cluster: `pyinfra inventory.py deploy.py` (or `--limit GROUP` for one role).

pyinfra executes this file once per host. The first execution prepares the run on the
control machine (cluster/run.py: the validated model, the secrets, the TLS material), so a
bad inventory or a bad secret stops the run with one message before any operation is added
and nothing on any host changes; the others reuse it. Roles run in dependency order, each
gated on the host's groups. pyinfra runs each operation on all its hosts at once, in the
order of this file: so every package of every role is installed in one apt run per host
(tasks/packages.py), and the Airflow install comes right after it.
"""

import os

from pyinfra import host, inventory

from cluster.run import prepare_once
from tasks import airflow, common, firewall, lb, postgres, redis, scheduler, selinux, web, worker

PROJECT_DIR = os.path.dirname(os.path.abspath(__file__))

run = prepare_once(inventory, PROJECT_DIR)

common.apply(run)
# RHEL family: the SELinux booleans and port labels the roles' services need, before they start.
selinux.apply()
# Each host's firewall admits the hosts that use its services before any of them starts.
firewall.apply(run)
airflow_host = bool(set(airflow.AIRFLOW_GROUPS) & set(host.groups))
# The slow step first, on every Airflow host at once: it needs nothing from the other roles.
if airflow_host:
    airflow_install = airflow.install(run)
if "postgres" in host.groups:
    postgres.apply(run)
if "redis" in host.groups:
    redis.apply(run)
# Airflow: airflow.cfg, DAGs and (on one host) the database migration, on every Airflow host
# before any Airflow service (re)starts; then each role's services, in the order an upgrade
# needs: schedulers, API servers, workers.
if airflow_host:
    airflow_changes = airflow.apply(run, airflow_install)
    if "scheduler" in host.groups:
        scheduler.apply(run, airflow_changes)
    if "web" in host.groups:
        web.apply(run, airflow_changes)
    if "worker" in host.groups:
        worker.apply(run, airflow_changes)
# Load balancer last: HAProxy in front of the API servers, keepalived holding the VIP.
if "lb" in host.groups:
    lb.apply(run)
