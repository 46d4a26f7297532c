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
"""

import json
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase, HiddenValue, QuoteString, StringCommand, deploy, operation
from pyinfra.api.util import get_template
from pyinfra.facts.deb import DebPackages
from pyinfra.facts.files import FindInFile
from pyinfra.operations import apt, files, systemd
from pyinfra.operations.util import any_changed

from cluster.broker import (
    choose_primary,
    known_replicas,
    redis_settings_in_force,
    stale_copy_names,
    stale_copy_pattern,
)
from cluster.net import endpoint
from tasks.context import template_vars

PROJECT_DIR = Path(__file__).resolve().parent.parent
PACKAGES = ["redis-server", "redis-sentinel"]  # redis-tools (redis-cli) comes with them
OWNED_DIR = "/etc/redis/airflow-cluster"
UNIT_OVERRIDE = "/etc/systemd/system/redis-server.service.d/airflow-cluster.conf"
# The first line of every file the deploy writes; a runtime file without it was never seeded.
MARKER_PATTERN = "^# Managed by the airflow-cluster deploy"

# Runtime file, its one-time seed and the deploy-owned file it includes, per service.
FILES = {
    "redis-server": (
        "/etc/redis/redis.conf",
        "templates/etc/redis/redis.conf.j2",
        f"{OWNED_DIR}/redis.conf",
        "templates/etc/redis/airflow-cluster/redis.conf.j2",
    ),
    "redis-sentinel": (
        "/etc/redis/sentinel.conf",
        "templates/etc/redis/sentinel.conf.j2",
        f"{OWNED_DIR}/sentinel.conf",
        "templates/etc/redis/airflow-cluster/sentinel.conf.j2",
    ),
}

# A tiny Redis protocol client run with the hosts' python3 (a base package, present before
# redis-tools is installed): facts need it on a host that has no Redis yet, and unlike
# redis-cli it exits non-zero on an error reply. The password comes in REDISCLI_AUTH.
#   probe MASTER SENTINEL... -- SERVER...   one JSON line per endpoint (always exits 0)
#   master MASTER SENTINEL                  SENTINEL MASTER as JSON; {} when not monitored
#   role SERVER                             INFO replication as JSON
#   config SERVER NAME...                   CONFIG GET of each NAME as JSON
#   run ADDR JSON                           run the commands of the JSON list, fail on error
#   handover MASTER SENTINEL SERVER ADDRESS if the server at ADDRESS is the primary: SENTINEL
#                                           FAILOVER, then wait until it is a synced replica
RESP_CLIENT = r"""
import json, os, socket, sys, time

def send(f, args):
    args = [str(a).encode() for a in args]
    f.write(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))

def read(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise EOFError("connection closed")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if int(rest) < 0 else f.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return None if int(rest) < 0 else [read(f) for _ in range(int(rest))]
    raise RuntimeError("unexpected reply %r" % line)

def call(addr, commands):
    host, _, port = addr.rpartition(":")
    with socket.create_connection((host.strip("[]"), int(port)), timeout=3) as s:
        s.settimeout(10)
        f = s.makefile("rwb")
        password = os.environ.get("REDISCLI_AUTH")
        for command in ([["AUTH", password]] if password else []) + commands:
            send(f, command)
        f.flush()
        if password:
            read(f)
        return [read(f) for _ in commands]

def pairs(reply):
    return dict(zip(reply[::2], reply[1::2]))

def info(text):
    return dict(l.split(":", 1) for l in text.splitlines() if ":" in l and not l.startswith("#"))

mode, args = sys.argv[1], sys.argv[2:]
if mode == "probe":
    master, rest = args[0], args[1:]
    cut = rest.index("--")
    for addr in rest[:cut]:
        try:
            m, replicas = call(addr, [["SENTINEL", "MASTER", master],
                                      ["SENTINEL", "REPLICAS", master]])
            m = pairs(m)
            out = {"kind": "sentinel", "addr": addr, "ip": m["ip"], "port": int(m["port"]),
                   "epoch": int(m.get("config-epoch", 0)), "flags": m.get("flags", ""),
                   "replicas": [pairs(r)["ip"] for r in replicas]}
        except Exception as e:
            out = {"kind": "sentinel", "addr": addr, "error": str(e)}
        print(json.dumps(out))
    for addr in rest[cut + 1:]:
        try:
            i = info(call(addr, [["INFO", "replication"]])[0])
            out = {"kind": "server", "addr": addr, "role": i.get("role"),
                   "connected_slaves": int(i.get("connected_slaves", 0))}
        except Exception as e:
            out = {"kind": "server", "addr": addr, "error": str(e)}
        print(json.dumps(out))
elif mode == "master":
    try:
        print(json.dumps(pairs(call(args[1], [["SENTINEL", "MASTER", args[0]]])[0])))
    except RuntimeError as e:
        print(json.dumps({} if "No such master" in str(e) else {"error": str(e)}))
    except Exception as e:
        print(json.dumps({"error": str(e)}))
elif mode == "role":
    try:
        print(json.dumps(info(call(args[0], [["INFO", "replication"]])[0])))
    except Exception as e:
        print(json.dumps({"error": str(e)}))
elif mode == "config":
    try:
        replies = call(args[0], [["CONFIG", "GET", name] for name in args[1:]])
        print(json.dumps({k: v for reply in replies for k, v in pairs(reply).items()}))
    except Exception as e:
        print(json.dumps({"error": str(e)}))
elif mode == "run":
    for reply in call(args[0], json.loads(args[1])):
        print(reply)
elif mode == "handover":
    master, sentinel, server, address = args
    try:
        m = pairs(call(sentinel, [["SENTINEL", "MASTER", master]])[0])
    except Exception as e:
        sys.exit(print("no handover (%s)" % e))
    if m["ip"] != address:
        sys.exit(print("not the primary (%s is)" % m["ip"]))
    deadline = time.time() + 60
    while True:
        # Replicas that were just restarted are not "good" to Sentinel until it has seen
        # them healthy for a few seconds: retry NOGOODSLAVE (and INPROG) for a while.
        try:
            call(sentinel, [["SENTINEL", "FAILOVER", master]])
            break
        except RuntimeError as e:
            if time.time() > deadline or not str(e).startswith(("NOGOODSLAVE", "INPROG")):
                sys.exit(print("no handover (%s)" % e))
            time.sleep(1)
    deadline = time.time() + 60
    while time.time() < deadline:
        i = info(call(server, [["INFO", "replication"]])[0])
        if i.get("role") == "slave" and i.get("master_link_status") == "up":
            sys.exit(print("handed the primary role over to %s" % i.get("master_host")))
        time.sleep(0.2)
    sys.exit("the primary role was not handed over within 60 s")
else:
    sys.exit("unknown mode " + mode)
"""


def _client(password, *args):
    return StringCommand(
        StringCommand("REDISCLI_AUTH", QuoteString(HiddenValue(password)), _separator="="),
        "python3",
        "-c",
        QuoteString(RESP_CLIENT),
        *args,
    )


class _JsonFact(FactBase):
    abstract = True

    def requires_command(self, *args, **kwargs):
        return "python3"

    def process(self, output):
        data = json.loads(output[-1])
        return None if "error" in data else data


class RedisClusterView(_JsonFact):
    """What every sentinel says about the primary, and every server about its role: a list
    of records, see cluster.broker.choose_primary."""

    default = list

    def command(self, master, sentinels, servers, password):
        return _client(password, "probe", master, *sentinels, "--", *servers)

    def process(self, output):
        return [json.loads(line) for line in output if line.startswith("{")]


class SentinelMaster(_JsonFact):
    """The local sentinel's `SENTINEL MASTER` fields; {} when it does not monitor `master`,
    None when it does not answer."""

    def command(self, master, sentinel, password):
        return _client(password, "master", master, sentinel)


class RedisReplication(_JsonFact):
    """The local server's `INFO replication` fields; None when it does not answer."""

    def command(self, server, password):
        return _client(password, "role", server)


class RedisConfig(_JsonFact):
    """The local server's values of `names` (CONFIG GET); None when it does not answer."""

    def command(self, server, names, password):
        return _client(password, "config", server, *names)


def _run(password, address, commands):
    # The whole command list is hidden: it may carry the password (SENTINEL SET auth-pass).
    return _client(password, "run", address, QuoteString(HiddenValue(json.dumps(commands))))


def cluster_view(broker, password):
    """(the current primary, the addresses the sentinels know as replicas), asked now.

    Called by the operations when they run (after the common role installed python3, after
    this deploy's restarts and handovers), and once ahead to order the restarts."""
    view = host.get_fact(
        RedisClusterView,
        master=broker.master_name,
        sentinels=[endpoint(a, p) for a, p in broker.sentinels],
        servers=[endpoint(a, p) for a, p in broker.servers],
        password=password,
    )
    return choose_primary(broker, view) or broker.initial_primary, known_replicas(view)


@operation()
def replica_of(broker, own_address: str, server: str, password: str):
    """Make the local server (`server`, at `own_address` in the cluster) replicate the current
    primary when it is a primary with no replicas, not the current primary, and unknown to the
    sentinels: a new host. Any other topology is Sentinel's to manage: it converts a known
    replica that reports itself primary (a crashed or rebuilt ex-primary) on its own."""
    (address, port), known = cluster_view(broker, password)
    if own_address == address:
        host.noop("this server is the primary")
        return
    if own_address in known:
        host.noop(f"the sentinels know this server as a replica of {address}")
        return
    replication = host.get_fact(RedisReplication, server=server, password=password)
    if replication and (
        replication.get("role") != "master" or int(replication.get("connected_slaves", 0)) > 0
    ):
        host.noop(f"this server is a {replication.get('role')}; Sentinel manages the topology")
        return
    yield _run(password, server, [["REPLICAOF", address, str(port)], ["CONFIG", "REWRITE"]])


@operation()
def restart_clean(service: str, runtime: str, stale_pattern: str, handover=None):
    """Restart `service` on the deploy-owned settings just rendered: stop it, delete from its
    runtime file the lines that copy deploy-owned settings (`stale_pattern`), start it.
    Stopped, nothing rewrites the file in between (Sentinel reconfigures a server through the
    server itself). `handover`: the command that first hands the primary role over."""
    if handover is not None:
        yield handover
    yield f"systemctl stop {service}.service"
    yield StringCommand("sed", "-i", "-E", QuoteString(f"/{stale_pattern}/d"), QuoteString(runtime))
    yield f"systemctl start {service}.service"


@operation()
def sentinel_monitors(
    broker,
    sentinel: str,
    password: str,
    parameters: dict,
    reset_auth_pass: bool = False,
):
    """The local sentinel monitors `master`: started at `primary` if it does not monitor it
    yet, else only its `parameters` (quorum, timings) are brought in line. The monitored
    address itself is never touched: after the first MONITOR it is Sentinel's."""
    master = broker.master_name
    current = host.get_fact(SentinelMaster, master=master, sentinel=sentinel, password=password)
    wanted = {key: str(value) for key, value in parameters.items()}
    commands = []
    if not current:  # {} (not monitored) or None (no answer yet: a fresh host, --dry)
        (address, port), _ = cluster_view(broker, password)
        quorum = wanted.pop("quorum")
        commands.append(["SENTINEL", "MONITOR", master, address, str(port), quorum])
        changes = {"auth-pass": password, **wanted}
    else:
        changes = {key: value for key, value in wanted.items() if current.get(key) != value}
        if reset_auth_pass:
            changes["auth-pass"] = password
    if changes:
        commands.append(["SENTINEL", "SET", master, *[x for kv in changes.items() for x in kv]])
    if not commands:
        host.noop(f"sentinel monitors {master} with the configured parameters")
        return
    yield _run(password, sentinel, commands)


@deploy("Redis")
def apply(run):
    tvars = template_vars(run)
    settings = tvars["settings"]
    node = tvars["node"]
    broker = run.cluster.broker
    password = run.secrets["redis_password"]
    master = broker.master_name
    server = endpoint("127.0.0.1", settings["redis_port"])
    sentinel = endpoint("127.0.0.1", settings["sentinel_port"])

    # Only to restart the primary last; the operations ask again when they run.
    primary, _ = cluster_view(broker, password)

    installed = host.get_fact(DebPackages)
    apt.packages(
        name="redis-server and redis-sentinel",
        packages=PACKAGES,
        update=any(name not in installed for name in PACKAGES),
        no_recommends=True,
    )
    # Readable by Redis, writable by root only; setgid like /etc/redis (Debian's 2770), which
    # it inherits: a plain 0750 would never match and be re-applied on every run.
    files.directory(
        name=f"directory {OWNED_DIR}", path=OWNED_DIR, user="root", group="redis", mode="2750"
    )
    changed = {service: _config_files(service, tvars) for service in FILES}
    _unit_override(tvars)
    # The settings in force must be the deploy-owned ones; if they are not (a rewrite slipped
    # an old copy in), restart cleanly even though no file changed.
    wanted = redis_settings_in_force(node.address, settings, password)
    running = host.get_fact(RedisConfig, server=server, names=sorted(wanted), password=password)
    drift = sorted(k for k, v in wanted.items() if running and running.get(k) != v)
    restart_needed = changed["redis-server"][1]["_if"]
    changed["redis-server"][1]["_if"] = lambda: bool(drift) or restart_needed()

    systemd.service(name="redis-server running and enabled", service="redis-server", enabled=True)
    # One host at a time, the replicas first; the primary hands its role over to a replica
    # (SENTINEL FAILOVER) before it stops. The handover checks at that moment whether the
    # host is the primary: the order only saves a second failover.
    restart = dict(
        service="redis-server",
        handover=_client(password, "handover", master, sentinel, server, node.address),
        **changed["redis-server"][1],
    )
    if node.address != primary[0]:
        restart_clean(name="redis-server restarted on its new settings (replicas first)", **restart)
    if node.address == primary[0]:
        restart_clean(name="redis-server restarted on its new settings (then the primary)", **restart)
    replica_of(
        name="a new server replicates the current primary",
        broker=broker,
        own_address=node.address,
        server=server,
        password=password,
    )
    systemd.service(
        name="redis-sentinel running and enabled", service="redis-sentinel", enabled=True
    )
    restart_clean(
        name="redis-sentinel restarted on its new settings",
        service="redis-sentinel",
        **changed["redis-sentinel"][1],
    )
    sentinel_monitors(
        name=f"sentinel monitors {master}",
        broker=broker,
        sentinel=sentinel,
        password=password,
        parameters={
            "quorum": broker.quorum,
            "down-after-milliseconds": settings["sentinel_down_after_ms"],
            "failover-timeout": settings["sentinel_failover_timeout_ms"],
            "parallel-syncs": settings["sentinel_parallel_syncs"],
        },
        # auth-pass is write-only in Sentinel: set it again whenever the password may have changed.
        reset_auth_pass=changed["redis-sentinel"][0].will_change,
    )


def _config_files(service, tvars):
    """The deploy-owned file (rendered every run) and the runtime file (seeded once). Returns
    the deploy-owned file's operation and the arguments of restart_clean: when to restart,
    and what to delete from the runtime file first (the copies of deploy-owned settings that
    a rewrite put there)."""
    runtime, seed_src, owned, owned_src = FILES[service]
    owned_op = files.template(
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
            files.template(
                name=f"{runtime} (seeded once, then owned by {service})",
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


def _unit_override(tvars):
    directory = UNIT_OVERRIDE.rsplit("/", 1)[0]
    files.directory(name=f"directory {directory}", path=directory, mode="0755")
    override = files.template(
        name=f"{UNIT_OVERRIDE} (restart delay)",
        src=f"templates{UNIT_OVERRIDE}.j2",
        dest=UNIT_OVERRIDE,
        mode="0644",
        **tvars,
    )
    # RestartSec needs no restart of the service, only systemd re-reading its units.
    systemd.daemon_reload(name="systemd reloads its units", _if=override.did_change)
