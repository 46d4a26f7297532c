"""Worker autoscaling: the load DAG's burst (default 100 tasks of 20 s) with the workers at
rest, autoscaling, then the same burst with every worker host fixed at its minimum.

    python -m bench.autoscale [--tasks 100] [--seconds 20]

Prints, for the autoscaled run, seconds from the trigger to the first new instance and to the
target count on every host (the autoscalers' own target), and the DAG run's wall time in both
runs. Leaves every worker host autoscaling. Anchor: the Helm chart's KEDA rule polls every 5 s.
"""

import time

from bench import arguments
from lab.client import Lab, wait_for

LOAD = "airflow_cluster_load"
RUN_TIMEOUT = 1800


def burst(lab, api, tasks, seconds, watch) -> dict:
    """Trigger the burst and follow it; with `watch`, the instance counts every 0.5 s."""
    workers = lab.cluster.groups["worker"]
    lab.wait_at_rest(timeout=900)
    at_rest = {name: len(lab.instances(name)) for name in workers}
    started = time.monotonic()
    run_id = api.trigger(LOAD, {"tasks": tasks, "seconds": seconds})
    first_new, at_target, peak = None, {}, dict(at_rest)
    while True:
        now = time.monotonic() - started
        if watch:
            for name in workers:
                status = lab.autoscaler_status(name)
                count = len(status["running"])
                peak[name] = max(peak[name], count)
                if count > at_rest[name] and first_new is None:
                    first_new = now
                target = (status.get("last_round") or {}).get("target", 0)
                if name not in at_target and count > at_rest[name] and count >= target:
                    at_target[name] = now
        state = api.dag_run(LOAD, run_id)["state"]
        if state in ("success", "failed"):
            break
        if now > RUN_TIMEOUT:
            raise SystemExit(f"the run did not end within {RUN_TIMEOUT} s")
        time.sleep(0.5 if watch else 2)
    run = api.dag_run(LOAD, run_id)
    return {
        "state": state,
        "wall": time.monotonic() - started,
        "first_new": first_new,
        "at_target": at_target,
        "peak": peak,
        "run": run,
    }


def main():
    parser = arguments(__doc__)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()
    lab = Lab(args.inventory)
    api = lab.api()
    api.login(lab.secrets["admin_password"])
    api.unpause(LOAD)
    workers = lab.cluster.groups["worker"]
    auto = burst(lab, api, args.tasks, args.seconds, watch=True)
    if auto["first_new"] is None or len(auto["at_target"]) < len(workers):
        raise SystemExit(f"the burst did not grow every host: {auto}")
    print(f"autoscaled: {auto['state']} in {auto['wall']:.1f} s; first new instance "
          f"{auto['first_new']:.1f} s after the trigger; at target "
          + ", ".join(f"{n} {s:.1f} s" for n, s in sorted(auto["at_target"].items()))
          + f"; peak instances {auto['peak']}", flush=True)
    try:
        for name in workers:
            minimum = lab.data(name).autoscale_min_instances
            done = lab.autoscaler(name, "scale", str(minimum))
            assert done.returncode == 0, done.stderr
        fixed = burst_fixed(lab, api, args)
    finally:
        for name in workers:
            lab.autoscaler(name, "autoscale", "on")
    print(f"fixed at the minimum: {fixed['state']} in {fixed['wall']:.1f} s", flush=True)
    print(f"\n{args.tasks} tasks of {args.seconds} s: autoscaled {auto['wall']:.1f} s, "
          f"fixed minimum {fixed['wall']:.1f} s "
          f"({fixed['wall'] / auto['wall']:.2f}x); trigger -> first new instance "
          f"{auto['first_new']:.1f} s, -> target on every host "
          f"{max(auto['at_target'].values()):.1f} s")


def burst_fixed(lab, api, args) -> dict:
    """The burst with the hosts fixed (wait_at_rest needs autoscaling: wait here instead)."""
    workers = lab.cluster.groups["worker"]
    wait_for("no load left", lambda: lab.broker_load(workers[0]) == 0, timeout=900)
    started = time.monotonic()
    run_id = api.trigger(LOAD, {"tasks": args.tasks, "seconds": args.seconds})
    run = api.finished(LOAD, run_id, timeout=RUN_TIMEOUT)
    return {"state": run["state"], "wall": time.monotonic() - started}


if __name__ == "__main__":
    main()
