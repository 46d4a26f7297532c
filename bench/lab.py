"""Lab timings, one figure per line (seconds):

    cold_up        `lab up` with no cached base image (only with --cold: deletes the image)
    warm_up        `lab up` after `lab down`, base image cached
    deploy_first   `pyinfra -y --json inventory.py deploy.py` on the fresh lab (if deploy.py exists)
    deploy_rerun   the same again, nothing left to change

Run from the project dir: python -m bench.lab [--cold] [--no-deploy]. Leaves the lab up.
"""

import shutil
import sys

from bench import arguments, timed
from lab.client import PROJECT, run_lab, run_pyinfra
from lab.paths import LabPaths


def checked(seconds_and_result, what) -> float:
    seconds, result = seconds_and_result
    if result.returncode != 0:
        sys.exit(f"{what} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    return seconds


def lab(*args) -> float:
    return checked(timed(run_lab, *args, timeout=None), f"lab {' '.join(args)}")


def deploy() -> float:
    return checked(timed(run_pyinfra, timeout=None), "pyinfra deploy.py")


def main() -> None:
    parser = arguments(__doc__, inventory=False)
    parser.add_argument("--cold", action="store_true", help="also time a cold up (deletes the cached base image)")
    parser.add_argument("--no-deploy", action="store_true", help="time the lab only")
    args = parser.parse_args()

    lab("down")
    if args.cold:
        shutil.rmtree(LabPaths.from_env().base, ignore_errors=True)
        print(f"cold_up {lab('up'):.1f}", flush=True)
        lab("down")
    print(f"warm_up {lab('up'):.1f}", flush=True)

    if not args.no_deploy and (PROJECT / "deploy.py").is_file():
        print(f"deploy_first {deploy():.1f}", flush=True)
        print(f"deploy_rerun {deploy():.1f}", flush=True)


if __name__ == "__main__":
    main()
