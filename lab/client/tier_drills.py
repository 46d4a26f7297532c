"""One function per fault drill of the cluster (see fault_drills for the harness): each
breaks one tier while the drill DAG runs and the client polls, restores it, and returns a
DrillReport whose `facts` hold the drill's own findings.

    report = DRILLS["redis-sigkill"](lab)
"""

import time

from lab.client.fault_drills import Drill, DrillReport, started_at
from lab.client.health import parallel
from lab.client.waiting import wait_for

PROMOTE_TIMEOUT = 90
# How long a VIP holder that boots again is watched for taking the VIP back.
TAKE_BACK_WATCH = 20
PARTITION_SECONDS = 30


def redis_sigkill(lab) -> DrillReport:
    """SIGKILL the primary's redis-server; systemd starts it again (after
    redis_restart_delay), as a replica of the promoted one."""
    with Drill(lab, "Redis primary SIGKILL", seconds=8) as drill:
        old = lab.primary()
        drill.fault_at = lab.kill_redis_server(old)
        _promoted(lab, drill, old)
    _consumers_after(lab, drill)
    return drill.report


def redis_plug(lab) -> DrillReport:
    """Pull the plug of the primary's host, start it again once a replica is promoted."""
    with Drill(lab, "Redis primary host plug pulled", seconds=8) as drill:
        old = lab.primary()
        host = lab.names[old]
        drill.power_cycled.append(host)
        try:
            drill.fault_at = lab.kill_host(host)
            _promoted(lab, drill, old)
        finally:
            lab.start_host(host)
    _consumers_after(lab, drill)
    return drill.report


def api_sigkill(lab) -> DrillReport:
    """SIGKILL every process of one API server; systemd restarts it."""
    name = lab.cluster.groups["web"][0]
    with Drill(lab, f"API server SIGKILL ({name})") as drill:
        drill.fault_at = time.time()
        # Every process of the unit (`systemctl kill` cannot list a cgroup in the lab).
        done = lab.run(name, "grep -l '/airflow-api-server.service$' /proc/[0-9]*/cgroup "
                             "| cut -d/ -f3 | xargs -r kill -9")
        assert done.returncode == 0, done.stderr
    return drill.report


def scheduler_plug(lab) -> DrillReport:
    """Pull the plug of a scheduler host; the DAG must finish on the other scheduler before
    the host starts again."""
    name = lab.cluster.groups["scheduler"][-1]
    with Drill(lab, f"scheduler host plug pulled ({name})", power_cycled=[name]) as drill:
        try:
            drill.fault_at = lab.kill_host(name)
            drill.facts["dag_while_down"] = drill.wait_finished()["state"]
        finally:
            lab.start_host(name)
    return drill.report


def worker_plug(lab) -> DrillReport:
    """Pull the plug of a worker host mid-task; the DAG must finish without it (the tries it
    was running fail by heartbeat timeout and are retried elsewhere), then it starts again
    and its autoscaler brings its instances back."""
    name = lab.cluster.groups["worker"][0]
    with Drill(lab, f"worker host plug pulled ({name})", seconds=30,
               power_cycled=[name]) as drill:
        try:
            wait_for(f"tasks running on {name}",
                     lambda: [ti for ti in drill.running() if _host_of(ti) == name],
                     timeout=120, interval=0.5)
            drill.fault_at = lab.kill_host(name)
            # What the host was running when it died (its tries stay "running" in the DB).
            drill.facts["running_on_host"] = sorted(
                ti["map_index"] for ti in drill.running() if _host_of(ti) == name)
            drill.facts["dag_while_down"] = drill.wait_finished()["state"]
        finally:
            lab.start_host(name)
    finals = {ti["map_index"]: ti for ti in drill.report.task_instances}
    drill.facts["victims_rerun_on"] = sorted(
        {_host_of(finals[i]) for i in drill.facts["running_on_host"]})
    drill.facts["victims_tries"] = sorted(
        {finals[i]["try_number"] for i in drill.facts["running_on_host"]})
    return drill.report


def vip_plug(lab) -> DrillReport:
    """Pull the plug of the lb host holding the VIP; the other takes it over and keeps it
    when the first boots again (keepalived nopreempt)."""
    with Drill(lab, "VIP holder plug pulled") as drill:
        old, = lab.vip_holders()
        new = next(n for n in lab.cluster.groups["lb"] if n != old)
        drill.power_cycled.append(old)
        try:
            drill.fault_at = lab.kill_host(old)
            wait_for("the VIP moved", lambda: lab.vip_holders([new]) == [new],
                     timeout=PROMOTE_TIMEOUT, interval=0.2)
            drill.facts["vip_moved_s"] = time.time() - drill.fault_at
            time.sleep(5)
        finally:
            lab.start_host(old)
        time.sleep(TAKE_BACK_WATCH)
        drill.facts["holders_after_return"] = lab.vip_holders()
        drill.facts["from_to"] = f"{old}->{new}"
    return drill.report


def postgres_restart(lab) -> DrillReport:
    name = lab.cluster.groups["postgres"][0]
    with Drill(lab, f"PostgreSQL restart ({name})") as drill:
        drill.fault_at = time.time()
        done = lab.run(name, "systemctl restart 'postgresql@*-main.service'")
        assert done.returncode == 0, done.stderr
    return drill.report


def postgres_plug(lab) -> DrillReport:
    name = lab.cluster.groups["postgres"][0]
    with Drill(lab, f"PostgreSQL host plug pulled ({name})", power_cycled=[name]) as drill:
        try:
            drill.fault_at = lab.kill_host(name)
            time.sleep(5)
        finally:
            lab.start_host(name)
    return drill.report


def redis_partition(lab) -> DrillReport:
    """Cut the primary's host off the network for PARTITION_SECONDS. The other side promotes
    a replica; the cut-off primary, without replicas, refuses writes (min-replicas-to-write);
    after heal the sentinels turn it into a replica: one primary."""
    with Drill(lab, "Redis primary host partitioned", seconds=8) as drill:
        old = lab.primary()
        host = lab.names[old]
        lag = lab.data(host).get("redis_min_replicas_max_lag")
        try:
            drill.fault_at = lab.isolate_host(host)
            _promoted(lab, drill, old)
            time.sleep(max(0.0, drill.fault_at + lag + 2 - time.time()))
            # Asked through the console: nothing on the network reaches the host.
            answer = lab.console(host, "redis-cli", "-p", str(lab.redis_port),
                                 "SET", "airflow-cluster:drill", "lost?",
                                 env={"REDISCLI_AUTH": lab.password})
            drill.facts["cut_off_primary_write"] = (answer.stdout + answer.stderr).strip()
            time.sleep(max(0.0, drill.fault_at + PARTITION_SECONDS - time.time()))
        finally:
            lab.heal_host(host)
    drill.facts["primaries_after_heal"] = _primaries(lab)
    return drill.report


def power_cut(lab) -> DrillReport:
    """Every host's plug pulled at the same moment, then `python -m lab up` boots them all on
    their disks; no deploy. Once healthy, a new DAG run must succeed. The run that was going
    is reported as it stands then: its lost tries come back by Airflow's own timeouts (a
    running try after task_heartbeat_timeout, a try queued on a dead worker after
    [scheduler] task_queued_timeout, 10 min), too long to wait for here."""
    names = list(lab.cluster.nodes)
    with Drill(lab, "whole-cluster power cut", power_cycled=names, wait_for_run=False) as drill:
        try:
            drill.fault_at = lab.kill_host(*names)
            time.sleep(2)
        finally:
            powered_on = time.time()
            lab.up()
        drill.facts["booted_s"] = time.time() - powered_on
        lab.wait_cluster_healthy()
        # The bound: healthy within 5 minutes of the power coming back.
        drill.facts["healthy_after_power_on_s"] = time.time() - powered_on
    drill.facts["primaries"] = _primaries(lab)
    drill.facts["vip_holders"] = lab.vip_holders()
    again = drill.api.trigger("airflow_cluster_drill", {"tasks": 10, "seconds": 1})
    drill.facts["new_dag_run"] = drill.api.finished("airflow_cluster_drill", again, 600)["state"]
    return drill.report


# --- shared findings --------------------------------------------------------------------------

def _promoted(lab, drill, old):
    new = wait_for("a replica promoted", lambda: (p := lab.primary()) != old and p,
                   timeout=PROMOTE_TIMEOUT, interval=0.1)
    drill.facts["promoted_s"] = time.time() - drill.fault_at
    drill.facts["primary"] = f"{lab.names[old]}->{lab.names[new]}"
    drill.promoted_at = time.time()


def _consumers_after(lab, drill):
    """The worker hosts that started a task after the promotion (each must: workers that
    hang on the old primary take nothing more)."""
    drill.facts["consuming_after"] = sorted(
        {_host_of(ti) for ti in drill.report.task_instances
         if started_at(ti) > drill.promoted_at})


def _primaries(lab) -> list[str]:
    """The redis hosts that call themselves primary (exactly one in a whole broker)."""

    def role(address):
        try:
            return lab.server(address).info("replication")["role"]
        except Exception as error:  # noqa: BLE001 - a server that does not answer says so
            return type(error).__name__

    roles = parallel(role, list(lab.names))
    return [lab.names[a] for a, r in zip(lab.names, roles) if r == "master"]


def _host_of(ti) -> str:
    return (ti.get("hostname") or "?").split(".")[0]


DRILLS = {
    "redis-sigkill": redis_sigkill,
    "redis-plug": redis_plug,
    "api-sigkill": api_sigkill,
    "scheduler-plug": scheduler_plug,
    "worker-plug": worker_plug,
    "vip-plug": vip_plug,
    "postgres-restart": postgres_restart,
    "postgres-plug": postgres_plug,
    "redis-partition": redis_partition,
    "power-cut": power_cut,
}
