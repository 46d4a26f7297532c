"""Fixture tests of the deploy's own facts and operations, in pyinfra's style (its
tests/test_facts.py, tests/test_operations.py and tests/util.py): facts in, commands out.

tests/unit/fixtures/facts/<module>.<Fact>/<case>.json tests facts.<module>.<Fact>:
    {"arg": {command kwargs}, "command": "the shell command", "requires_command": "redis-cli",
     "output": [stdout lines], "fact": the processed value}
  An empty "output" is what pyinfra answers for a command that printed nothing, or whose
  required command is missing: the fact's default.

tests/unit/fixtures/operations/<module>.<op>/<case>.json tests operations.<module>.<op>:
    {"args": [...], "kwargs": {...},
     "facts": {"<module>.<Fact>": {"<kwargs as pyinfra prints them>": value} | value},
     "commands": [...], "noop_description": "..."}
  A command is its raw string, or [raw, masked] when part of it is masked (HiddenValue);
  a file upload is ["upload", content, dest] (content read from the path when
  the source is a file); a Python step run on the control machine
  (FunctionCommand) is ["call", function name, [arguments]]. Fact keys are pyinfra's `get_kwargs_str` of the
  arguments the operation asks with; a missing key fails the test. A fact asked more than
  once whose answer changes in between (after the operation's own commands ran, as
  systemd's status around a stop) lists its answers in order: {"$answers": [first, ...]}.
  A Broker argument is written {"$broker": {"master_name", "quorum", "servers": [[address,
  port], ...], "sentinels": [...]}}.

Every shell command, of a fact or an operation, must also parse (`sh -n`). The admin
password hash is salted: make_password_hash answers FIXED_HASH here.
"""

import json
import subprocess
from importlib import import_module
from inspect import getfullargspec
from pathlib import Path
from unittest.mock import patch

import pytest
from pyinfra.api import (
    Config, FactBase, FileUploadCommand, FunctionCommand, Inventory, StringCommand,
)
from pyinfra.api.util import get_kwargs_str
from pyinfra.context import ctx_host, ctx_state

from cluster.broker import Broker

FIXTURES = Path(__file__).resolve().parent / "fixtures"
FIXED_VERIFIER = "SCRAM-SHA-256$4096:Zml4dHVyZQ==$fixture:fixture"
FIXED_HASH = "scrypt:32768:8:1$fixture-salt$fixture-hash"


def fixture_files(kind):
    return sorted((FIXTURES / kind).glob("*/*.json"))


def fixture_id(path):
    return f"{path.parent.name}/{path.stem}"


def parse_value(value):
    """JSON values as the operations take them (see the module docstring)."""
    if isinstance(value, dict):
        if set(value) == {"$broker"}:
            broker = value["$broker"]
            return Broker(
                master_name=broker["master_name"],
                quorum=broker["quorum"],
                servers=tuple(tuple(server) for server in broker["servers"]),
                sentinels=tuple(tuple(sentinel) for sentinel in broker["sentinels"]),
                # Not read by the operations these fixtures test.
                publish_retry_policy={},
                publish_timeout=0,
            )
        return {key: parse_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [parse_value(item) for item in value]
    return value


def command_string(command):
    """pyinfra's get_command_string: the raw value, or [raw, masked] when they differ."""
    raw, masked = command.get_raw_value(), command.get_masked_value()
    return raw if raw == masked else [raw, masked]


def assert_shell_parses(raw):
    checked = subprocess.run(["sh", "-n", "-c", raw], capture_output=True, text=True)
    assert checked.returncode == 0, f"sh -n: {checked.stderr}\n{raw}"


def parse_commands(commands):
    out = []
    for command in commands:
        if isinstance(command, str):  # as pyinfra/api/operation.py does
            command = StringCommand(command.strip())
        if isinstance(command, StringCommand):
            assert_shell_parses(command.get_raw_value())
            if command.connector_arguments:  # how it runs, when not as the operation does
                out.append([command_string(command), command.connector_arguments])
            else:
                out.append(command_string(command))
        elif isinstance(command, FileUploadCommand):
            if isinstance(command.src, str):  # a control machine path
                data = Path(command.src).read_text()
            else:
                command.src.seek(0)
                data = command.src.read()
            out.append(["upload", data.decode() if isinstance(data, bytes) else data,
                        str(command.dest),
                        # Where it is staged, when not in the plain temporary file.
                        *([command.remote_temp_filename]
                          if command.remote_temp_filename not in (None, FakeHost.TEMP_FILE)
                          else [])])
        elif isinstance(command, FunctionCommand):
            out.append(["call", command.function.__name__,
                        json.loads(json.dumps(list(command.args)))])
        else:
            raise AssertionError(f"{command!r} is not a command these tests know")
    return out


class FakeState:
    """What the operations under test may read of pyinfra's state."""

    is_executing = False
    deploy_name = None
    deploy_kwargs = None

    def __init__(self):
        self.inventory = Inventory(([], {}))
        self.config = Config()


class FakeHost:
    """A host whose facts are the fixture's (pyinfra's tests/util.py FakeHost, stricter)."""

    in_op = True
    current_op_hash = None
    current_op_global_arguments = None
    current_deploy_data = None

    def __init__(self, name, facts):
        self.name = name
        self.facts = facts
        self.noop_description = None
        self.data = {}

    def noop(self, description):
        self.noop_description = description

    TEMP_FILE = "_tempfile_"

    def get_temp_filename(self, *args, **kwargs):
        return self.TEMP_FILE

    def get_fact(self, cls, *args, **kwargs):
        assert not args, "ask facts with keyword arguments (fixture keys are kwargs strings)"
        key = f"{cls.__module__.split('.')[-1]}.{cls.__name__}"
        assert key in self.facts, f"missing test fact data: {key}"
        value = self.facts[key]
        # Global arguments (how the fact runs, e.g. _su_user) are not the fact's own.
        kwargs = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        if kwargs:
            real = getfullargspec(cls.command).args
            assert set(kwargs) <= set(real), f"{key} has no arguments {set(kwargs) - set(real)}"
            kwargs_str = get_kwargs_str(kwargs)
            assert kwargs_str in value, f"missing test fact data: {key} [{kwargs_str}]"
            value = value[kwargs_str]
        if isinstance(value, dict) and set(value) == {"$answers"}:
            assert value["$answers"], f"{key} asked more often than the fixture answers"
            value = value["$answers"].pop(0)
        return parse_value(value)


@pytest.mark.parametrize("path", fixture_files("facts"), ids=fixture_id)
def test_fact(path):
    module_name, class_name = path.parent.name.split(".")
    fact = getattr(import_module(f"facts.{module_name}"), class_name)()
    data = json.loads(path.read_text())
    arg = parse_value(data.get("arg", {}))

    command = fact.command(**arg)
    command = command if isinstance(command, StringCommand) else StringCommand(command)
    assert command_string(command) == data["command"]
    assert_shell_parses(command.get_raw_value())
    assert fact.requires_command(**arg) == data.get("requires_command")

    output = data["output"]
    value = fact.process(output) if output else fact.default()
    assert json.loads(json.dumps(value)) == data["fact"]


@pytest.mark.parametrize("path", fixture_files("operations"), ids=fixture_id)
def test_operation(path):
    module_name, op_name = path.parent.name.split(".")
    op = getattr(import_module(f"operations.{module_name}"), op_name)
    data = json.loads(path.read_text())
    host = FakeHost(data.get("host", "somehost"), json.loads(json.dumps(data.get("facts", {}))))
    # The operation's global arguments, e.g. {"_sudo": true}.
    host.current_op_global_arguments = data.get("global_arguments")
    args = parse_value(data.get("args", []))
    kwargs = parse_value(data.get("kwargs", {}))

    with (
        ctx_state.use(FakeState()),
        ctx_host.use(host),
        patch("operations.airflow_db.make_password_hash", lambda password: FIXED_HASH),
        patch("operations.postgres.scram_verifier", lambda password: FIXED_VERIFIER),
    ):
        commands = parse_commands(op._inner(*args, **kwargs))

    assert commands == data["commands"]
    if not commands or "noop_description" in data:
        assert host.noop_description == data.get("noop_description"), "noop description"


def test_every_custom_fact_and_operation_has_fixtures():
    """Each fact class of facts/ and each operation of operations/ has a fixture folder."""
    project = FIXTURES.parents[2]
    tested = {p.name for kind in ("facts", "operations") for p in (FIXTURES / kind).iterdir()}
    wanted = set()
    for kind in ("facts", "operations"):
        for source in sorted((project / kind).glob("*.py")):
            if source.name == "__init__.py":
                continue
            module = import_module(f"{kind}.{source.stem}")
            for name, value in vars(module).items():
                if getattr(value, "__module__", None) != module.__name__:
                    continue
                is_fact = (
                    kind == "facts"
                    and isinstance(value, type)
                    and issubclass(value, FactBase)
                    and callable(getattr(value, "command", None))
                )
                is_op = kind == "operations" and hasattr(value, "_inner")
                if is_fact or is_op:
                    wanted.add(f"{source.stem}.{name}")
    assert wanted and wanted <= tested, f"no fixtures for {sorted(wanted - tested)}"


def test_admin_user_reuses_the_status_migrated_read_when_nothing_was_migrated():
    """One database check per run (each imports Airflow on the host): the fact answers once;
    a second question would fail the fixture host."""
    from operations.airflow_db import admin_user, conn_sha256, migrated
    from cluster.passwords import make_password_hash

    conn = "postgresql+psycopg2://airflow:pw@db1:5432/airflow"
    status = {"db": "current", "conn_sha256": conn_sha256(conn),
              "admin_password_hash": make_password_hash("admin-PW"), "celery_results": True}
    key = "admin_user=admin, python=/opt/airflow/venv/bin/python"
    host = FakeHost("web1", {"airflow_db.AirflowDbStatus": {key: {"$answers": [status]}}})
    python = "/opt/airflow/venv/bin/python"
    with ctx_state.use(FakeState()), ctx_host.use(host):
        assert parse_commands(migrated._inner(on="web1", python=python, admin_user="admin",
                                              conn=conn, reinstalled=False)) == []
        assert parse_commands(admin_user._inner(on="web1", python=python, user="admin",
                                                email="a@b.c", password="admin-PW")) == []
        assert host.noop_description == "admin user 'admin' has the secrets file's password"
        # Once used, it is gone: the next run asks again (and the fixture has no answer left).
        with pytest.raises(AssertionError, match="asked more often"):
            parse_commands(admin_user._inner(on="web1", python=python, user="admin",
                                             email="a@b.c", password="admin-PW"))


def test_admin_user_reuses_the_status_read_before_a_migration():
    """A cold deploy's database: one status read (before the migration: no admin yet), then the
    migration, and the admin created from that answer with no second question of the host."""
    from operations.airflow_db import ADMIN_HASH_FILE, HELPER, admin_user, migrated

    status = {"db": "unknown", "conn_sha256": None, "admin_password_hash": None,
              "celery_results": None}
    key = "admin_user=admin, python=/opt/airflow/venv/bin/python"
    host = FakeHost("web1", {"airflow_db.AirflowDbStatus": {key: {"$answers": [status]}}})
    python = "/opt/airflow/venv/bin/python"
    with (
        ctx_state.use(FakeState()),
        ctx_host.use(host),
        patch("operations.airflow_db.make_password_hash", lambda password: FIXED_HASH),
    ):
        assert parse_commands(migrated._inner(
            on="web1", python=python, admin_user="admin", conn="postgresql://db1/airflow",
            reinstalled=True)) == [f"{python} {HELPER} migrate"]
        commands = parse_commands(admin_user._inner(on="web1", python=python, user="admin",
                                                    email="a@b.c", password="admin-PW"))
    assert commands[-1] == f"{python} {HELPER} set-admin admin a@b.c {ADMIN_HASH_FILE}"
