"""Benchmark of the Airflow part of the deploy, on the lab (or any inventory). Prints:

- cold seconds: with --cold, `make cluster` on a lab torn down first (DESTROYS the lab);
  otherwise the seconds of a deploy run given with --deploy-seconds (e.g. the first deploy of
  the Airflow roles onto fresh hosts), or none;
- single-host pip install seconds, measured in the same run: a fresh venv on the first worker
  host filled from the same lock through the same proxy (the floor of a cold deploy);
  goal: cold / single-host <= 3;
- no-change re-run seconds: a full `pyinfra -y inventory.py deploy.py` on a converged cluster
  (and its changed operations, which must be 0); goal <= 20 s;
- trigger-to-first-task seconds: POST a run of the fan-out DAG through the load balancer, until
  the first of its task instances is running (median of --runs); goal <= 5 s.

    python bench/airflow.py [--cold] [--runs 3] [--skip-rerun] [--skip-pip] [--limit GROUP]

Traffic goes to the inventory's addresses only, never through a proxy.
"""

import argparse
import json
import os
import ssl
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from cluster import tls  # noqa: E402
from cluster.model import build_cluster, load_inventory  # noqa: E402
from cluster.secret_store import load as load_secrets  # noqa: E402
from tasks.airflow import lock_file  # noqa: E402

PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
FANOUT = "airflow_cluster_fanout"


def ssh(inventory, name, command, timeout=1800):
    data = inventory.get_host(name).data
    return subprocess.run(
        ["ssh", "-i", data.ssh_key, "-o", f"UserKnownHostsFile={data.ssh_known_hosts_file}",
         "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
         f"{data.ssh_user}@{data.ssh_hostname}", command],
        capture_output=True, text=True, timeout=timeout,
    )


def timed(command, **kwargs):
    start = time.monotonic()
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, **kwargs)
    return time.monotonic() - start, done


def cold_make_cluster():
    down = subprocess.run([sys.executable, "-m", "lab", "down"], cwd=PROJECT, timeout=1800)
    if down.returncode:
        sys.exit("lab down failed")
    seconds, done = timed(["make", "cluster"], timeout=7200)
    if done.returncode:
        sys.exit(f"make cluster failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def single_host_pip_seconds(inventory, cluster):
    """A fresh venv on the first worker, filled from the lock as the deploy does (no pip
    cache: what a fresh host downloads). Timed from here; SSH adds well under a second."""
    name = cluster.groups["worker"][0]
    settings = inventory.get_host(name).data
    lock = f"{settings.airflow_home}/requirements-{settings.airflow_version}.lock"
    venv = "/var/tmp/bench-airflow-venv"
    ssh(inventory, name, f"rm -rf {venv}")
    start = time.monotonic()
    done = ssh(
        inventory, name,
        f"python3 -m venv {venv} && {venv}/bin/pip install --disable-pip-version-check "
        f"--no-input -q --no-deps --no-cache-dir -r {lock}",
    )
    seconds = time.monotonic() - start
    ssh(inventory, name, f"rm -rf {venv}")
    if done.returncode:
        sys.exit(f"pip install on {name} failed:\n{done.stderr[-3000:]}")
    return seconds


def no_change_rerun(limits):
    command = [PYINFRA, "-y", "--json", "inventory.py", "deploy.py"]
    for limit in limits:
        command += ["--limit", limit]
    seconds, done = timed(command, timeout=3600)
    if done.returncode:
        sys.exit(f"re-run failed:\n{done.stderr[-3000:]}")
    results = json.loads(done.stdout).get("results", {})
    changed = [op["name"] for op in results.get("operations", []) if op["success"]]
    return seconds, changed


class Api:
    def __init__(self, cluster, inventory, password, admin):
        ca = tls.ca_certificate_path(cluster, inventory, project_dir=PROJECT)
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        self.base = os.environ.get("AIRFLOW_TEST_API_URL", cluster.public_url).rstrip("/")
        self.token = None
        self.token = self.call("POST", "/auth/token", {"username": admin, "password": password})[
            "access_token"
        ]

    def call(self, method, path, body=None):
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base + path, method=method, headers=headers,
            data=None if body is None else json.dumps(body).encode(),
        )
        with self.opener.open(request, timeout=30) as response:
            return json.loads(response.read() or b"null")


def trigger_to_first_task(api, timeout=300):
    api.call("PATCH", f"/api/v2/dags/{FANOUT}", {"is_paused": False})
    start = time.monotonic()
    run = api.call("POST", f"/api/v2/dags/{FANOUT}/dagRuns", {"logical_date": None})
    path = f"/api/v2/dags/{FANOUT}/dagRuns/{run['dag_run_id']}/taskInstances?limit=100"
    while time.monotonic() - start < timeout:
        states = {ti["state"] for ti in api.call("GET", path)["task_instances"]}
        if states & {"running", "success", "failed"}:
            seconds = time.monotonic() - start
            break
        time.sleep(0.1)
    else:
        sys.exit("no task started")
    # Let the run finish before the next measurement.
    while time.monotonic() - start < timeout:
        if api.call("GET", f"/api/v2/dags/{FANOUT}/dagRuns/{run['dag_run_id']}")["state"] in (
            "success", "failed",
        ):
            break
        time.sleep(1)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="lab down, then time make cluster")
    parser.add_argument("--deploy-seconds", type=float, help="a cold deploy time measured before")
    parser.add_argument("--runs", type=int, default=3, help="trigger-to-first-task samples")
    parser.add_argument("--skip-rerun", action="store_true")
    parser.add_argument("--skip-pip", action="store_true")
    parser.add_argument("--limit", action="append", default=[],
                        help="limit the no-change re-run to these groups (repeatable)")
    args = parser.parse_args()

    cold = cold_make_cluster() if args.cold else args.deploy_seconds
    inventory = load_inventory(project_dir=PROJECT)
    cluster = build_cluster(inventory)
    lock_file(inventory.get_host(cluster.groups["worker"][0]).data.dict())  # the lock exists
    rows = []
    if not args.skip_pip:
        pip_seconds = single_host_pip_seconds(inventory, cluster)
        rows.append(("single-host pip install (s)", f"{pip_seconds:.1f}"))
        if cold:
            label = "cold make cluster (s)" if args.cold else "cold deploy (s, given)"
            rows.append((label, f"{cold:.1f}"))
            rows.append(("cold / single-host pip (goal <= 3)", f"{cold / pip_seconds:.2f}"))
    if not args.skip_rerun:
        seconds, changed = no_change_rerun(args.limit)
        scope = f", --limit {' '.join(args.limit)}" if args.limit else ""
        rows.append((f"no-change re-run (s{scope}, goal <= 20)", f"{seconds:.1f}"))
        rows.append(("  changed operations (must be 0)", str(len(changed))))
    secrets = load_secrets(cluster.settings["secrets_file"], project_dir=PROJECT)
    admin = inventory.get_host(cluster.groups["web"][0]).data.airflow_admin_user
    api = Api(cluster, inventory, secrets["admin_password"], admin)
    samples = [trigger_to_first_task(api) for _ in range(args.runs)]
    shown = ", ".join(f"{s:.1f}" for s in samples)
    rows.append(("trigger to first task (s, goal <= 5)",
                 f"{statistics.median(samples):.1f} (samples {shown})"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
