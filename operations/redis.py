"""Operations on Redis and Sentinel (the Celery broker), through `redis-cli` on the host.

They read the facts of facts/redis.py and send their commands with redis-cli too: the
password comes from facts.redis.AUTH_FILE on the host (REDISCLI_AUTH, and `-x` for the one
command that carries it as an argument, SENTINEL SET ... auth-pass), and `-e` makes an error
reply fail the command, so a refused REPLICAOF, MONITOR or SET fails the operation.

Which server is the primary is asked when an operation runs (pyinfra calls an operation's
generator once while it prepares the run, to show what would change, and again when it
executes it): on a new host redis-cli exists only from the role's apt install on, and the
answers that count are those given after this run's restarts and handovers.

- replica_of: a new server (a lone primary no sentinel knows) replicates the current primary.
- restart_clean: stop a service, delete the copies of deploy-owned settings its own rewrites
  appended to its runtime file, start it; the primary first hands its role over (the program
  files/redis/airflow-cluster-redis-handover, installed at HANDOVER).
- sentinel_monitors: SENTINEL MONITOR once, then SENTINEL SET only the parameters that
  differ; the monitored address is Sentinel's after the first MONITOR (never undo a failover).
"""

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.operations import systemd

from cluster.broker import Broker, choose_primary, known_replicas
from cluster.net import endpoint
from facts.redis import (
    AUTH_FILE,
    RedisClusterView,
    RedisRole,
    SentinelMaster,
    redis_cli,
    with_auth,
)

# The handover program on the host, and its source in this repository.
HANDOVER = "/usr/local/sbin/airflow-cluster-redis-handover"
HANDOVER_SOURCE = "files/redis/airflow-cluster-redis-handover"


def cluster_view(broker: Broker):
    """(the current primary (address, port), the addresses the sentinels know as replicas),
    asked now from this host: the sentinels' answer (highest config epoch), else a server's
    with replicas, else the group's first host (a new cluster)."""
    view = host.get_fact(
        RedisClusterView,
        master=broker.master_name,
        sentinels=[endpoint(address, port) for address, port in broker.sentinels],
        servers=[endpoint(address, port) for address, port in broker.servers],
    )
    return choose_primary(broker, view) or broker.initial_primary, known_replicas(view)


def is_primary(broker: Broker, address: str) -> bool:
    """Whether the server at `address` is the current primary (asked now)."""
    (primary, _), _ = cluster_view(broker)
    return primary == address


def handover_command(master: str, sentinel: str, server: str, address: str) -> StringCommand:
    """The handover program (files/redis/airflow-cluster-redis-handover): if the sentinel at
    `sentinel` names `address` the primary of `master`, SENTINEL FAILOVER, then wait until the
    server at `server` is a replica with its link up."""
    return StringCommand(
        HANDOVER, AUTH_FILE, *(QuoteString(value) for value in (master, sentinel, server, address))
    )


@operation()
def replica_of(broker: Broker, own_address: str, server: str):
    """Make the local server (`server`, at `own_address` in the cluster) replicate the current
    primary when it is a primary with no replicas, not the current primary, and unknown to the
    sentinels: a new host. Any other topology is Sentinel's to manage: it converts a known
    replica that reports itself primary (a crashed or rebuilt ex-primary) on its own."""
    (address, port), known = cluster_view(broker)
    if own_address == address:
        host.noop("this server is the primary")
        return
    if own_address in known:
        host.noop(f"the sentinels know this server as a replica of {address}")
        return
    role = host.get_fact(RedisRole, server=server)
    if role and (role["role"] != "master" or role["connected_slaves"] > 0):
        host.noop(f"this server is a {role['role']}; Sentinel manages the topology")
        return
    yield with_auth(redis_cli(server, "REPLICAOF", address, port))
    yield with_auth(redis_cli(server, "CONFIG", "REWRITE"))


@operation()
def restart_clean(service: str, runtime: str, stale_pattern: str, handover: dict | None = None):
    """Restart `service` on the deploy-owned settings just rendered: stopped, then the lines
    of its runtime file that copy deploy-owned settings (`stale_pattern`) deleted, then
    started. Stopped, nothing rewrites the file in between (Sentinel reconfigures a server
    through the server itself). `handover`: the arguments of handover_command, run first
    (the primary hands its role over before it stops)."""
    if handover is not None:
        yield handover_command(**handover)
    # Each asks systemd when it comes to run: started is asked after the stop ran.
    yield from systemd.service._inner(service=service, running=False)
    yield StringCommand("sed", "-i", "-E", QuoteString(f"/{stale_pattern}/d"), QuoteString(runtime))
    yield from systemd.service._inner(service=service, running=True)


@operation()
def sentinel_monitors(
    broker: Broker,
    sentinel: str,
    parameters: dict,
    reset_auth_pass: bool = False,
):
    """The local sentinel (at `sentinel`) monitors the broker's primary: started at the current
    primary if it monitors nothing yet, else only its `parameters` (quorum, timings) are
    brought in line. The monitored address itself is never touched: after the first MONITOR it
    is Sentinel's. auth-pass (the password, from AUTH_FILE) is set with a new monitor, and
    again with `reset_auth_pass` (Sentinel never tells it back)."""
    master = broker.master_name
    current = host.get_fact(SentinelMaster, master=master, sentinel=sentinel)
    wanted = {key: str(value) for key, value in parameters.items()}
    commands = []
    if not current:  # {} (not monitored) or None (no answer yet: a new host, --dry)
        (address, port), _ = cluster_view(broker)
        quorum = wanted.pop("quorum")
        commands.append(redis_cli(sentinel, "SENTINEL", "MONITOR", master, address, port, quorum))
        changes, auth_pass = wanted, True
    else:
        changes = {key: value for key, value in wanted.items() if current.get(key) != value}
        auth_pass = reset_auth_pass
    if changes or auth_pass:
        words = ["SENTINEL", "SET", master, *[word for kv in changes.items() for word in kv]]
        if auth_pass:
            # -x: redis-cli reads the last argument, the password, from the file (no newline).
            words.append("auth-pass")
            commands.append(f"{redis_cli(sentinel, *words, last_from_stdin=True)} < {AUTH_FILE}")
        else:
            commands.append(redis_cli(sentinel, *words))
    if not commands:
        host.noop(f"sentinel monitors {master} with the configured parameters")
        return
    for command in commands:
        yield with_auth(command)
