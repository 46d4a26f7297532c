"""The run prepared once per pyinfra run (cluster/run.py), and the one host a run checks the
database from (tasks/airflow.py): the only values that depend on the run, not the inventory."""

import pytest
from pyinfra.api import Config, State
from pyinfra.context import ctx_inventory, ctx_state

import cluster.run
from cluster.errors import ClusterConfigError
from cluster.model import build_cluster
from tasks.airflow import database_host
from tests.unit.support import GROUPS, api_inventory


@pytest.fixture
def counted(monkeypatch):
    """cluster.run.prepare replaced by a counter: the Run is the call's number."""
    calls = []

    def prepare(inventory, project_dir=None):
        calls.append(inventory)
        return len(calls)

    monkeypatch.setattr(cluster.run, "prepare", prepare)
    return calls


def test_prepared_once_per_run(counted):
    inventory = api_inventory()
    first, second = State(inventory, Config()), State(inventory, Config())
    with ctx_state.use(first):
        assert cluster.run.prepare_once(inventory) == 1
        assert cluster.run.prepare_once(inventory) == 1  # the other hosts of the run
    with ctx_state.use(second):
        assert cluster.run.prepare_once(inventory) == 2  # another run prepares again
    assert len(counted) == 2


def test_a_failed_preparation_fails_every_host(monkeypatch):
    def refuse(inventory, project_dir=None):
        raise ClusterConfigError("bad inventory")

    monkeypatch.setattr(cluster.run, "prepare", refuse)
    inventory = api_inventory()
    with ctx_state.use(State(inventory, Config())):
        for _host in range(2):
            with pytest.raises(ClusterConfigError, match="bad inventory"):
                cluster.run.prepare_once(inventory)


@pytest.mark.parametrize("groups, active, expected", [
    (GROUPS, None, "web1"),  # a full run: the first API server or scheduler host
    (GROUPS, ["web2", "worker1"], "web2"),  # --limit web2 --limit worker1
    # A worker host holds no database password: never it, even first in the inventory.
    ({"worker": GROUPS["worker"], **GROUPS}, None, "web1"),
    (GROUPS, ["worker2", "worker1", "lb1"], None),  # --limit worker --limit lb
    (GROUPS, ["lb1", "redis1"], None),  # no Airflow host in the run
])
def test_database_is_checked_from_the_first_api_server_or_scheduler_host_of_the_run(
        groups, active, expected):
    inventory = api_inventory(groups)
    state = State(inventory, Config())
    names = active or [host.name for host in inventory]
    state.active_hosts = {inventory.get_host(name) for name in names}
    with ctx_state.use(state), ctx_inventory.use(inventory):
        assert database_host(build_cluster(inventory)) == expected
