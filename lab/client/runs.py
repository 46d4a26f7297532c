"""Commands run from the project dir: the lab CLI (run_lab), pyinfra (run_pyinfra) and the
operations CLI (run_ops)."""

import json
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
INVENTORY = PROJECT / "inventory.py"
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
# A deploy installs packages through a proxy on a shared machine: be generous.
DEPLOY_TIMEOUT = 3600


def _in_project(argv, timeout, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=PROJECT, capture_output=True, text=True, timeout=timeout,
                          env=env)


def run_lab(*args, timeout=900, env=None) -> subprocess.CompletedProcess:
    """`python -m lab ARGS` from the project dir (timeout=None: no limit; env: the whole
    environment, default this one's)."""
    return _in_project([sys.executable, "-m", "lab", *args], timeout, env)


def run_ops(*args, timeout=1800) -> subprocess.CompletedProcess:
    """`python -m ops ARGS` from the project dir, as an operator runs it."""
    return _in_project([sys.executable, "-m", "ops", *args], timeout)


class PyinfraRun:
    """One `pyinfra --json` run: its exit code, its results payload and its log."""

    def __init__(self, completed):
        self.returncode = completed.returncode
        self.stderr = completed.stderr
        self.stdout = completed.stdout
        try:
            self.payload = json.loads(completed.stdout)
        except json.JSONDecodeError:
            self.payload = None

    @property
    def results(self):
        return (self.payload or {}).get("results") or {}

    @property
    def totals(self):
        return self.results.get("totals", {})

    def changed_operations(self):
        """Names of the operations that changed something, with their hosts."""
        return [
            (op["name"], op["success"])
            for op in self.results.get("operations", [])
            if op["success"]
        ]

    def describe(self):
        return f"exit {self.returncode}\n--- stderr (tail) ---\n{self.stderr[-4000:]}"


def run_pyinfra(*args, inventory=INVENTORY, target=("deploy.py",), timeout=DEPLOY_TIMEOUT):
    """`pyinfra -y --json INVENTORY deploy.py ARGS` from the project dir (another command
    with e.g. target=("fact", "server.Hostname"))."""
    return PyinfraRun(_in_project([PYINFRA, "-y", "--json", str(inventory), *target, *args], timeout))
