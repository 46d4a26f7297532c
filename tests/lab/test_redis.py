"""Redis and Sentinel on the redis hosts, as deployed: services, addresses, authentication,
file ownership, the settings in force and a whole replication topology."""

import time
import uuid

import pytest
import redis
from redis.sentinel import Sentinel

from lab.client.broker import NO_RETRY
from tests.lab.support import listening, owner_and_mode

REDIS_HOSTS = ("redis1", "redis2", "redis3")
RUNTIME_FILES = ("/etc/redis/redis.conf", "/etc/redis/sentinel.conf")
OWNED_FILES = ("/etc/redis/airflow-cluster/redis.conf", "/etc/redis/airflow-cluster/sentinel.conf")


def test_rerun_changes_nothing(data_tier):
    rerun = data_tier["rerun"]
    assert rerun.totals.get("error", 0) == 0, rerun.describe()
    assert rerun.changed_operations() == [], rerun.changed_operations()


@pytest.mark.parametrize("name", REDIS_HOSTS)
def test_services_running_and_enabled(redis_lab, name):
    host = redis_lab.host(name)
    for service in ("redis-server", "redis-sentinel"):
        assert host.service(service).is_running, service
        assert host.service(service).is_enabled, service


@pytest.mark.parametrize("name", REDIS_HOSTS)
def test_listening_on_cluster_address_and_localhost_only(redis_lab, name):
    host = redis_lab.host(name)
    address = redis_lab.cluster.node(name).address
    for port in (redis_lab.cluster.settings["redis_port"], redis_lab.cluster.settings["sentinel_port"]):
        assert listening(host, port) == {address, "127.0.0.1"}, port


@pytest.mark.parametrize("name", REDIS_HOSTS)
def test_config_files_are_private(redis_lab, name):
    host = redis_lab.host(name)
    for path in RUNTIME_FILES + OWNED_FILES:
        user, group, mode = owner_and_mode(host, path)
        assert (user, group) == ("redis", "redis"), path
        assert mode & ~0o640 == 0, f"{path} has mode {mode:o}: the password is in it"
    directory = host.file("/etc/redis/airflow-cluster")
    assert (directory.user, directory.group, directory.mode & 0o777) == ("root", "redis", 0o750)


@pytest.mark.parametrize("name", REDIS_HOSTS)
def test_runtime_files_include_the_deploy_owned_ones(redis_lab, name):
    host = redis_lab.host(name)
    for runtime, owned in zip(RUNTIME_FILES, OWNED_FILES):
        lines = host.file(runtime).content_string.splitlines()
        assert lines[0].startswith("# Managed by the airflow-cluster deploy"), runtime
        directives = [line for line in lines if line and not line.startswith("#")]
        assert directives[0] == f"include {owned}", runtime


@pytest.mark.parametrize("name", REDIS_HOSTS)
def test_unauthenticated_commands_are_refused(redis_lab, name):
    address = redis_lab.cluster.node(name).address
    for port in (redis_lab.cluster.settings["redis_port"], redis_lab.cluster.settings["sentinel_port"]):
        # Refused is final: redis-py would retry it with backoff (an AuthenticationError is a
        # ConnectionError), seconds per assertion.
        anonymous = redis.Redis(host=address, port=port, socket_timeout=10, **NO_RETRY)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        wrong = redis.Redis(host=address, port=port, password="not-the-password",
                            socket_timeout=10, **NO_RETRY)
        with pytest.raises(redis.AuthenticationError):
            wrong.ping()
    # And over localhost on the host itself.
    out = redis_lab.host(name).run("redis-cli -h 127.0.0.1 -p 6379 GET anything").stdout
    assert "NOAUTH" in out


@pytest.mark.parametrize("name", REDIS_HOSTS)
def test_settings_in_force(redis_lab, name):
    server = redis_lab.server(redis_lab.cluster.node(name).address)
    config = server.config_get("*")
    assert config["maxmemory-policy"] == "noeviction"
    assert config["appendonly"] == "yes"
    assert config["protected-mode"] == "yes"
    assert int(config["maxmemory"]) == 256 * 1024 * 1024
    assert config["bind"] == f"{redis_lab.cluster.node(name).address} 127.0.0.1"
    assert config["masterauth"] == redis_lab.password


def test_sentinels_agree_on_one_primary_and_two_replicas_in_sync(redis_lab):
    settings = redis_lab.inventory.get_host("redis1").data.dict()
    primary = redis_lab.wait_healthy()
    replicas = sorted(set(redis_lab.names) - {primary})
    for address in redis_lab.names:
        client = redis_lab.sentinel_client(address)
        view = client.sentinel_master(redis_lab.master)
        assert (view["ip"], int(view["port"])) == (primary, redis_lab.redis_port)
        assert view["quorum"] == redis_lab.cluster.broker.quorum == 2
        assert int(view["down-after-milliseconds"]) == settings["sentinel_down_after_ms"]
        assert int(view["failover-timeout"]) == settings["sentinel_failover_timeout_ms"]
        assert int(view["parallel-syncs"]) == settings["sentinel_parallel_syncs"]
        assert int(view["num-other-sentinels"]) == 2
        known = client.sentinel_slaves(redis_lab.master)
        assert sorted(r["ip"] for r in known) == replicas
        assert all(r["is_slave"] and not r["is_sdown"] for r in known)
    # In sync: a write is on both replicas within the timeout, and their offsets catch up.
    key = f"test:sync:{uuid.uuid4().hex}"
    writer = redis_lab.server(primary)
    writer.set(key, "1")
    assert writer.execute_command("WAIT", 2, 10000) == 2
    offset = int(writer.info("replication")["master_repl_offset"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        offsets = [int(redis_lab.server(r).info("replication")["slave_repl_offset"]) for r in replicas]
        if min(offsets) >= offset:
            break
        time.sleep(0.5)
    assert min(offsets) >= offset, (offsets, offset)
    for address in replicas:
        assert redis_lab.server(address).get(key) == "1"
        with pytest.raises(redis.ReadOnlyError):
            redis_lab.server(address).set(key, "2")
    writer.delete(key)


def test_broker_url_reaches_the_primary(redis_lab):
    """The model's broker URL and transport options name sentinels that answer."""
    url = redis_lab.connections.celery_broker_url
    options = redis_lab.connections.celery_broker_transport_options
    hosts = [part.split("@", 1)[1] for part in url.split(";")]
    sentinel = Sentinel(
        [(h.rsplit(":", 1)[0], int(h.rsplit(":", 1)[1])) for h in hosts],
        sentinel_kwargs={**options["sentinel_kwargs"], "socket_timeout": 10},
        password=redis_lab.password,
        socket_timeout=10,
    )
    assert sentinel.discover_master(options["master_name"])[0] == redis_lab.primary()
    assert sentinel.master_for(options["master_name"]).ping()

