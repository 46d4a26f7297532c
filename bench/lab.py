"""Lab timings, one figure per line (seconds):

    cold_up        `lab up` with no cached base image (only with --cold: deletes the image)
    warm_up        `lab up` after `lab down`, base image cached
    deploy_first   `pyinfra -y --json inventory.py deploy.py` on the fresh lab (if deploy.py exists)
    deploy_rerun   the same again, nothing left to change

Run from anywhere: python bench/lab.py [--cold] [--no-deploy]. Leaves the lab up.
"""

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))


def timed(argv: list[str]) -> float:
    started = time.monotonic()
    result = subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return elapsed


def lab(*args: str) -> list[str]:
    return [sys.executable, "-m", "lab", *args]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="also time a cold up (deletes the cached base image)")
    parser.add_argument("--no-deploy", action="store_true", help="time the lab only")
    args = parser.parse_args()

    timed(lab("down"))
    if args.cold:
        base = Path(os.environ.get("LAB_DIR", "/var/lib/airflow-lab")) / "base-bookworm"
        shutil.rmtree(base, ignore_errors=True)
        print(f"cold_up {timed(lab('up')):.1f}", flush=True)
        timed(lab("down"))
    print(f"warm_up {timed(lab('up')):.1f}", flush=True)

    if not args.no_deploy and (PROJECT / "deploy.py").is_file():
        deploy = [PYINFRA, "-y", "--json", "inventory.py", "deploy.py"]
        print(f"deploy_first {timed(deploy):.1f}", flush=True)
        print(f"deploy_rerun {timed(deploy):.1f}", flush=True)


if __name__ == "__main__":
    main()
