"""The host's worker instances as systemd sees them, and starting/stopping them.

An instance N is the unit airflow-worker@N.service. Its stop is Celery's warm shutdown
(KillMode=mixed, TimeoutStopSec=worker_stop_timeout): the instance stops taking tasks and the
unit ends when its running tasks have finished. Jobs are queued with --no-block: a stop may
take as long as the longest task, and the autoscaler must not wait for it.
"""

import json
import re
import subprocess
from dataclasses import dataclass

TEMPLATE = "airflow-worker@"
_INSTANCE = re.compile(r"^airflow-worker@(\d+)\.service$")


@dataclass(frozen=True)
class Instances:
    running: frozenset[int]  # starting, active, or stopping only to start again (restart)
    stopping: frozenset[int]  # in a stop that ends inactive


def unit(number: int) -> str:
    return f"{TEMPLATE}{number}.service"


def instances() -> Instances:
    units = _systemctl_json("list-units", "--all", f"{TEMPLATE}*.service")
    jobs = {j["unit"]: j["type"] for j in _jobs()}
    running, stopping = set(), set()
    for entry in units:
        match = _INSTANCE.match(entry["unit"])
        if not match:
            continue
        number, job = int(match.group(1)), jobs.get(entry["unit"])
        if job == "stop":
            # A stop job stays queued until the unit is inactive: a warm stop in progress.
            stopping.add(number)
        elif job is not None or entry["active"] not in ("inactive", "failed"):
            # Starting, running, restarting, or deactivating after a crash to be restarted.
            running.add(number)
    return Instances(frozenset(running), frozenset(stopping))


def start(numbers) -> None:
    _systemctl("start", "--no-block", *(unit(n) for n in numbers))


def restart(numbers) -> None:
    """Warm restart: each instance finishes its running tasks, then starts again."""
    _systemctl("restart", "--no-block", *(unit(n) for n in numbers))


def stop(numbers) -> None:
    """Warm stop: each instance finishes its running tasks first."""
    _systemctl("stop", "--no-block", *(unit(n) for n in numbers))


def _jobs() -> list[dict]:
    """Queued systemd jobs: [{"unit": ..., "type": "start"|"stop"|...}]."""
    out = subprocess.run(
        ["systemctl", "list-jobs", "--plain", "--no-legend", "--no-pager"],
        capture_output=True, text=True, check=True,
    ).stdout
    # Columns: JOB UNIT TYPE STATE
    return [
        {"unit": fields[1], "type": fields[2]}
        for fields in (line.split() for line in out.splitlines())
        if len(fields) >= 4
    ]


def _systemctl_json(*args) -> list[dict]:
    out = subprocess.run(
        ["systemctl", "--output=json", "--no-pager", *args],
        capture_output=True, text=True, check=True,
    ).stdout
    return json.loads(out or "[]")


def _systemctl(*args) -> None:
    subprocess.run(["systemctl", *args], check=True, capture_output=True, text=True)
