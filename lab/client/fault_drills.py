"""The fault drills: break one part of the deployed cluster while a DAG of 50 short tasks
runs and a client polls the public URL five times a second, let it come back by itself, and
report what the users saw (tests/lab/test_zz_drills.py asserts on it, bench/drills.py prints
it). Every drill restores what it breaks, also when it fails half-way.

    with Drill(lab, "name") as drill:   # cluster healthy, poller on, the DAG running
        drill.fault_at = lab.kill_host("web2")
        ...                             # wait for the effect, restore (start, heal)
    drill.report                        # after: the DAG ended, the cluster healthy again
"""

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from lab.client.poller import Poller
from lab.client.waiting import wait_for

if TYPE_CHECKING:  # Lab lives in the package's __init__, which imports this module.
    from lab.client import Lab

DRILL_DAG = "airflow_cluster_drill"
# Shared, noisy machine: generous limits for everything that is not a measured figure.
HEALTHY_TIMEOUT = 600
RUN_TIMEOUT = 1500
BUSY_TIMEOUT = 300
FINAL_STATES = ("success", "failed", "upstream_failed", "skipped", "removed")


@dataclass
class DrillReport:
    drill: str
    requests: int = 0
    failed_requests: int = 0
    # Seconds the polling client went without a successful answer (poller.Poller.unavailable:
    # failed requests and requests hanging through a failover), and its slowest success.
    unavailable: float = 0.0
    slowest: float = 0.0
    dag_state: str = ""
    tasks: int = 0
    # Task instances that failed (for good), that had not ended yet when the report was made
    # (a run not waited for), and those that needed more than one try.
    failed_tasks: int = 0
    unfinished_tasks: int = 0
    retried: list = field(default_factory=list)
    # Seconds from the fault to every component healthy again (HealthAccess.problems); for
    # drills that keep a host down until the run has ended, that wait is included.
    recovered: float | None = None
    # How each service came back: "host unit: restarted by systemd" / "host: booted".
    returned: list = field(default_factory=list)
    # Figures of the drill itself (promotion time, VIP move, ...).
    facts: dict = field(default_factory=dict)
    task_instances: list = field(default_factory=list)

    def line(self) -> str:
        facts = ", ".join(f"{k} {v:.1f} s" if isinstance(v, float) else f"{k} {v}"
                          for k, v in self.facts.items())
        recovered = "never" if self.recovered is None else f"{self.recovered:.1f} s"
        unfinished = f", {self.unfinished_tasks} not ended" if self.unfinished_tasks else ""
        return (f"{self.drill}: client unavailable {self.unavailable:.1f} s "
                f"({self.failed_requests}/{self.requests} requests failed, slowest success "
                f"{self.slowest:.1f} s); DAG {self.dag_state}, {self.failed_tasks} of {self.tasks} "
                f"tasks failed{unfinished}, {len(self.retried)} retried; "
                f"healthy again after {recovered}" + (f"; {facts}" if facts else ""))


class Drill:
    """One drill's harness; see the module docstring. `tasks` tasks of `seconds` each; the
    fault comes once `busy` of them run."""

    def __init__(self, lab: "Lab", name, *, tasks=50, seconds=5, busy=8, power_cycled=(),
                 wait_for_run=True):
        self.lab, self.tasks, self.seconds, self.busy = lab, tasks, seconds, busy
        # False: the report takes the run as it stands once the cluster is healthy again.
        self.wait_for_run = wait_for_run
        self.report = DrillReport(name)
        self.facts = self.report.facts
        # Hosts the drill boots again (their services come back by booting).
        self.power_cycled = list(power_cycled)
        self.fault_at = None
        self.api = lab.api()
        self.poller = Poller(lab)

    def __enter__(self):
        self.lab.wait_cluster_healthy()
        self.before = self.lab.unit_starts()
        self.api.login(self.lab.secrets["admin_password"])
        self.api.unpause(DRILL_DAG)
        self.run_id = self.api.trigger(DRILL_DAG, {"tasks": self.tasks, "seconds": self.seconds})
        wait_for(f"{self.busy} tasks running", lambda: len(self.running()) >= self.busy,
                 timeout=BUSY_TIMEOUT, interval=0.5)
        # Last: __exit__ (which stops it) runs only once __enter__ has returned.
        self.poller.start()
        time.sleep(1)
        return self

    def running(self) -> list[dict]:
        """The drill run's task instances running now."""
        return [ti for ti in self.task_instances() if ti["state"] == "running"]

    def wait_finished(self) -> dict:
        """The drill run once it ended (the API may be down for a while: retried)."""
        return self.api_retrying(lambda: self.api.finished(DRILL_DAG, self.run_id, RUN_TIMEOUT))

    def task_instances(self) -> list[dict]:
        return self.api.task_instances(DRILL_DAG, self.run_id)

    def __exit__(self, kind, error, trace):
        try:
            if kind is None:
                self._outcome()
        finally:
            self.poller.stop()
        report = self.report
        start = self.fault_at or 0.0
        report.requests = len(self.poller.between(start))
        report.failed_requests = len(self.poller.failures(start))
        report.unavailable = self.poller.unavailable(start)
        report.slowest = max((s.seconds for s in self.poller.between(start) if s.ok), default=0.0)

    def _outcome(self):
        report = self.report
        if self.fault_at is None:
            raise AssertionError(f"{report.drill}: the drill set no fault_at")
        self.lab.wait_cluster_healthy()
        report.recovered = time.time() - self.fault_at
        if self.wait_for_run:
            self.wait_finished()
        report.dag_state = self.api_retrying(
            lambda: self.api.dag_run(DRILL_DAG, self.run_id))["state"]
        instances = self.api_retrying(self.task_instances)
        report.task_instances = instances
        report.tasks = len(instances)
        report.failed_tasks = sum(1 for ti in instances
                                  if ti["state"] in ("failed", "upstream_failed"))
        report.unfinished_tasks = sum(1 for ti in instances if ti["state"] not in FINAL_STATES)
        report.retried = [(ti["map_index"], ti["try_number"], ti["hostname"])
                          for ti in instances if ti["try_number"] > 1]
        report.returned = self.lab.returned(self.before, self.power_cycled)

    def api_retrying(self, call, timeout=RUN_TIMEOUT + HEALTHY_TIMEOUT):
        """call() once the API answers (logging in again if it forgot the session); `timeout`
        covers a call that waits itself (finished())."""

        def attempt():
            try:
                return call()
            except Exception:
                self.api.login(self.lab.secrets["admin_password"])
                raise

        return wait_for("the Airflow API answers", attempt, timeout=timeout, interval=2)


def started_at(ti) -> float:
    """A task instance's start as time.time() (the lab shares this machine's clock)."""
    return datetime.fromisoformat(ti["start_date"]).timestamp() if ti.get("start_date") else 0.0
