"""How long the deploy takes onto fresh lab hosts and when nothing changes, one run, figures
side by side (seconds):

    cold_wheelhouse   `pyinfra -y inventory.py deploy.py` onto fresh hosts (base image cached):
                      setting wheelhouse on, the default (the control machine's wheel cache as
                      found: say --cold-cache to empty it first)
    cold_index        the same onto fresh hosts with --data wheelhouse=False: each Airflow host
                      downloads the lock from the index through the lab's proxy (uv)
    pip_one_host      one host's plain `pip install` of the same lock into a fresh venv, no
                      cache, through the same proxy (measured in this run); goal:
                      cold_wheelhouse <= 3 x pip_one_host
    no_change         median of 3 re-runs with nothing to change (changed operations must be
                      0); goal <= 10 s
    hosts_20_*        with --hosts 20: cold and no-change for a 20-host lab (ten more workers,
                      bench/inventory_20.py), to see how they grow with hosts

    python -m bench.deploy [--skip-index] [--hosts 10|20] [--cold-cache]

DESTROYS the lab (`lab down` before each cold deploy); leaves the 10-host lab deployed.
"""

import shutil
import statistics
import sys
from pathlib import Path

from bench import arguments, timed
from bench.airflow import single_host_pip_seconds
from cluster.wheelhouse import CACHE
from lab.client import PROJECT, Lab, run_lab, run_pyinfra

INVENTORY = PROJECT / "inventory.py"
INVENTORY_20 = PROJECT / "bench" / "inventory_20.py"


def fresh_lab(inventory: Path) -> None:
    """Every host of `inventory` booted fresh (lab down first: the whole lab)."""
    for args in (("down",), ("up", "--inventory", str(inventory))):
        done = run_lab(*args, timeout=None)
        if done.returncode:
            sys.exit(f"lab {' '.join(args)} failed:\n{done.stderr[-3000:]}")


def deploy(inventory: Path, *args) -> float:
    seconds, run = timed(run_pyinfra, *args, inventory=inventory, timeout=None)
    if run.returncode:
        sys.exit(f"deploy {' '.join(args)} failed:\n{run.describe()}")
    return seconds


def no_change(inventory: Path, runs=3) -> float:
    """Median of `runs` re-runs; each must change nothing."""
    times = []
    for _ in range(runs):
        seconds, run = timed(run_pyinfra, inventory=inventory, timeout=None)
        if run.returncode or run.changed_operations():
            sys.exit(f"a re-run changed {run.changed_operations()}:\n{run.describe()}")
        times.append(seconds)
    return statistics.median(times)


def main() -> None:
    parser = arguments(__doc__, inventory=False)
    parser.add_argument("--skip-index", action="store_true", help="no cold deploy from the index")
    parser.add_argument("--hosts", type=int, choices=(10, 20), default=10,
                        help="20: also the 20-host lab")
    parser.add_argument("--cold-cache", action="store_true",
                        help="empty the control machine's wheel cache first")
    args = parser.parse_args()
    figures = {}

    if args.cold_cache:
        shutil.rmtree(CACHE, ignore_errors=True)
    cache = "cold" if not CACHE.exists() else "warm"
    if not args.skip_index:
        fresh_lab(INVENTORY)
        figures["cold_index"] = deploy(INVENTORY, "--data", "wheelhouse=False")
    if args.hosts == 20:
        fresh_lab(INVENTORY_20)
        figures["hosts_20_cold_wheelhouse"] = deploy(INVENTORY_20)
        figures["hosts_20_no_change"] = no_change(INVENTORY_20)
    fresh_lab(INVENTORY)
    figures[f"cold_wheelhouse (control cache {cache})"] = deploy(INVENTORY)
    figures["no_change"] = no_change(INVENTORY)
    figures["pip_one_host"] = single_host_pip_seconds(Lab(INVENTORY))

    for name, seconds in figures.items():
        print(f"{name:<40} {seconds:7.1f}")
    cold = next(v for k, v in figures.items() if k.startswith("cold_wheelhouse"))
    print(f"{'cold_wheelhouse / pip_one_host':<40} {cold / figures['pip_one_host']:7.2f}"
          "   (goal <= 3)")
    print(f"{'no_change goal <= 10 s':<40} {'met' if figures['no_change'] <= 10 else 'not met'}")


if __name__ == "__main__":
    main()
