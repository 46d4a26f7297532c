"""Benchmarks that print figures, run from the project dir as modules:

    python -m bench.lab          lab up, first deploy, no-change re-run (make bench)
    python -m bench.failover     Redis broker failover drills
    python -m bench.lb_failover  load balancer (VIP) failover drills
    python -m bench.airflow      Airflow install, re-run and trigger latency
    python -m bench.deploy       cold deploys (wheelhouse vs. index), no-change re-runs, 20 hosts
    python -m bench.dag_delivery seconds until a shipped or pushed DAG is live
    python -m bench.autoscale    a burst of tasks autoscaled vs. fixed at the minimum
    python -m bench.drills       fault drills: a host lost per tier, a partition, a power cut
    python -m bench.ops          the operations commands timed under a client of the public URL

Each reaches the cluster through lab.client, as the end-to-end tests (tests/lab) do; this
module is their shared preamble: the command line and timing.
"""

import argparse
import sys
import time

from lab.client import INVENTORY


def arguments(doc, inventory=True) -> argparse.ArgumentParser:
    """A parser described by the bench's docstring `doc`, with --inventory unless told."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    parser = argparse.ArgumentParser(
        prog=f"python -m {spec.name}" if spec else None,
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    if inventory:
        parser.add_argument("--inventory", default=str(INVENTORY),
                            help="the cluster's inventory (default: the lab's)")
    return parser


def timed(function, *args, **kwargs):
    """(seconds, result) of function(*args, **kwargs)."""
    start = time.monotonic()
    result = function(*args, **kwargs)
    return time.monotonic() - start, result
