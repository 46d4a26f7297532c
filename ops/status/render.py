"""The status report (assess.py) as one screen of text."""


def render(report: dict) -> str:
    lines = [f"Public URL   {report['public_url']}", "", "Hosts"]
    for host in report["hosts"]:
        roles = ",".join(host["roles"])
        if not host["reachable"]:
            lines.append(f"  {host['name']:<10} {host['address']:<16} {roles:<18} "
                         f"UNREACHABLE: {host['error']}")
            continue
        services = " ".join(f"{_short(unit)}={state}" for unit, state in host["services"].items())
        lines.append(f"  {host['name']:<10} {host['address']:<16} {roles:<18} {services}")
    lines += ["", *_redis(report["redis"]), "", *_load_balancer(report["load_balancer"])]
    lines += ["", *_workers(report["workers"], report["tasks"])]
    airflow = report["airflow"]
    health = " ".join(f"{c}={s}" for c, s in airflow.items()) or "unknown"
    lines += ["", f"Airflow      {health}"]
    lines += ["", "Healthy" if report["healthy"] else f"DEGRADED ({len(report['problems'])})"]
    lines += [f"  - {problem}" for problem in report["problems"]]
    lines += [f"  note: {note}" for note in report["notes"]]
    return "\n".join(lines)


def _short(unit: str) -> str:
    return unit.removesuffix(".service").removeprefix("airflow-")


def _redis(redis) -> list[str]:
    lines = [f"Redis        primary {redis['primary'] or 'NONE'}"]
    for replica in redis["replicas"]:
        lag = ("-" if replica["lag_seconds"] is None
               else f"{replica['lag_seconds']} s, {replica['behind_bytes']} bytes behind")
        lines.append(f"  replica {replica['address']:<22} {replica['state']:<14} lag {lag}")
    for sentinel in redis["sentinels"]:
        view = sentinel.get("error") or f"primary {sentinel['primary']} ({sentinel['flags']})"
        lines.append(f"  sentinel {sentinel['address']:<21} {view}")
    return lines


def _load_balancer(lb) -> list[str]:
    vip = f"VIP {lb['vip']} on {', '.join(lb['vip_holders']) or 'NO HOST'}" if lb["vip"] else ""
    lines = [f"HAProxy      {vip}".rstrip()]
    for name, servers in lb["haproxy"].items():
        view = servers.get("error") or " ".join(f"{s}={state}" for s, state in servers.items())
        lines.append(f"  {name:<10} {view or 'no answer'}")
    return lines


def _workers(workers, tasks) -> list[str]:
    queued = "?" if tasks["queued"] is None else tasks["queued"]
    running = "?" if tasks["running"] is None else tasks["running"]
    lines = [f"Workers      tasks queued {queued}, running {running}"]
    for name, worker in workers.items():
        if "error" in worker:
            lines.append(f"  {name:<10} {worker['error']}")
            continue
        celery = worker["celery"]
        online = sum(1 for w in celery.values() if isinstance(w, dict) and w.get("online"))
        active = sum(len(w.get("active", [])) for w in celery.values() if isinstance(w, dict))
        lines.append(f"  {name:<10} {worker['mode']:<10} instances {len(worker['instances'])}, "
                     f"Celery online {online}, running {active}")
        for task in tasks["running_by_host"].get(name, [])[:5]:
            lines.append(f"      {task}")
    return lines
