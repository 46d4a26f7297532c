"""The whole deploy (deploy.py) prepared on fresh hosts of one operating system, with no host
at all: every fact is answered from a recorded system (tests/unit/fixtures/systems/), as
pyinfra's operation tests do for one operation. What comes out is each host's operations,
their names and the commands they would run (test_systems.py).

A fresh host: every fact not recorded answers its default (no file, no package, no service),
which is what a host answers before the deploy's first run. The commands are generated as
pyinfra generates them when it executes, `_if` conditions left out (a step guarded by one is
listed as if its condition held).
"""

import json
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import pyinfra
from pyinfra.api import (
    Config, FileUploadCommand, FunctionCommand, ShortFactBase, State, StringCommand,
)
from pyinfra.api.host import Host
from pyinfra.api.state import StateStage
from pyinfra.api.util import get_kwargs_str
from pyinfra.context import ctx_host, ctx_inventory, ctx_state
from pyinfra.facts.server import LinuxDistribution, Which
from pyinfra_cli.util import exec_file

from tests.unit.support import PROJECT, api_inventory

SYSTEMS = Path(__file__).resolve().parent / "fixtures" / "systems"
# What every Linux host answers, whatever its system (pyinfra's own facts).
LINUX_FACTS = {
    "server.Os": "Linux",
    "server.Arch": "x86_64",
}


@dataclass(frozen=True)
class Step:
    """One operation of a host: its name and its commands (shell text; an upload is
    "upload <dest>", a Python step "call <function>")."""

    name: str
    commands: tuple[str, ...]


def system_names() -> list[str]:
    return sorted(path.stem for path in SYSTEMS.glob("*.json"))


def load_system(name: str) -> dict:
    return json.loads((SYSTEMS / f"{name}.json").read_text())


def _os_release_fact(text: str) -> dict:
    """pyinfra's own LinuxDistribution, processed from the recorded /etc/os-release."""
    return LinuxDistribution().process(["/etc/os-release", *text.splitlines(), "---"])


def recorded_facts(system: dict):
    """get_fact for a fresh host of `system`: recorded answers by "module.Fact" (and by the
    fact's kwargs string where given as {"kwargs": {...}}), else the fact's default."""
    distribution = _os_release_fact(system["os_release"])
    facts = {**LINUX_FACTS, **system.get("facts", {})}

    def get_fact(host, cls, *args, **kwargs):
        if cls is LinuxDistribution:
            return distribution
        if issubclass(cls, ShortFactBase):
            return cls().process_data(get_fact(host, cls.fact))
        if cls is Which:  # the system's own tools (useradd, ...) are installed
            return f"/usr/bin/{kwargs['command']}"
        key = f"{cls.__module__.split('.')[-1]}.{cls.__name__}"
        if key in facts:
            value = facts[key]
            if isinstance(value, dict) and "kwargs" in value:
                own = {k: v for k, v in kwargs.items() if not k.startswith("_")}
                return value["kwargs"].get(get_kwargs_str(own), cls.default())
            return value
        return cls.default()

    return get_fact


def _command_text(command) -> str:
    if isinstance(command, str):
        return command.strip()
    if isinstance(command, StringCommand):
        return command.get_masked_value()
    if isinstance(command, FileUploadCommand):
        return f"upload {command.dest}"
    if isinstance(command, FunctionCommand):
        return f"call {command.function.__name__}"
    return repr(command)


def deploy_steps(system_name: str, tmp_path: Path, all_data=None) -> dict[str, list[Step]]:
    """host name -> its steps, for the lab's inventory (tests/unit/support.py) on fresh hosts
    of the recorded system `system_name`."""
    system = load_system(system_name)
    inventory = api_inventory(all_data={
        # The run's secrets and TLS files, generated in a scratch directory.
        "secrets_file": str(tmp_path / "secrets" / "cluster.json"),
        # No wheel downloads: hosts install from the index (the command differs by one flag).
        "wheelhouse": False,
        **(all_data or {}),
    })
    state = State(inventory, Config())
    # Operations are told apart by their call stack from this file on, as in a CLI run.
    state.current_deploy_filename = str(PROJECT / "deploy.py")
    state.current_op_file_number = 0
    state.set_stage(StateStage.Prepare)
    get_fact = recorded_facts(system)
    steps: dict[str, list[Step]] = {}
    with (
        patch.object(Host, "get_fact", get_fact),
        patch.object(pyinfra, "is_cli", True),
        # uv's binary comes from its wheel for the host's platform: not downloaded here.
        patch("tasks.airflow.uv_binary", lambda version, platform: PROJECT / "README.md"),
        patch("operations.airflow_db.make_password_hash", lambda password: "fixture-hash"),
        patch("operations.postgres.scram_verifier", lambda password: "fixture-verifier"),
        ctx_state.use(state),
        ctx_inventory.use(inventory),
    ):
        hosts = list(inventory)
        for host in hosts:
            with ctx_host.use(host):
                exec_file(str(PROJECT / "deploy.py"))
        for host in hosts:
            with ctx_host.use(host):
                steps[host.name] = [
                    Step(
                        name=", ".join(sorted(state.op_meta[op_hash].names)),
                        commands=tuple(_command_text(c) for c in data.command_generator()),
                    )
                    for op_hash in state.get_op_order()
                    if (data := _op_data(state, host, op_hash)) is not None
                ]
    return steps


def _op_data(state, host, op_hash):
    try:
        return state.get_op_data_for_host(host, op_hash)
    except KeyError:
        return None
