"""Fixtures shared by the unit tests: the shipped lab inventory, its model, and templates
rendered exactly as the deploy renders them (tests/unit/support.py)."""

import pytest

from cluster.model import build_cluster, load_inventory
from tests.unit.support import PROJECT, render_template


@pytest.fixture(scope="session")
def inventory():
    """The shipped inventory.py with group_data, as the pyinfra CLI loads them."""
    return load_inventory(project_dir=PROJECT)


@pytest.fixture(scope="session")
def cluster(inventory):
    return build_cluster(inventory, PROJECT)


@pytest.fixture(scope="session")
def render(inventory):
    """render(template, cluster, host, ...): see support.render_template."""

    def render(template, cluster, host, **kwargs):
        return render_template(inventory, template, cluster, host, **kwargs)

    return render
