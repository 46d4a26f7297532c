"""Lab's health part: is every component of the deployed cluster up, as an operator would
check after an outage? The fault drills wait on it and time how long it took."""

import fnmatch
import json
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor

from cluster.services import AIRFLOW_COMPONENTS, WORKER_INSTANCES, host_units
from lab.client.waiting import wait_for


def parallel(function, items) -> list:
    """function(item) for every item, at the same time (SSH to several hosts)."""
    with ThreadPoolExecutor(max(1, len(items))) as pool:
        return list(pool.map(function, items))


class HealthAccess:
    """Mixed into Lab, which provides cluster, data(name), run(name, command), health() (the
    broker's), vip_holders(), backend_status(address) and api()."""

    def host_units(self, name) -> list[str]:
        """The unit patterns host `name` must run, by its groups."""
        return host_units(self.cluster.node(name).groups, vip=self.cluster.lb_vip is not None)

    def active_units(self, name) -> list[str]:
        """The service units active on host `name` (over SSH)."""
        done = self.run(name, "systemctl list-units --type=service --state=active -o json",
                        timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"{name}: systemctl list-units: {done.stderr.strip()}")
        return [unit["unit"] for unit in json.loads(done.stdout)]

    def host_problems(self, name) -> list[str]:
        try:
            active = self.active_units(name)
        except Exception as error:  # noqa: BLE001 - an unreachable host is the finding
            return [f"{name}: {type(error).__name__}: {error}"]
        problems = [f"{name}: {unit} not active" for unit in self.host_units(name)
                    if not fnmatch.filter(active, unit)]
        if "worker" in self.cluster.node(name).groups:
            running = len(fnmatch.filter(active, WORKER_INSTANCES))
            least = self.data(name).get("autoscale_min_instances")
            if running < least:
                problems.append(f"{name}: {running} worker instances, fewer than {least}")
        return problems

    def airflow_problems(self) -> list[str]:
        """What GET /api/v2/monitor/health through the public URL says is not healthy."""
        status, answer = self.api().call("GET", "/api/v2/monitor/health", auth=False, timeout=10)
        if status != 200:
            return [f"monitor/health: {status} {str(answer)[:200]}"]
        return [f"monitor/health: {component} {answer.get(component, {}).get('status')}"
                for component in AIRFLOW_COMPONENTS
                if answer.get(component, {}).get("status") != "healthy"]

    def problems(self) -> list[str]:
        """Everything not healthy in the cluster, [] when it is whole: every host's services,
        the broker (one primary, every replica and sentinel), one VIP holder, every API
        server up in every HAProxy, and Airflow's own health report."""
        found = [p for ps in parallel(self.host_problems, list(self.cluster.nodes)) for p in ps]
        checks = [self._broker_problem, self._vip_problem, self._backend_problems,
                  self.airflow_problems]
        for check in checks:
            try:
                found += check()
            except Exception as error:  # noqa: BLE001 - a failing check is a problem found
                found.append(f"{check.__name__.strip('_')}: {type(error).__name__}: {error}")
        return found

    def _broker_problem(self) -> list[str]:
        problem = self.health()
        return [f"broker: {problem}"] if problem else []

    def _vip_problem(self) -> list[str]:
        if self.cluster.lb_vip is None:
            return []
        holders = self.vip_holders()
        return [] if len(holders) == 1 else [f"VIP held by {holders or 'no host'}"]

    def _backend_problems(self) -> list[str]:
        found = []
        for name in self.cluster.groups["lb"]:
            servers = self.backend_status(self.cluster.node(name).address)
            found += [f"{name}: HAProxy sees {server} {state}"
                      for server, state in sorted(servers.items()) if state != "UP"]
        return found

    def wait_cluster_healthy(self, timeout=600) -> None:
        """Until problems() finds none; AssertionError naming what is left after `timeout`."""
        last = []

        def whole():
            nonlocal last
            last = self.problems()
            return not last

        if not wait_for("the cluster healthy", whole, timeout=timeout, interval=2, fail=False):
            raise AssertionError(f"cluster not healthy after {timeout} s: {last}")

    def unit_starts(self) -> dict[str, dict[str, tuple[int, str]]]:
        """host -> role unit -> (systemd's restart count, invocation id), to tell afterwards
        how each came back; {} for a host that does not answer."""
        names = list(self.cluster.nodes)
        return dict(zip(names, parallel(self._unit_starts, names)))

    def _unit_starts(self, name) -> dict[str, tuple[int, str]]:
        patterns = " ".join(shlex.quote(u) for u in self.host_units(name))
        try:
            done = self.run(
                name,
                "systemctl show -p Id -p NRestarts -p InvocationID $(systemctl list-units "
                f"--type=service --all --plain --no-legend --full {patterns} | cut -d' ' -f1)",
                timeout=30,
            )
        except subprocess.TimeoutExpired:
            return {}
        if done.returncode != 0:
            return {}
        starts = {}
        for block in done.stdout.strip().split("\n\n"):
            fields = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if "Id" in fields:
                starts[fields["Id"]] = (int(fields.get("NRestarts") or 0),
                                        fields.get("InvocationID", ""))
        return starts

    def returned(self, before, power_cycled=()) -> list[str]:
        """How each service that did not run on through a drill came back: its host booted,
        or systemd restarted it (Restart=), or something started it again."""
        after = self.unit_starts()
        lines = [f"{name}: booted" for name in power_cycled]
        for name, units in after.items():
            if name in power_cycled:
                continue
            for unit, (restarts, invocation) in sorted(units.items()):
                old_restarts, old_invocation = before.get(name, {}).get(unit, (restarts, invocation))
                if restarts > old_restarts:
                    lines.append(f"{name} {unit}: restarted by systemd ({restarts - old_restarts}x)")
                elif invocation != old_invocation:
                    lines.append(f"{name} {unit}: started again")
        return lines
