"""What `python -m ops status` reads, over pyinfra's connections (ops/session.py) and
Airflow's REST API at the public URL: the inputs document `assess` turns into the report.
Every host is asked at once; what cannot be asked is recorded as an error, never raised."""

from http.client import HTTPException

from pyinfra.facts.server import LinuxDistribution

from autoscaler import paths as autoscaler_paths
from cluster.model import Cluster
from cluster.net import endpoint
from cluster.services import WORKER_INSTANCES, host_units
from cluster.systems import system_of
from facts.cluster_status import AutoscalerStatus, HaproxyServers, HeldAddresses, ServiceStates
from facts.redis import RedisClusterView, RedisReplication

from ..airflow_api import AirflowApi, ApiError
from ..session import Session

# REST API calls: each gets this many seconds (a status must come back while things are bad).
API_TIMEOUT = 10


def collect(session: Session, cluster: Cluster, admin_password: str) -> dict:
    names = list(cluster.nodes)
    session.connect(names)
    return {
        "public_url": cluster.public_url,
        "vip": cluster.lb_vip,
        "hosts": session.each(names, lambda name: _host(session, cluster, name)),
        "redis": redis_inputs(session, cluster),
        "airflow": _airflow(cluster, admin_password),
    }


def _host(session: Session, cluster: Cluster, name: str) -> dict:
    node = cluster.node(name)
    vip = cluster.lb_vip is not None
    expected = host_units(node.groups, vip=vip)
    record = {"address": node.address, "groups": list(node.groups), "expected": expected,
              "error": session.unreachable.get(name)}
    if record["error"] is not None:
        return record
    try:
        release = system_of(name, session.fact(name, LinuxDistribution))
        record["expected"] = expected = host_units(node.groups, vip=vip, release=release)
        record["units"] = session.fact(name, ServiceStates, patterns=[*expected, WORKER_INSTANCES])
        if "worker" in node.groups:
            record["autoscaler"] = session.fact(name, AutoscalerStatus,
                                                command=str(autoscaler_paths.COMMAND))
        if "lb" in node.groups:
            record["haproxy"] = session.fact(name, HaproxyServers)
            record["addresses"] = session.fact(name, HeldAddresses)
    except Exception as error:  # noqa: BLE001 - a host that stops answering is the finding
        record["error"] = f"{type(error).__name__}: {error}"
    return record


def redis_inputs(session: Session, cluster: Cluster) -> dict:
    """Every sentinel's and server's answer, asked from the first redis host that answers;
    with the primary's replication offsets."""
    broker = cluster.broker
    asker = next((n for n in cluster.groups["redis"] if n not in session.unreachable), None)
    if asker is None:
        return {"error": "no redis host can be reached"}
    try:
        records = session.fact(
            asker, RedisClusterView, master=broker.master_name,
            sentinels=[endpoint(a, p) for a, p in broker.sentinels],
            servers=[endpoint(a, p) for a, p in broker.servers],
        )
        primaries = {f"{r['ip']}:{r['port']}" for r in records
                     if r["kind"] == "sentinel" and "error" not in r}
        replication = None
        if len(primaries) == 1:
            address, _, port = next(iter(primaries)).rpartition(":")
            replication = session.fact(asker, RedisReplication, server=endpoint(address, int(port)))
    except Exception as error:  # noqa: BLE001 - reported, not raised
        return {"error": f"{asker}: {type(error).__name__}: {error}"}
    return {"records": records, "replication": replication, "asked_on": asker}


def _airflow(cluster: Cluster, admin_password: str) -> dict:
    api = AirflowApi.of(cluster)
    try:
        status, health = api.call("GET", "/api/v2/monitor/health", auth=False,
                                  timeout=API_TIMEOUT)
        if status != 200:
            return {"error": f"GET /api/v2/monitor/health: {status} {str(health)[:200]}"}
        api.login(admin_password)
        counts, by_host = {}, {}
        for state in ("queued", "running"):
            answer = api.json("GET", "/api/v2/dags/~/dagRuns/~/taskInstances"
                              f"?state={state}&limit=100")
            counts[state] = answer["total_entries"]
            if state == "running":
                for ti in answer["task_instances"]:
                    host = ti.get("hostname") or "?"
                    by_host.setdefault(host, []).append(f"{ti['dag_id']}.{ti['task_id']}")
    except (ApiError, OSError, ValueError, HTTPException, KeyError, TypeError) as error:
        # Whatever the API answers (or fails to), the status goes on with the rest.
        return {"error": f"{cluster.public_url}: {type(error).__name__}: {error}"}
    return {"health": health, "counts": counts, "running_by_host": by_host}
