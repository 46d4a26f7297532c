"""Redis with Sentinel failover, the Celery broker, on every `redis` host.

Who owns what (verified on Debian 12's Redis 7.0.15):

- Redis and Sentinel rewrite their own config file: CONFIG REWRITE when Sentinel changes a
  server's `replicaof`, and Sentinel's state flush (its id, epochs, the monitored primary,
  known replicas and sentinels) at start and after every change. That *runtime* file
  (/etc/redis/redis.conf, /etc/redis/sentinel.conf: what the Debian units start) is written
  by the deploy once and never rendered again.
- The settings the deploy owns live in a file of their own (/etc/redis/airflow-cluster/),
  rendered on every run and `include`d on the runtime file's first line. A rewrite keeps the
  `include` line but also appends a copy of every non-default setting, included ones too, and
  later lines win. So when the deploy-owned file changed (or the settings in force differ from
  it), the deploy stops the service, deletes those copies, and starts it again: replicas
  first, and the primary only after handing its role over (SENTINEL FAILOVER). An included
  `sentinel monitor` would even stop Sentinel from starting (its rewritten copy is a
  "Duplicate master name"): the monitored primary and its parameters are set with Sentinel's
  own commands instead (SENTINEL MONITOR once, SENTINEL SET when a parameter differs).
- Which server is the primary is asked of the sentinels when an operation needs it (the
  highest config epoch wins); only when none answers, of the servers (a primary with
  replicas), and only then is it the first host of the group. The deploy acts on it only for
  a server that is a lone primary no sentinel knows (a new host) and for a sentinel that
  monitors nothing yet: a re-run after a failover changes nothing.

How the deploy talks to Redis: `redis-cli` from redis-tools (facts/redis.py,
operations/redis.py), with the password read on the host from a root-only file the role
renders first (/etc/redis/airflow-cluster/cli.auth, 0600 root:root): it is never on a
command line, in pyinfra's output or in argv. The handover before the primary's restart is a
program of its own (files/redis/airflow-cluster-redis-handover, installed by the role).

When the questions are asked: a new host has no redis-cli until the role's apt install, and
pyinfra gathers the facts an operation needs while it prepares the run, before anything ran.
Their answer there ("nobody answered") only feeds pyinfra's preview. Every decision is taken
when the operations execute, on this host, with redis-cli installed and after this run's
earlier restarts: the operations ask their facts again then, and the restart order asks in
its `_if` conditions (the replicas' restart skips the current primary, the primary's restart
takes every host the first one skipped). No host's facts are read from another host.
"""

import functools
from pathlib import Path

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.api.util import get_template
from pyinfra.facts.files import FindInFile
from pyinfra.operations import files, systemd
from pyinfra.operations.util import any_changed

from cluster.broker import redis_settings_in_force, stale_copy_names, stale_copy_pattern
from cluster.net import endpoint
from facts.redis import AUTH_FILE, SECRET_SETTINGS, RedisConfig, SentinelMaster, digest
from operations import files as cluster_files
from operations.redis import (
    HANDOVER,
    HANDOVER_SOURCE,
    is_primary,
    replica_of,
    restart_clean,
    sentinel_monitors,
)
from tasks.context import template_vars

PROJECT_DIR = Path(__file__).resolve().parent.parent
OWNED_DIR = "/etc/redis/airflow-cluster"
# The first line of every file the deploy writes; a runtime file without it was never seeded.
MARKER_PATTERN = "^# Managed by the airflow-cluster deploy"
# Templates of the server's unit drop-in (its path: RedisLayout.server_override).
OVERRIDE_TEMPLATE = "templates/etc/systemd/system/redis-server.service.d/airflow-cluster.conf.j2"


def config_files(layout) -> dict:
    """Runtime file, its one-time seed and the deploy-owned file it includes, per unit of
    the release's layout (cluster/systems.py REDIS)."""
    return {
        layout.server_unit: (
            layout.server_config,
            "templates/etc/redis/redis.conf.j2",
            f"{OWNED_DIR}/redis.conf",
            "templates/etc/redis/airflow-cluster/redis.conf.j2",
        ),
        layout.sentinel_unit: (
            layout.sentinel_config,
            "templates/etc/redis/sentinel.conf.j2",
            f"{OWNED_DIR}/sentinel.conf",
            "templates/etc/redis/airflow-cluster/sentinel.conf.j2",
        ),
    }


@deploy("Redis")
def apply(run):
    tvars = template_vars(run)
    settings = tvars["settings"]
    node = tvars["node"]
    broker = run.cluster.broker
    master = broker.master_name
    server = endpoint("127.0.0.1", settings["redis_port"])
    sentinel = endpoint("127.0.0.1", settings["sentinel_port"])
    layout = tvars["redis"]
    server_unit, sentinel_unit = layout.server_unit, layout.sentinel_unit
    # In operation names: redis-server, redis-sentinel (Debian); redis, redis-sentinel (RHEL).
    server_name, sentinel_name = (unit.removesuffix(".service") for unit in (server_unit,
                                                                            sentinel_unit))
    files_of = config_files(layout)

    # Redis and Sentinel rewrite their files through a new file in this directory: Debian's
    # own owner and mode, made the same on the RHEL family.
    files.directory(name="directory /etc/redis", path="/etc/redis", user="redis",
                    group="redis", mode="2770")
    # Readable by Redis, writable by root only; setgid like /etc/redis, which it inherits:
    # a plain 0750 would never match and be re-applied on every run.
    files.directory(
        name=f"directory {OWNED_DIR}", path=OWNED_DIR, user="root", group="redis", mode="2750"
    )
    cluster_files.template(
        name=f"{AUTH_FILE} (redis-cli's password, root only)",
        src="templates/etc/redis/airflow-cluster/cli.auth.j2",
        dest=AUTH_FILE,
        user="root",
        group="root",
        mode="0600",
        **tvars,
    )
    cluster_files.put(
        name=f"{HANDOVER} (the primary's handover before its restart)",
        src=str(PROJECT_DIR / HANDOVER_SOURCE),
        dest=HANDOVER,
        user="root",
        group="root",
        mode="0755",
    )
    changed = {unit: _config_files(unit, files_of[unit], tvars) for unit in files_of}
    _unit_override(layout, tvars)

    # The settings in force must be the deploy-owned ones; if they are not (a rewrite slipped
    # an old copy in), restart cleanly even though no file changed. Asked once, when the
    # first restart operation runs (secrets compared as digests: facts.redis.RedisConfig).
    wanted = {
        name: digest(value) if name in SECRET_SETTINGS else value
        for name, value in redis_settings_in_force(
            node.address, settings, run.secrets["redis_password"]
        ).items()
    }
    files_changed = changed[server_unit][1].pop("_if")

    @functools.cache
    def restart_needed():
        if files_changed():
            return True
        running = host.get_fact(RedisConfig, server=server, names=sorted(wanted))
        # No answer with the deploy's password: not on the deploy's settings (the package's
        # own start on installation, a run stopped before this restart), or down: (re)start.
        return running is None or any(running.get(k) != v for k, v in wanted.items())

    systemd.service(name=f"{server_name} running and enabled", service=server_unit,
                    enabled=True)
    # One host at a time, the replicas first, then the primary (as Sentinel names them when
    # these operations run). The primary hands its role over to a replica (SENTINEL FAILOVER)
    # before it stops; the handover checks again at that moment whether the host is the
    # primary: the order only saves a second failover.
    restart = dict(
        service=server_unit,
        handover={"master": master, "sentinel": sentinel, "server": server, "address": node.address},
        **changed[server_unit][1],
    )
    replicas_first = restart_clean(
        name=f"{server_name} restarted on its new settings (replicas first)",
        _if=lambda: restart_needed() and not is_primary(broker, node.address),
        **restart,
    )
    restart_clean(
        name=f"{server_name} restarted on its new settings (then the primary)",
        _if=lambda: restart_needed() and not replicas_first.did_change(),
        **restart,
    )
    replica_of(
        name="a new server replicates the current primary",
        broker=broker,
        own_address=node.address,
        server=server,
    )
    systemd.service(name=f"{sentinel_name} running and enabled", service=sentinel_unit,
                    enabled=True)
    sentinel_files_changed = changed[sentinel_unit][1].pop("_if")

    def sentinel_restart_needed():
        # No answer with the deploy's password: the package's own start, or down.
        return sentinel_files_changed() or host.get_fact(
            SentinelMaster, master=master, sentinel=sentinel) is None

    restart_clean(
        name=f"{sentinel_name} restarted on its new settings",
        service=sentinel_unit,
        _if=sentinel_restart_needed,
        **changed[sentinel_unit][1],
    )
    sentinel_monitors(
        name=f"sentinel monitors {master}",
        broker=broker,
        sentinel=sentinel,
        parameters={
            "quorum": broker.quorum,
            "down-after-milliseconds": settings["sentinel_down_after_ms"],
            "failover-timeout": settings["sentinel_failover_timeout_ms"],
            "parallel-syncs": settings["sentinel_parallel_syncs"],
        },
        # auth-pass is write-only in Sentinel: set it again whenever the password may have changed.
        reset_auth_pass=changed[sentinel_unit][0].will_change,
    )


def _config_files(service, paths, tvars):
    """The deploy-owned file (rendered every run) and the runtime file (seeded once). Returns
    the deploy-owned file's operation and the arguments of restart_clean: when to restart,
    and what to delete from the runtime file first (the copies of deploy-owned settings that
    a rewrite put there)."""
    runtime, seed_src, owned, owned_src = paths
    owned_op = cluster_files.template(
        name=f"{owned} (deploy-owned settings)",
        src=owned_src,
        dest=owned,
        user="redis",
        group="redis",
        mode="0640",
        **tvars,
    )
    config_ops = [owned_op]
    if not host.get_fact(FindInFile, path=runtime, pattern=MARKER_PATTERN):
        # Missing, or still the package's sample: write the seed.
        config_ops.append(
            cluster_files.template(
                name=f"{runtime} (seeded once, then owned by {service.removesuffix('.service')})",
                src=seed_src,
                dest=runtime,
                user="redis",
                group="redis",
                mode="0640",
                **tvars,
            )
        )
    # The service rewrites the runtime file (mode 0644 minus the unit's UMask=007): keep it private.
    files.file(
        name=f"{runtime} ownership and mode",
        path=runtime,
        user="redis",
        group="redis",
        mode="0640",
        touch=False,
    )
    owned_text = get_template(str(PROJECT_DIR / owned_src)).render(**tvars)
    return owned_op, {
        "runtime": runtime,
        "stale_pattern": stale_copy_pattern(stale_copy_names(owned_text)),
        "_if": any_changed(*config_ops),
        "_serial": True,
    }


def _unit_override(layout, tvars):
    override = cluster_files.template(  # its directory made by the operation (mkdir -p: 0755)
        name=f"{layout.server_override} (restart delay)",
        src=OVERRIDE_TEMPLATE,
        dest=layout.server_override,
        mode="0644",
        **tvars,
    )
    # RestartSec needs no restart of the service, only systemd re-reading its units.
    systemd.daemon_reload(name="systemd reloads its units", _if=override.did_change)
