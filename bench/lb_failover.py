"""Load balancer failover drill: how long HTTPS clients of the VIP see errors when HAProxy
stops on the lb host holding the VIP, and whether the VIP flaps back when it returns.

    python -m bench.lb_failover [--drills 3] [--inventory inventory.py]

Each drill, on a deployed cluster with two lb hosts (the lab by default): a client opens a
new HTTPS connection to the VIP every 50 ms (verifying the cluster's CA; any HTTP answer,
even HAProxy's 503 with no API server up, counts as served); `systemctl stop haproxy` on the
VIP holder; the drill records when the VIP appears on the other host and the client's
longest run of failures; then `systemctl start haproxy` and 10 s of watching that the VIP
stays where it is. Prints each drill and the medians. Sends traffic to the lab only.
"""

import http.client
import statistics
import sys
import threading
import time

from bench import arguments
from lab.client import Lab

PROBE_INTERVAL = 0.05
PROBE_TIMEOUT = 1.0
MOVE_TIMEOUT = 30
WATCH_AFTER_RETURN = 10


def served(lab):
    """Whether the VIP answers HTTPS (any HTTP status)."""
    try:
        lab.https_get(lab.cluster.lb_vip, "/api/v2/version", timeout=PROBE_TIMEOUT)
        return True
    except (OSError, http.client.HTTPException):
        return False


class Client(threading.Thread):
    """Probes the VIP until stopped; keeps (time, ok) of every probe."""

    def __init__(self, lab):
        super().__init__(daemon=True)
        self.lab, self.samples, self.stopping = lab, [], threading.Event()

    def run(self):
        while not self.stopping.is_set():
            self.samples.append((time.monotonic(), served(self.lab)))
            time.sleep(PROBE_INTERVAL)

    def longest_outage(self):
        longest, since = 0.0, None
        for at, ok in self.samples:
            if not ok and since is None:
                since = at
            elif ok and since is not None:
                longest, since = max(longest, at - since), None
        if since is not None:
            longest = max(longest, self.samples[-1][0] - since)
        return longest


def drill(lab):
    holders = lab.vip_holders()
    if len(holders) != 1:
        raise RuntimeError(f"expected one VIP holder, found {holders}")
    old = holders[0]
    new = next(n for n in lab.cluster.groups["lb"] if n != old)
    client = Client(lab)
    client.start()
    time.sleep(1)
    start = time.monotonic()
    lab.run(old, "systemctl stop haproxy", timeout=60)
    moved_after = None
    try:
        while time.monotonic() - start < MOVE_TIMEOUT:
            if lab.vip_holders() == [new]:
                moved_after = time.monotonic() - start
                break
            time.sleep(0.1)
        time.sleep(2)
    finally:
        lab.run(old, "systemctl start haproxy", timeout=60)
    returned = time.monotonic()
    flapped = False
    while time.monotonic() - returned < WATCH_AFTER_RETURN:
        if lab.vip_holders() != [new]:
            flapped = True
        time.sleep(0.5)
    client.stopping.set()
    client.join()
    failures = sum(1 for _, ok in client.samples if not ok)
    return {"from": old, "to": new, "vip_moved_s": moved_after,
            "client_outage_s": client.longest_outage(), "failed_probes": failures,
            "probes": len(client.samples), "flapped_back": flapped}


def main():
    parser = arguments(__doc__)
    parser.add_argument("--drills", type=int, default=3)
    args = parser.parse_args()
    lab = Lab(args.inventory)
    if lab.cluster.lb_vip is None:
        sys.exit("one lb host: no VIP to fail over")
    results = []
    for number in range(1, args.drills + 1):
        result = drill(lab)
        results.append(result)
        moved = result["vip_moved_s"]
        print(f"drill {number}: VIP {result['from']} -> {result['to']} in "
              f"{'NOT MOVED' if moved is None else f'{moved:.2f} s'}; client outage "
              f"{result['client_outage_s']:.2f} s ({result['failed_probes']}/{result['probes']} "
              f"probes failed); flapped back: {result['flapped_back']}", flush=True)
    moved = [r["vip_moved_s"] for r in results if r["vip_moved_s"] is not None]
    if moved:
        print(f"median: VIP moved in {statistics.median(moved):.2f} s, client outage "
              f"{statistics.median(r['client_outage_s'] for r in results):.2f} s")
    return 0 if len(moved) == len(results) and not any(r["flapped_back"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
