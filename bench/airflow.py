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

    python -m bench.airflow [--cold] [--runs 3] [--skip-rerun] [--skip-pip] [--limit GROUP]

Traffic goes to the inventory's addresses only, never through a proxy.
"""

import statistics
import subprocess
import sys
import time

from bench import arguments, timed
from lab.client import PROJECT, Lab, run_lab, run_pyinfra, wait_for

FANOUT = "airflow_cluster_fanout"


def cold_make_cluster():
    down = run_lab("down", timeout=1800)
    if down.returncode:
        sys.exit(f"lab down failed:\n{down.stderr[-3000:]}")
    seconds, done = timed(subprocess.run, ["make", "cluster"], cwd=PROJECT, capture_output=True,
                          text=True, timeout=7200)
    if done.returncode:
        sys.exit(f"make cluster failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds


def single_host_pip_seconds(lab):
    """A fresh venv on the first worker, filled from the lock with plain pip (no pip cache:
    what a fresh host downloads). Timed from here; SSH adds well under a second. The deploy
    does not install python3-venv (uv makes its venvs): it is installed for this, untimed,
    and removed after."""
    name = lab.cluster.groups["worker"][0]
    settings = lab.data(name)
    lock = f"{settings.airflow_home}/requirements-{settings.airflow_version}.lock"
    venv = "/var/tmp/bench-airflow-venv"
    lab.run(name, f"rm -rf {venv}")
    apt = "DEBIAN_FRONTEND=noninteractive apt-get -y -q"
    if lab.run(name, f"{apt} install python3-venv >/dev/null").returncode:
        sys.exit(f"apt-get install python3-venv on {name} failed")
    seconds, done = timed(
        lab.run, name,
        f"python3 -m venv {venv} && {venv}/bin/pip install --disable-pip-version-check "
        f"--no-input -q --no-deps --no-cache-dir -r {lock}",
        timeout=1800,
    )
    lab.run(name, f"rm -rf {venv}; {apt} purge --autoremove python3-venv >/dev/null")
    if done.returncode:
        sys.exit(f"pip install on {name} failed:\n{done.stderr[-3000:]}")
    return seconds


def no_change_rerun(lab, limits):
    args = [arg for limit in limits for arg in ("--limit", limit)]
    seconds, run = timed(run_pyinfra, *args, inventory=lab.inventory_path)
    if run.returncode:
        sys.exit(f"re-run failed:\n{run.stderr[-3000:]}")
    return seconds, run.changed_operations()


def trigger_to_first_task(api, timeout=300):
    api.unpause(FANOUT)
    start = time.monotonic()
    run_id = api.trigger(FANOUT)
    wait_for(f"a task of {FANOUT} run {run_id} started",
             lambda: {ti["state"] for ti in api.task_instances(FANOUT, run_id)}
             & {"running", "success", "failed"},
             timeout=timeout, interval=0.1)
    seconds = time.monotonic() - start
    # Let the run finish before the next measurement.
    api.finished(FANOUT, run_id, timeout=timeout, interval=1)
    return seconds


def main():
    parser = arguments(__doc__)
    parser.add_argument("--cold", action="store_true", help="lab down, then time make cluster")
    parser.add_argument("--deploy-seconds", type=float, help="a cold deploy time measured before")
    parser.add_argument("--runs", type=int, default=3, help="trigger-to-first-task samples")
    parser.add_argument("--skip-rerun", action="store_true")
    parser.add_argument("--skip-pip", action="store_true")
    parser.add_argument("--limit", action="append", default=[],
                        help="limit the no-change re-run to these groups (repeatable)")
    args = parser.parse_args()

    cold = cold_make_cluster() if args.cold else args.deploy_seconds
    lab = Lab(args.inventory)
    rows = []
    if not args.skip_pip:
        pip_seconds = single_host_pip_seconds(lab)
        rows.append(("single-host pip install (s)", f"{pip_seconds:.1f}"))
        if cold:
            label = "cold make cluster (s)" if args.cold else "cold deploy (s, given)"
            rows.append((label, f"{cold:.1f}"))
            rows.append(("cold / single-host pip (goal <= 3)", f"{cold / pip_seconds:.2f}"))
    if not args.skip_rerun:
        seconds, changed = no_change_rerun(lab, args.limit)
        scope = f", --limit {' '.join(args.limit)}" if args.limit else ""
        rows.append((f"no-change re-run (s{scope}, goal <= 20)", f"{seconds:.1f}"))
        rows.append(("  changed operations (must be 0)", str(len(changed))))
    api = lab.api()
    api.login(lab.secrets["admin_password"])
    samples = [trigger_to_first_task(api) for _ in range(args.runs)]
    shown = ", ".join(f"{s:.1f}" for s in samples)
    rows.append(("trigger to first task (s, goal <= 5)",
                 f"{statistics.median(samples):.1f} (samples {shown})"))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


if __name__ == "__main__":
    main()
