"""The operations commands on the deployed cluster (the lab by default), timed, each under a
client polling the public URL five times a second (lab.client.poller):

    python -m bench.ops [--upgrade] [--inventory inventory.py]

One line per command: its seconds, and the client's failed/sent requests while it ran.
    status            `ops status --json` (and whether it said healthy)
    restart_web       `ops restart web -y`: drained in HAProxy, one host at a time
    restart_scheduler `ops restart scheduler -y`
    restart_worker    `ops restart worker -y`: warm
    failover_drill    `ops failover-drill redis -y`, and the seconds it printed until the new
                      primary took a write
    upgrade_other     (--upgrade) `ops upgrade` to the other shipped release, its install step
    upgrade_back      (--upgrade) `ops upgrade` back to group_data's release (venv installed)
Sends traffic to the cluster only. Leaves it as it found it (group_data/all.py included).
"""

import json
import re
import sys
import time

from bench import arguments
from cluster.airflow_lock import shipped_versions
from lab.client import PROJECT, Lab, Poller, run_ops


def under_poller(lab, *args):
    """(seconds, CompletedProcess, failed, sent) of `python -m ops ARGS`."""
    poller = Poller(lab)
    poller.start()
    start = time.monotonic()
    try:
        done = run_ops(*args, timeout=7200)
    finally:
        seconds = time.monotonic() - start
        poller.stop()
    if done.returncode not in (0, 1):
        sys.exit(f"ops {' '.join(args)} failed (exit {done.returncode}):\n"
                 f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, done, len(poller.failures()), len(poller.samples)


def line(name, seconds, failed, sent, extra="") -> None:
    print(f"{name:<18} {seconds:6.1f} s   requests failed {failed}/{sent}{extra}", flush=True)


def step_seconds(output: str, first: str, then: str) -> float:
    """Seconds between the progress lines (HH:MM:SS ...) starting `first` and `then`."""
    stamps = {}
    for text in output.splitlines():
        match = re.match(r"(\d\d):(\d\d):(\d\d) (\d)\.", text)
        if match:
            h, m, s, step = match.groups()
            stamps.setdefault(step, int(h) * 3600 + int(m) * 60 + int(s))
    return (stamps[then] - stamps[first]) % 86400


def main() -> int:
    parser = arguments(__doc__)
    parser.add_argument("--upgrade", action="store_true",
                        help="also upgrade to the other shipped release and back")
    args = parser.parse_args()
    lab = Lab(args.inventory)
    lab.wait_cluster_healthy()

    seconds, done, failed, sent = under_poller(lab, "status", "--json")
    healthy = json.loads(done.stdout)["healthy"]
    line("status", seconds, failed, sent, f"   healthy {healthy}")
    for role in ("web", "scheduler", "worker"):
        seconds, done, failed, sent = under_poller(lab, "restart", role, "-y")
        line(f"restart_{role}", seconds, failed, sent)
    lab.wait_cluster_healthy()
    seconds, done, failed, sent = under_poller(lab, "failover-drill", "redis", "-y")
    took = re.search(r"took a write after ([\d.]+) s", done.stdout)
    line("failover_drill", seconds, failed, sent,
         f"   write on the new primary after {took.group(1) if took else '?'} s")

    if args.upgrade:
        versions_file = PROJECT / "group_data" / "all.py"
        shipped = versions_file.read_text()
        deployed = lab.cluster.settings["airflow_version"]
        other = next(v for v in shipped_versions() if v != deployed)
        try:
            for name, version in (("upgrade_other", other), ("upgrade_back", deployed)):
                seconds, done, failed, sent = under_poller(lab, "upgrade", "--version", version,
                                                           "-y")
                install = step_seconds(done.stdout, "1", "2")
                line(name, seconds, failed, sent, f"   {version}, install {install:.0f} s")
        finally:
            versions_file.write_text(shipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
