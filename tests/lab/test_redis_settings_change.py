"""A changed deploy-owned setting takes effect on every server although CONFIG REWRITE has
copied the old value into the runtime files: the deploy deletes those copies while the server
is stopped, restarts the replicas first and hands the primary role over before restarting the
old primary. Then back to the shipped value, and a re-run changes nothing."""

from lab.client import run_pyinfra

MIB = 1024 * 1024


def maxmemory(redis_lab):
    return {a: int(redis_lab.server(a).config_get("maxmemory")["maxmemory"]) for a in redis_lab.names}


def runtime_copies(redis_lab, address):
    """The maxmemory lines of the runtime file, which CONFIG REWRITE writes."""
    done = redis_lab.run(redis_lab.names[address], "grep -E '^maxmemory ' /etc/redis/redis.conf || true")
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_changed_setting_reaches_every_server_and_back(redis_lab):
    shipped = redis_lab.inventory.get_host("redis1").data.get("redis_maxmemory_mb")
    before = redis_lab.wait_healthy()
    # Every server has a copy of the shipped value in its runtime file (CONFIG REWRITE).
    for address in redis_lab.names:
        redis_lab.server(address).config_rewrite()
        assert runtime_copies(redis_lab, address) == ["maxmemory", f"{shipped}mb"]

    changed = run_pyinfra("--limit", "redis", "--data", f"redis_maxmemory_mb={shipped + 44}")
    assert changed.returncode == 0 and changed.totals.get("error", 0) == 0, changed.describe()
    assert maxmemory(redis_lab) == dict.fromkeys(redis_lab.names, (shipped + 44) * MIB)
    after = redis_lab.wait_healthy()
    # The old primary handed its role over before its restart (a controlled failover).
    assert after != before
    names = dict(changed.changed_operations())
    assert sorted(names["Redis | redis-server restarted on its new settings (then the primary)"]) == [
        redis_lab.names[before]
    ]

    back = run_pyinfra("--limit", "redis")
    assert back.returncode == 0 and back.totals.get("error", 0) == 0, back.describe()
    assert maxmemory(redis_lab) == dict.fromkeys(redis_lab.names, shipped * MIB)
    redis_lab.wait_healthy()

    rerun = run_pyinfra("--limit", "redis")
    assert rerun.returncode == 0, rerun.describe()
    assert rerun.changed_operations() == [], rerun.changed_operations()
