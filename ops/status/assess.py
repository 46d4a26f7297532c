"""From what `collect` gathered to the status report: pure, so every finding can be tested from
recorded inputs (tests/unit/test_ops_cli.py).

The report is the stable document of `python -m ops status --json`:

    healthy        true when `problems` is empty
    problems       one line per finding, each naming its host or component
    notes          states that are chosen, not faults (a drained worker host)
    public_url
    hosts          [{name, address, roles, reachable, error, services: {unit: state}}]
    redis          {primary, replicas: [{address, state, lag_seconds, behind_bytes}],
                    sentinels: [{address, primary, flags} | {address, error}]}
    load_balancer  {vip, vip_holders, haproxy: {lb host: {API server: status} | {error}}}
    workers        {host: {mode, instances, celery: {worker: {online, active}}} | {error}}
    tasks          {queued, running, running_by_host: {host: ["dag_id.task_id", ...]}}
    airflow        {component: status} from GET /api/v2/monitor/health
"""

import fnmatch

from cluster.services import AIRFLOW_COMPONENTS, WORKER_INSTANCES


def assess(inputs: dict) -> dict:
    problems, notes = [], []
    hosts = [_host(name, record, problems) for name, record in inputs["hosts"].items()]
    report = {
        "healthy": False,
        "problems": problems,
        "notes": notes,
        "public_url": inputs["public_url"],
        "hosts": hosts,
        "redis": redis_report(inputs["redis"], inputs["hosts"], problems),
        "load_balancer": _load_balancer(inputs, problems),
        "workers": _workers(inputs["hosts"], problems, notes),
        "tasks": _tasks(inputs["airflow"]),
        "airflow": _airflow(inputs["airflow"], problems),
    }
    report["healthy"] = not problems
    return report


def _host(name, record, problems) -> dict:
    entry = {
        "name": name,
        "address": record["address"],
        "roles": record["groups"],
        "reachable": record.get("error") is None,
        "error": record.get("error"),
        "services": {},
    }
    if record.get("error") is not None:
        problems.append(f"{name}: unreachable ({record['error']})")
        return entry
    units = record.get("units") or {}
    for pattern in record["expected"]:
        matches = fnmatch.filter(units, pattern)
        if not matches:
            entry["services"][pattern] = "missing"
            problems.append(f"{name}: {pattern} not installed")
        for unit in matches:
            entry["services"][unit] = units[unit]
            if units[unit] != "active":
                problems.append(f"{name}: {unit} {units[unit]}")
    for unit in sorted(fnmatch.filter(units, WORKER_INSTANCES)):
        entry["services"][unit] = units[unit]
    return entry


def redis_report(redis, hosts, problems) -> dict:
    if "error" in redis:
        problems.append(f"redis: {redis['error']}")
        return {"primary": None, "replicas": [], "sentinels": []}
    records = redis["records"]
    names = {record["address"]: name for name, record in hosts.items()}
    sentinels, primaries = [], set()
    for record in (r for r in records if r["kind"] == "sentinel"):
        address = record["addr"].rpartition(":")[0]
        if "error" in record:
            sentinels.append({"address": address, "error": record["error"]})
            problems.append(f"{names.get(address, address)}: sentinel does not answer "
                            f"({record['error']})")
            continue
        primary = f"{record['ip']}:{record['port']}"
        primaries.add(primary)
        sentinels.append({"address": address, "primary": primary, "flags": record["flags"]})
        if "s_down" in record["flags"] or "o_down" in record["flags"]:
            problems.append(f"{names.get(address, address)}: sentinel flags the primary "
                            f"{record['flags']}")
    servers = {r["addr"]: r for r in records if r["kind"] == "server"}
    for addr, record in servers.items():
        if "error" in record:
            address = addr.rpartition(":")[0]
            problems.append(f"{names.get(address, address)}: redis-server does not answer "
                            f"({record['error']})")
    primary = None
    if len(primaries) > 1:
        problems.append(f"redis: sentinels disagree on the primary ({', '.join(sorted(primaries))})")
    elif primaries:
        (primary,) = primaries
        if servers.get(primary, {}).get("role") != "master":
            problems.append(f"redis: no primary (the sentinels name {primary}, which is "
                            f"{servers.get(primary, {}).get('role') or 'not answering'})")
            primary = None
    elif not any("error" not in r for r in records if r["kind"] == "sentinel"):
        problems.append("redis: no sentinel answers")
    masters = [addr for addr, r in servers.items() if r.get("role") == "master"]
    if primary and len(masters) > 1:
        problems.append(f"redis: more than one server is a primary ({', '.join(masters)})")
    replicas = _replicas(primary, servers, redis.get("replication"), names, problems)
    return {"primary": primary, "replicas": replicas, "sentinels": sentinels}


def _replicas(primary, servers, replication, names, problems) -> list[dict]:
    if primary is None:
        return []
    lags = {}
    for replica in (replication or {}).get("replicas", []):
        behind = replication["master_repl_offset"] - replica["offset"]
        lags[f"{replica['ip']}:{replica['port']}"] = (replica["state"], replica["lag"], behind)
    replicas = []
    for addr, record in sorted(servers.items()):
        if addr == primary or "error" in record:
            continue
        state, lag, behind = lags.get(addr, ("not connected", None, None))
        replicas.append({"address": addr, "state": state, "lag_seconds": lag,
                         "behind_bytes": behind})
        name = names.get(addr.rpartition(":")[0], addr)
        following = f"{record.get('master_host')}:{record.get('master_port')}"
        if record.get("role") != "slave" or following != primary:
            problems.append(f"{name}: redis-server is {record.get('role')}, not a replica of "
                            f"{primary}")
        elif record.get("master_link") != "connected" or state != "online":
            problems.append(f"{name}: replica link {record.get('master_link')}, {state}")
    return replicas


def _load_balancer(inputs, problems) -> dict:
    vip, hosts = inputs["vip"], inputs["hosts"]
    lbs = {name: r for name, r in hosts.items() if "lb" in r["groups"]}
    web = [name for name, r in hosts.items() if "web" in r["groups"]]
    haproxy, holders = {}, []
    for name, record in lbs.items():
        if record.get("error") is not None:
            haproxy[name] = {"error": "unreachable"}
            continue
        servers = record.get("haproxy") or {}
        haproxy[name] = {server: s["status"] for server, s in servers.items()}
        if not servers:
            problems.append(f"{name}: HAProxy does not answer on its runtime socket")
        for server in web:
            status = servers.get(server, {}).get("status")
            if servers and status != "UP":
                problems.append(f"{name}: HAProxy sees API server {server} {status or 'missing'}")
        if vip and vip in (record.get("addresses") or []):
            holders.append(name)
    if vip and len(holders) != 1:
        problems.append(f"VIP {vip} held by {', '.join(holders) or 'no host'}")
    return {"vip": vip, "vip_holders": holders, "haproxy": haproxy}


def _workers(hosts, problems, notes) -> dict:
    workers = {}
    for name, record in hosts.items():
        if "worker" not in record["groups"] or record.get("error") is not None:
            continue
        status = record.get("autoscaler") or {"error": "no answer"}
        if "error" in status:
            workers[name] = {"error": status["error"]}
            problems.append(f"{name}: autoscaler does not answer ({status['error']})")
            continue
        celery = status.get("celery") or {}
        workers[name] = {"mode": status["mode"], "instances": status["running"],
                         "celery": celery}
        if status["mode"] == "drained":
            notes.append(f"{name}: drained (python -m ops undrain {name})")
        elif len(status["running"]) < status["min_instances"]:
            problems.append(f"{name}: {len(status['running'])} worker instances, fewer than "
                            f"{status['min_instances']}")
        if "error" in celery:
            problems.append(f"{name}: Celery cannot be asked ({celery['error']})")
            continue
        for worker, answer in sorted(celery.items()):
            if not answer["online"]:
                problems.append(f"{name}: Celery worker {worker} does not answer")
    return workers


def _tasks(airflow) -> dict:
    counts = airflow.get("counts") or {}
    return {"queued": counts.get("queued"), "running": counts.get("running"),
            "running_by_host": airflow.get("running_by_host") or {}}


def _airflow(airflow, problems) -> dict:
    if airflow.get("error"):
        problems.append(f"Airflow API: {airflow['error']}")
        return {}
    health = airflow.get("health") or {}
    components = {c: (health.get(c) or {}).get("status", "unknown") for c in AIRFLOW_COMPONENTS}
    problems += [f"Airflow {component}: {status}" for component, status in components.items()
                 if status != "healthy"]
    return components
