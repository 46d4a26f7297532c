"""Facts `python -m ops status` asks every host (ops/status/collect.py): the state of its
services, HAProxy's view of the API servers, whether it holds the VIP, its worker instances and
their Celery workers. Every command exits 0: what does not answer is part of the answer."""

import json
import shlex

from pyinfra.api import FactBase

from operations import haproxy


class ServiceStates(FactBase):
    """{unit: "active" | "activating" | "failed" | "inactive" | ...} of the loaded service units
    matching `patterns` (systemctl's ActiveState); a unit that is not installed is absent."""

    @staticmethod
    def default():
        return {}

    def command(self, patterns):
        words = " ".join(shlex.quote(p) for p in patterns)
        return f"systemctl list-units --all --type=service --output=json {words} || true"

    def process(self, output):
        units = json.loads("\n".join(output) or "[]")
        return {unit["unit"]: unit["active"] for unit in units if unit.get("load") == "loaded"}


class HaproxyServers(FactBase):
    """The API servers as this host's HAProxy sees them: {server: {"status", "sessions"}}
    (operations/haproxy.py); {} when HAProxy does not run."""

    @staticmethod
    def default():
        return {}

    def command(self):
        return haproxy.command("show stat") + " || true"

    def process(self, output):
        return haproxy.parse_servers(list(output))


class HeldAddresses(FactBase):
    """The IP addresses on this host's interfaces (a VIP among them when it holds it)."""

    @staticmethod
    def default():
        return []

    def command(self):
        return "ip -o addr show | awk '{print $4}'"

    def process(self, output):
        return [line.strip().split("/")[0] for line in output if line.strip()]


class AutoscalerStatus(FactBase):
    """A worker host's `airflow-cluster-autoscaler status --celery` (autoscaler/__main__.py):
    mode, instances, the last decision, and each instance's Celery worker (online, the tasks it
    runs); {"error": text} when it does not answer."""

    @staticmethod
    def default():
        return {"error": "no answer"}

    def command(self, command):
        return f"{shlex.quote(command)} status --celery 2>&1 || true"

    def process(self, output):
        text = "\n".join(output)
        start = text.find("{")
        try:
            return json.loads(text[start:]) if start >= 0 else {"error": text.strip()}
        except ValueError:
            return {"error": text.strip().splitlines()[-1] if text.strip() else "no answer"}
