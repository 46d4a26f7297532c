"""One client of a deployed cluster (the lab by default) for the end-to-end tests (tests/lab)
and the benchmarks (bench/): what an operator reaches from the control machine.

    from lab.client import Lab, run_pyinfra, wait_for
    lab = Lab()                                  # inventory.py: inventory, model, secrets
    lab.run("redis1", "systemctl is-active redis-server").stdout   # SSH: CompletedProcess
    lab.host("redis1").service("redis-server").is_running          # the same SSH, testinfra
    lab.server(address).ping(); lab.wait_healthy()                 # Redis and Sentinel
    api = lab.api(); api.login(lab.secrets["admin_password"])      # Airflow REST API, HTTPS
    lab.vip_holders(); lab.backend_status(address)                 # the load balancer
    run = run_pyinfra("--limit", "redis")        # `pyinfra -y --json`, results parsed
    run_ops("status", "--json")                  # `python -m ops ...`: CompletedProcess
    failover_drill(lab)                          # SIGKILL the Redis primary under a writer
    lab.instances("worker1"); lab.broker_load("worker1"); lab.keda_count("web1")  # workers
    lab.problems(); lab.wait_cluster_healthy()   # every component of the cluster
    lab.kill_host("web2"); lab.start_host("web2")  # the lab's power controls
    DRILLS["worker-plug"](lab).line()            # lab.client.tier_drills: a fault drill

One module per concern: waiting (wait_for), runs (run_lab, run_pyinfra), ssh, broker (Redis
and Sentinel), lb, api (Airflow), drills (the Redis failover drill), workers (the
autoscalers), health (is every component up), power (the lab's plugs, cables and consoles),
poller (a client of the public URL), fault_drills and tier_drills (the fault drills). Lab,
here, composes the parts.

Every connection uses the inventory's addresses, SSH key and known hosts, the secrets file's
passwords and the cluster's CA, and never a proxy. Loading an inventory imports pyinfra's
CLI, which monkey-patches the standard library with gevent: this package imports it first,
before any of its modules, so the sockets, threads and subprocesses made here are all gevent's.
"""

# First: loading an inventory imports pyinfra's CLI, which monkey-patches with gevent.
from cluster.model import build_cluster, load_inventory  # isort: skip
from cluster.run import connections
from cluster.secret_store import load as load_secrets

import functools
import threading

from lab.client.api import AirflowAccess, Api, ApiError
from lab.client.broker import CLIENT_TIMEOUT, NO_RETRY, REJOIN_TIMEOUT, BrokerAccess
from lab.client.drills import (
    FAILOVER_TIMEOUT, GOAL_SECONDS, RETRY_INTERVAL, DrillResult, Write, Writer, failover_drill,
)
from lab.client.fault_drills import Drill, DrillReport as FaultReport
from lab.client.health import HealthAccess
from lab.client.lb import LoadBalancerAccess
from lab.client.poller import Poller
from lab.client.power import PowerAccess
from lab.client.runs import (
    DEPLOY_TIMEOUT, INVENTORY, PROJECT, PYINFRA, PyinfraRun, run_lab, run_ops, run_pyinfra,
)
from lab.client.ssh import SshAccess
from lab.client.waiting import wait_for
from lab.client.workers import WorkerAccess

__all__ = [
    "CLIENT_TIMEOUT", "DEPLOY_TIMEOUT", "FAILOVER_TIMEOUT", "GOAL_SECONDS", "INVENTORY",
    "NO_RETRY", "PROJECT", "PYINFRA", "REJOIN_TIMEOUT", "RETRY_INTERVAL",
    "Api", "ApiError", "Drill", "DrillResult", "FaultReport", "Lab", "Poller", "PyinfraRun", "Write", "Writer",
    "failover_drill", "run_lab", "run_ops", "run_pyinfra", "wait_for",
]


class Lab(SshAccess, BrokerAccess, LoadBalancerAccess, AirflowAccess, WorkerAccess,
          HealthAccess, PowerAccess):
    """The deployed cluster of an inventory as an operator sees it: SSH to the hosts, Redis
    and Sentinel, the load balancer and the Airflow REST API over the network. The inventory
    and the model are loaded once; the secrets when first used (the first deploy makes them)."""

    def __init__(self, inventory=INVENTORY):
        self.inventory_path = str(inventory)
        self.inventory = load_inventory(self.inventory_path, project_dir=str(PROJECT))
        self.cluster = build_cluster(self.inventory, PROJECT)
        # Redis: the server address -> host name of every redis host.
        self.names = {self.cluster.node(n).address: n for n in self.cluster.groups["redis"]}
        self.master = self.cluster.broker.master_name
        self.redis_port = self.cluster.broker.port
        # SshAccess's testinfra hosts, shared between threads.
        self._hosts = {}
        self._lock = threading.Lock()

    def data(self, name):
        """The settings (pyinfra host data) of inventory host `name`."""
        return self.inventory.get_host(name).data

    @functools.cached_property
    def secrets(self) -> dict[str, str]:
        return load_secrets(self.cluster.settings["secrets_file"], project_dir=PROJECT)

    @property
    def connections(self):
        """cluster.run.Connections: the broker URL, its transport options, the DB URLs."""
        return connections(self.cluster, self.secrets)

    @property
    def password(self) -> str:
        """Redis's and Sentinel's password."""
        return self.secrets["redis_password"]
