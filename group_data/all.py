"""Settings for every host. Each name is part of the deploy's public interface.

Override a value here, in `group_data/<group>.py`, or per host in `inventory.py`.
An unknown name anywhere is rejected before the deploy touches a host (`python -m ops check`).
"""

# --- Control machine --------------------------------------------------------------------------
# Where the generated secrets live (JSON, mode 0600, outside git). Relative to the project root.
secrets_file = ".secrets/cluster.json"

# --- Network access from the hosts ------------------------------------------------------------
# HTTP(S) proxy the hosts use for apt and pip, e.g. "http://proxy.example:3128"; None = direct.
http_proxy = None
# Host names / suffixes that bypass the proxy (the cluster's own addresses are always added).
no_proxy = ["localhost", "127.0.0.1"]
# PEM files on the control machine to add to every host's trust store (corporate/egress CAs).
extra_ca_certs = []
# A local Debian mirror used instead of the distribution's sources, e.g.
# "http://mirror.example/debian" (suites <codename> and <codename>-updates, component main),
# reached directly, not through http_proxy. None = apt's sources as the hosts have them. While
# set, the deploy owns /etc/apt/sources.list; the host's original sources (sources.list and
# sources.list.d/debian.sources) are kept in /etc/apt/airflow-cluster-original/ and put back
# when it is None again. Debian hosts only: the run stops on an Ubuntu or RHEL-family host
# while it is set (point their own sources or .repo files at your mirror instead).
apt_mirror = None
# The security archive used with apt_mirror (suite <codename>-security): Debian's own by
# default; set your mirror of it for hosts with no route to the internet.
apt_security_mirror = "http://security.debian.org/debian-security"

# --- Base system ------------------------------------------------------------------------------
# More packages installed on every host, named as its package manager names them, besides
# what the deploy itself needs there (its family's base packages and Python:
# cluster/systems.py) and each role's (tasks/packages.py).
base_packages = ["less"]
# Kernel settings applied on every host (persisted in /etc/sysctl.d/60-airflow-cluster.conf).
# vm.overcommit_memory=1: Redis background saves (fork) must not fail under memory pressure.
# net.core.somaxconn / tcp_max_syn_backlog: listen backlog for Redis, HAProxy and the API servers.
sysctl = {
    "vm.overcommit_memory": 1,
    "net.core.somaxconn": 4096,
    "net.ipv4.tcp_max_syn_backlog": 4096,
}

# --- Airflow system user and paths ------------------------------------------------------------
# System user and group that run every Airflow process.
airflow_user = "airflow"
airflow_group = "airflow"
# AIRFLOW_HOME: airflow.cfg, dags/, plugins/ (owned by root, readable by the airflow group).
airflow_home = "/opt/airflow"
# Writable state: logs of every component.
airflow_log_dir = "/var/log/airflow"
# Writable state: pid files, scratch space for running tasks.
airflow_state_dir = "/var/lib/airflow"

# --- Database ---------------------------------------------------------------------------------
# PostgreSQL URL for Airflow's metadata DB when the inventory has no `postgres` group, e.g.
# "postgresql://airflow@db.example:5432/airflow" (the password comes from the secrets file).
external_database_url = None
# Port PostgreSQL listens on (the `postgres` group).
postgres_port = 5432
# Name of Airflow's metadata database (the `postgres` group creates it).
postgres_database = "airflow"
# PostgreSQL role the API servers and schedulers connect as (password: postgres_password in the
# secrets file). It owns the metadata database.
postgres_user = "airflow"
# PostgreSQL role the workers store Celery task results as (password: celery_db_password in the
# secrets file); it may only read and write Celery's two result tables. The `postgres` group
# creates it; with external_database_url, create it on that server first (LOGIN, that password).
celery_database_user = "airflow_celery"

# --- Broker -----------------------------------------------------------------------------------
# Name the sentinels monitor the Redis primary under; Celery's transport options name it too.
redis_master_name = "airflow"

# --- Ports ------------------------------------------------------------------------------------
# Redis server port (the `redis` group).
redis_port = 6379
# Redis Sentinel port (the `redis` group).
sentinel_port = 26379
# Airflow API server port on each `web` host (HAProxy's backends).
api_port = 8080
# HTTPS port on the `lb` hosts (HTTP on `lb_http_port` redirects to it).
lb_https_port = 443
# Plain HTTP port on the `lb` hosts: redirects to HTTPS.
lb_http_port = 80
# HAProxy stats page port on the `lb` hosts: HTTPS only, behind the generated stats password.
lb_stats_port = 8404

# --- Host firewall ----------------------------------------------------------------------------
# nftables on every host (table inet airflow_cluster): each service port above admits only the
# hosts that use it (API servers: the lb hosts; worker and triggerer log servers: the API
# servers; Redis and Sentinel: the Airflow and redis hosts; PostgreSQL: the Airflow hosts) and
# admin_sources; SSH and the lb hosts' HTTPS and HTTP ports admit anyone; the rest is refused.
# False: no firewall of the deploy's (for those who manage their own).
firewall = True
# Addresses or networks of operators and monitoring (IPv4, e.g. "10.0.5.0/24"): admitted on every
# service port, the scheduler health servers and the HAProxy stats page included (and needed
# there by `python -m ops status|check` when run from them).
admin_sources = []

# --- Load balancer ----------------------------------------------------------------------------
# Virtual IP shared by two `lb` hosts (keepalived); required when the lb group has 2 hosts.
lb_vip = None

# --- Airflow (web, scheduler and worker hosts) ------------------------------------------------
# Airflow version; every node installs the pinned, lab-tested lock
# files/airflow/requirements-<version>.lock (no constraints file fetched from the internet).
airflow_version = "3.3.2"
# Symlink to the virtualenv of the Airflow version in use. Each version is installed into a
# venv of its own, <airflow_venv>-<airflow_version> (owned by root, run as airflow_user), while
# the running one is left alone; a version change switches the symlink (tasks/airflow.py,
# `python -m ops upgrade`). A process keeps the venv it started with.
airflow_venv = "/opt/airflow/venv"
# uv release that installs each Airflow lock into its venv (uv pip install --no-deps
# --require-hashes: no resolution, every file checked against the lock, bytecode compiled,
# unpacked wheels shared through uv's cache in /var/cache/airflow-cluster/uv, so a second
# version installs in seconds). The control machine takes its binary from uv's wheel for the
# hosts' architecture and uploads it (/opt/airflow-cluster/uv-<version>).
uv_version = "0.13.9"
# True: the control machine downloads the lock's wheels for the hosts' platform once (cached in
# .cache/wheelhouse, each checked against the lock's hashes) and uploads to each Airflow host
# those it lacks (/var/cache/airflow-cluster/wheelhouse); hosts install with no package index at
# all, so they need no route to one. False: each host downloads them itself from the index,
# through http_proxy (the same hashes checked).
wheelhouse = True
# Task instances each scheduler lets run at once, across all DAGs ([core] parallelism).
parallelism = 32
# Task instances allowed to run at once within one DAG ([core] max_active_tasks_per_dag).
max_active_tasks_per_dag = 16
# Active runs of one DAG at once ([core] max_active_runs_per_dag).
max_active_runs_per_dag = 16
# Celery queue of tasks that name none; every worker consumes it ([operators] default_queue).
default_queue = "default"
# Task slots (prefork processes) of each Celery worker process ([celery] worker_concurrency).
worker_concurrency = 8
# Seconds a started task may run before the broker hands it to another worker (Celery's
# visibility_timeout): keep it above the longest task.
celery_visibility_timeout = 86400
# Seconds a scheduler keeps retrying to hand a task to the broker while Redis fails over
# (Celery's publish retries; Airflow's [celery] operation_timeout is set 5 s above). Keep it
# above a failover (sentinel_down_after_ms plus about 2 s): a task published meanwhile would
# otherwise fail a try.
celery_publish_retry_seconds = 10
# Port of the task log server on each worker host: the API servers fetch task logs from it.
worker_log_server_port = 8793
# Username of the Airflow admin (FAB); its password is admin_password in the secrets file.
airflow_admin_user = "admin"
# E-mail address recorded for the admin user.
airflow_admin_email = "admin@airflow-cluster.invalid"

# --- DAGs and plugins -------------------------------------------------------------------------
# Seconds a DAG processor waits at least before writing a changed DAG to the database again
# ([core] min_serialized_dag_update_interval; Airflow's default is 30): how soon a changed
# DAG is served. A DAG that changes on every parse (generated from the clock, say) is written
# this often.
serialized_dag_update_interval = 10
# Folder of DAG files on the control machine (relative to the project dir), synced to every
# scheduler and worker host by each deploy (Airflow's `dags-folder` bundle).
dags_dir = "dags"
# Folder of Airflow plugins on the control machine, synced to every Airflow host; the services
# that load plugins restart only when a file in it changed.
plugins_dir = "plugins"
# A Git repository of DAGs (Airflow's GitDagBundle, bundle "dags-git"), e.g.
# "ssh://git@git.example/data/dags.git" or "git@git.example:data/dags.git": DAG authors publish
# by pushing, without a deploy. None = DAGs come from dags_dir only (dags_dir is kept either way).
dags_git_url = None
# Branch (or tag) of dags_git_url the DAG processors follow.
dags_git_ref = "main"
# Folder of the repository holding the DAG files; None = the repository's top.
dags_git_subdir = None
# Private SSH key the hosts read dags_git_url with (a file on the control machine); None = a
# deploy key generated once into the secrets dir (git/id_ed25519; register git/id_ed25519.pub
# with the repository as a read-only deploy key: `python -m ops check` prints it).
dags_git_key = None
# known_hosts file on the control machine with the Git server's host keys; None = trust the key
# the server shows first and check it ever after (ssh's accept-new).
dags_git_known_hosts = None
