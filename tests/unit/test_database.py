"""The metadata database's model, offline: URLs, max_connections, pg_hba.conf and the
PostgreSQL templates."""

import pytest

from cluster import database as d
from cluster.errors import ClusterConfigError
from tests.unit.support import MARKER, replace

PG_TEMPLATES = {
    "settings": "templates/etc/postgresql/VERSION/main/conf.d/airflow-cluster.conf.j2",
    "hba": "templates/etc/postgresql/VERSION/main/pg_hba.conf.j2",
}


def test_database_urls(cluster):
    assert d.sql_alchemy_conn(cluster.database, "pg-PW_y") == (
        "postgresql+psycopg2://airflow:pg-PW_y@172.29.213.31:5432/airflow"
    )
    assert d.celery_result_backend(cluster.database, "pg-PW_y") == (
        "db+postgresql://airflow:pg-PW_y@172.29.213.31:5432/airflow"
    )
    external = replace(cluster.database, host="db.example", options="sslmode=require")
    assert d.sql_alchemy_conn(external, "p/w") == (
        "postgresql+psycopg2://airflow:p%2Fw@db.example:5432/airflow?sslmode=require"
    )
    v6 = replace(cluster.database, host="fd00::31")
    assert d.sql_alchemy_conn(v6, "pw") == "postgresql+psycopg2://airflow:pw@[fd00::31]:5432/airflow"


def build(cluster, inventory, groups=None, **pg_settings):
    """build_database of the lab with some groups or postgres host settings changed."""
    groups = {**cluster.groups, **(groups or {})}
    settings = {**inventory.get_host("db1").data.dict(), **pg_settings}

    def addresses_of(group):
        return tuple(cluster.node(name).address for name in groups[group])

    return d.build_database(cluster.settings, groups, addresses_of, settings)


def test_max_connections_from_the_inventory(cluster, inventory):
    demand = cluster.database.connection_demand
    # 2 API servers, 2 scheduler hosts (scheduler + DAG processor + triggerer), 2 workers.
    assert demand == {"api_server": 120, "scheduler": 40, "dag_processor": 30,
                      "triggerer": 30, "worker": 40}
    assert cluster.database.max_connections == 280
    small = {"web": ("web1",), "scheduler": ("web1",), "worker": ("worker1",)}
    assert build(cluster, inventory, small, postgres_reserved_connections=0).max_connections == 130
    tiny = dict.fromkeys(demand, 1)
    assert build(cluster, inventory, small, postgres_connection_budget=tiny).max_connections == 100


def test_connection_budget_names_every_kind():
    d.check_postgres_settings({"postgres_connection_budget": dict.fromkeys(d.BUDGET_KINDS, 1)})
    with pytest.raises(ClusterConfigError, match="postgres_connection_budget"):
        d.check_postgres_settings({"postgres_connection_budget": {"api_server": 1}})


def test_external_database_has_nothing_to_manage(cluster):
    groups = {**cluster.groups, "postgres": ()}
    settings = {**cluster.settings, "external_database_url": "postgresql://af@db.example/meta"}
    external = d.build_database(settings, groups, lambda group: ())
    assert (external.host, external.port, external.name, external.user) == (
        "db.example", 5432, "meta", "af")
    assert external.postgres_address is None and external.hba_entries == ()
    assert external.max_connections is None


def test_postgres_settings_template_matches_the_model(cluster, render):
    text = render(PG_TEMPLATES["settings"], cluster, "db1")
    assert text.splitlines()[0].startswith(f"# {MARKER}")
    lines = text.splitlines()
    assert f"max_connections = {cluster.database.max_connections}" in lines
    assert "listen_addresses = '172.29.213.31'" in lines
    assert "port = 5432" in lines
    assert "password_encryption = 'scram-sha-256'" in lines


def test_pg_hba_template_matches_the_model(cluster, render):
    text = render(PG_TEMPLATES["hba"], cluster, "db1")
    assert text.splitlines()[0].startswith(f"# {MARKER}")
    rows = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    expected = [
        [e.type, e.database, e.user, *([e.address] if e.address else []), e.method]
        for e in cluster.database.hba_entries
    ]
    assert rows == expected
    # The metadata role from the API server and scheduler hosts (web1/web2 are both: each
    # address once), the workers' Celery results role from the worker hosts. No lb or redis.
    assert [(r[2], r[3]) for r in rows if r[0] == "host"] == [
        ("airflow", "172.29.213.41/32"), ("airflow", "172.29.213.42/32"),
        ("airflow_celery", "172.29.213.51/32"), ("airflow_celery", "172.29.213.52/32"),
    ]
    assert all(r[-1] in ("peer", "scram-sha-256") for r in rows)




def test_templates_are_deterministic(cluster, render):
    for path in PG_TEMPLATES.values():
        assert render(path, cluster, "db1") == render(path, cluster, "db1")
