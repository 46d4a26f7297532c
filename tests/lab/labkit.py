"""Helpers of the end-to-end tests: run the lab CLI and pyinfra, read pyinfra's results."""

import json
import subprocess
import sys
from pathlib import Path

import testinfra

PROJECT = Path(__file__).resolve().parents[2]
PYINFRA = str(Path(sys.executable).with_name("pyinfra"))
INVENTORY = PROJECT / "inventory.py"

# A deploy installs packages through a proxy on a shared machine: be generous.
DEPLOY_TIMEOUT = 3600


def run_lab(*args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "lab", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


def run_pyinfra(*args, inventory=INVENTORY, timeout=DEPLOY_TIMEOUT):
    """`pyinfra -y --json INVENTORY deploy.py ARGS` from the project dir."""
    completed = subprocess.run(
        [PYINFRA, "-y", "--json", str(inventory), "deploy.py", *args],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return PyinfraRun(completed)


_SSH_HOSTS = {}


def ssh_host(name, timeout=300):
    """A testinfra host for inventory host `name`, over SSH with the inventory's key and
    known hosts (strict checking), as pyinfra itself connects. Cached per name."""
    if name not in _SSH_HOSTS:
        from cluster.model import load_inventory

        data = load_inventory(str(INVENTORY), project_dir=str(PROJECT)).get_host(name).data
        extra = (
            f"-o UserKnownHostsFile={data.ssh_known_hosts_file} "
            "-o StrictHostKeyChecking=yes -o ConnectTimeout=20"
        )
        _SSH_HOSTS[name] = testinfra.get_host(
            f"ssh://{data.ssh_user}@{data.ssh_hostname}",
            ssh_identity_file=data.ssh_key,
            ssh_extra_args=extra,
            timeout=timeout,
        )
    return _SSH_HOSTS[name]
