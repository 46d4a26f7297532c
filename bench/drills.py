"""Fault drills: each breaks one tier of the deployed cluster (the lab by default) while the
drill DAG (50 tasks of a few seconds, retries 3) runs and a client polls the public URL five
times a second, lets it come back by itself, and prints what the users saw.

    python -m bench.drills [--drill NAME ...] [--inventory inventory.py]

Per drill: seconds of unavailability seen by the client and its failed requests, the DAG's
failed and retried tasks, seconds from the fault until every component is healthy again, the
drill's own figures (promotion, VIP move, ...) and how each service came back (its host
booted, or systemd restarted it). Drills, in order (default: all):
  redis-sigkill, redis-plug, api-sigkill, scheduler-plug, worker-plug, vip-plug,
  postgres-restart, postgres-plug, redis-partition, power-cut.
Needs the lab's power controls (python -m lab kill|start|isolate|heal). Sends traffic to the
lab only. The goal for the VIP holder's plug: <= 3 s of errors.
"""

import sys
import time

from bench import arguments
from lab.client import Lab
from lab.client.tier_drills import DRILLS


def main():
    parser = arguments(__doc__)
    parser.add_argument("--drill", action="append", choices=list(DRILLS),
                        help="run only this drill (repeatable)")
    args = parser.parse_args()
    lab = Lab(args.inventory)
    failed = 0
    for name in args.drill or list(DRILLS):
        started = time.monotonic()
        try:
            report = DRILLS[name](lab)
        except Exception as error:  # noqa: BLE001 - report it, go on with the next drill
            failed += 1
            print(f"{name}: FAILED: {type(error).__name__}: {error}", flush=True)
            continue
        print(report.line(), flush=True)
        print(f"  came back: {'; '.join(report.returned) or 'nothing needed to'}; "
              f"retried tries: {report.retried}; drill took {time.monotonic() - started:.0f} s",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
