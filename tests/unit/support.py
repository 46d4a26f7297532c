"""Helpers of the unit tests (the fixtures built on them are in conftest.py)."""

import dataclasses
import runpy
from pathlib import Path
from types import MappingProxyType

from pyinfra.api import Inventory
from pyinfra.api.util import get_template

from cluster.run import connections
from cluster.systems import PACKAGING, REDIS, RELEASES

PROJECT = Path(__file__).resolve().parents[2]
MARKER = "Managed by the airflow-cluster deploy"
# Fixed secrets: rendered files are compared with literal text.
SECRETS = {
    "fernet_key": "x" * 43 + "=",
    "api_secret_key": "api-secret-key",
    "jwt_secret": "jwt-secret",
    "redis_password": "r3dis-PW_x",
    "postgres_password": "pg-PW_y",
    "celery_db_password": "celery-PW_z",
    "admin_password": "admin-PW",
    "stats_password": "stats-PW",
    "vrrp_password": "vrrpPW",
}


def render_template(inventory, template, cluster, host, secrets=SECRETS, settings=None,
                    release=RELEASES["debian", "12"], **extra):
    """`template` rendered for `host` exactly as the deploy renders it (tasks/context.py:
    the same names, pyinfra's Jinja2 settings with StrictUndefined)."""
    values = {
        "cluster": cluster,
        "node": cluster.node(host),
        "settings": settings or inventory.get_host(host).data.dict(),
        "secrets": secrets,
        "connections": connections(cluster, secrets),
        "release": release,
        "packaging": PACKAGING[release.family],
        "redis": REDIS[release.family],
        **extra,
    }
    return get_template(str(PROJECT / template)).render(values)


def replace(model, **changes):
    """A copy of a frozen model (Cluster, Broker, Database) with some fields changed;
    mappings given as dicts are frozen like the model's own."""
    frozen = {k: MappingProxyType(v) if isinstance(v, dict) else v for k, v in changes.items()}
    return dataclasses.replace(model, **frozen)


def group_data(group):
    """The settings of group_data/<group>.py, as pyinfra reads them."""
    path = PROJECT / "group_data" / f"{group}.py"
    if not path.exists():
        return {}
    return {k: v for k, v in runpy.run_path(str(path)).items() if not k.startswith("__")}


ALL_DATA = group_data("all")
LAB_ADDRESSES = {
    "lb1": "172.29.213.11", "lb2": "172.29.213.12",
    "redis1": "172.29.213.21", "redis2": "172.29.213.22", "redis3": "172.29.213.23",
    "db1": "172.29.213.31", "web1": "172.29.213.41", "web2": "172.29.213.42",
    "worker1": "172.29.213.51", "worker2": "172.29.213.52",
}
GROUPS = {
    "lb": ("lb1", "lb2"),
    "redis": ("redis1", "redis2", "redis3"),
    "postgres": ("db1",),
    "web": ("web1", "web2"),
    "scheduler": ("web1", "web2"),
    "worker": ("worker1", "worker2"),
}


def api_inventory(groups=GROUPS, addresses=LAB_ADDRESSES, all_data=None, override=None):
    """An Inventory made with pyinfra's API (no files), data = shipped group_data/all.py."""
    names = list(dict.fromkeys(n for hosts in groups.values() for n in hosts))
    return Inventory(
        ([(n, {"ssh_hostname": addresses[n]}) for n in names],
         {**ALL_DATA, "lb_vip": "172.29.213.10", **(all_data or {})}),
        override_data=override,
        **{group: (list(hosts), group_data(group)) for group, hosts in groups.items() if hosts},
    )
