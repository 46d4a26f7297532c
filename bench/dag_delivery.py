"""DAG delivery: seconds from the end of a deploy that ships a DAG file until the API lists it,
for a new DAG, a changed DAG's new task and a removed DAG (until it is stale), and from a
`git push` to the Git DAG bundle until the pushed DAG is listed.

    python -m bench.dag_delivery [--rounds 3] [--git]

On a deployed cluster (the lab by default), with a scratch copy of dags/ deployed through
`--data dags_dir=...`; --git also serves a repository from db1 and deploys the Git bundle.
Ends with a plain deploy, which restores the cluster. Goal: every figure <= 30 s (the DAG
processors look every dag_bundle_refresh_interval, 10 s by default, then parse).
"""

import statistics

from bench import arguments, timed
from lab.client import Lab, run_pyinfra
from lab.client.dags import GIT_BUNDLE, SyncedFolder, DagWaits, GitServer, dag_source

TIMEOUT = 300


def deploy(*data):
    run = run_pyinfra(*data)
    if run.returncode != 0:
        raise SystemExit(run.describe())


def shipped(folder, wait) -> tuple[float, float]:
    """(seconds from the deploy's end, from its start) until wait() returns: a deploy syncs
    the DAGs part-way through, so the DAG processors may see them before it ends."""
    deploy_seconds, _ = timed(deploy, *folder.data())
    after_end = wait()
    return after_end, deploy_seconds + after_end


def folder_round(folder, waits, n) -> dict[str, tuple[float, float]]:
    dag_id = f"bench_delivery_{n}"
    folder.write(f"{dag_id}.py", dag_source(dag_id, "first"))
    figures = {"new DAG listed": shipped(folder, lambda: waits.listed(dag_id, TIMEOUT))}
    folder.write(f"{dag_id}.py", dag_source(dag_id, "first", "second"))
    figures["changed DAG's new task listed"] = shipped(
        folder, lambda: waits.has_task(dag_id, "second", TIMEOUT))
    folder.remove(f"{dag_id}.py")
    figures["removed DAG stale"] = shipped(folder, lambda: waits.gone(dag_id, TIMEOUT))
    return figures


def git_rounds(lab, folder, waits, rounds) -> list[float]:
    server = GitServer(lab, "db1")
    try:
        server.install()
        server.push({"README.md": "bench\n"}, "empty")
        deploy(*folder.data(), *server.data())
        seconds = []
        for n in range(rounds):
            dag_id = f"bench_git_{n}"
            server.push({f"{dag_id}.py": dag_source(dag_id, "t")}, dag_id)
            seconds.append(waits.listed(dag_id, TIMEOUT, bundle=GIT_BUNDLE))
        return seconds
    finally:
        server.cleanup()


def main():
    parser = arguments(__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--git", action="store_true", help="also measure the Git DAG bundle")
    args = parser.parse_args()
    lab = Lab(args.inventory)
    api = lab.api()
    api.login(lab.secrets["admin_password"])
    waits, folder = DagWaits(api), SyncedFolder()
    try:
        results: dict[str, list[float]] = {}
        for n in range(args.rounds):
            for what, (after_end, after_start) in folder_round(folder, waits, n).items():
                results.setdefault(f"{what}, after the deploy ended", []).append(after_end)
                results.setdefault(f"{what}, after it started", []).append(after_start)
                print(f"round {n + 1}: {what}: {after_end:.1f} s after the deploy ended, "
                      f"{after_start:.1f} s after it started", flush=True)
        if args.git:
            pushed = git_rounds(lab, folder, waits, args.rounds)
            results["pushed DAG listed, after the push (Git bundle)"] = pushed
            print("git:", ", ".join(f"{s:.1f} s" for s in pushed), flush=True)
    finally:
        deploy()
        folder.cleanup()
    print(f"\nmedian (min-max) of {args.rounds} rounds")
    for what, values in results.items():
        print(f"  {what:<58} {statistics.median(values):5.1f} s "
              f"({min(values):.1f}-{max(values):.1f})")


if __name__ == "__main__":
    main()
