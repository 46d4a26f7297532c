"""Failover drill of the Redis broker: seconds from killing the primary to the first write
acknowledged by the new one.

    python -m bench.failover [--drills 5] [--inventory inventory.py]

Each drill, on a deployed cluster (the lab by default): a client writes continuously through
the primary the sentinels name (RPUSH, then WAIT for the replicas); the primary's
redis-server gets SIGKILL; the client keeps asking the sentinels and retrying until a write
succeeds on the promoted replica. Then it checks that every write acknowledged before the
kill is readable, starts the old primary again and waits until it has rejoined as a replica
and the cluster is whole. Prints each drill and the median (goal: <= 5 s).

The drill is lab.client.failover_drill, which tests/lab/test_redis_failover.py runs too.
"""

import statistics
import sys

from bench import arguments
from lab.client import GOAL_SECONDS, Lab, failover_drill


def main(argv=None):
    parser = arguments(__doc__)
    parser.add_argument("--drills", type=int, default=5)
    args = parser.parse_args(argv)
    lab = Lab(args.inventory)
    results = []
    for number in range(1, args.drills + 1):
        result = failover_drill(lab)
        results.append(result)
        print(f"drill {number}: {result.line()}", flush=True)
    median = statistics.median(r.unavailable for r in results)
    lost = sum(len(r.lost_waited) for r in results)
    print(
        f"failover: median {median:.2f} s from SIGKILL of the primary to the first write on the "
        f"new one over {len(results)} drills (goal <= {GOAL_SECONDS:.0f} s); "
        f"WAIT-replicated writes lost: {lost}"
    )
    return 0 if median <= GOAL_SECONDS and lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
