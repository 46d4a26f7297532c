"""The run prepared once per pyinfra run (cluster/run.py), and the one host a run checks the
database from (tasks/airflow.py): the only values that depend on the run, not the inventory."""

import pytest
from pyinfra.api import Config, State
from pyinfra.context import ctx_inventory, ctx_state

import cluster.run
from cluster.errors import ClusterConfigError
from tasks.airflow import database_host
from tests.unit.support import api_inventory


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


@pytest.mark.parametrize("active, expected", [
    (None, "web1"),  # a full run: the first Airflow host in inventory order
    (["worker2", "worker1", "lb1"], "worker1"),  # --limit worker --limit lb
    (["lb1", "redis1"], None),  # no Airflow host in the run
])
def test_database_is_checked_from_the_first_airflow_host_of_the_run(active, expected):
    inventory = api_inventory()
    state = State(inventory, Config())
    names = active or [host.name for host in inventory]
    state.active_hosts = {inventory.get_host(name) for name in names}
    with ctx_state.use(state), ctx_inventory.use(inventory):
        assert database_host() == expected
