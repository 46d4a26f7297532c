"""Facts about Redis and Sentinel, asked with `redis-cli` (Debian 12's redis-tools 7.0.15).

- The password is never in a command: each command reads it on the host from AUTH_FILE
  (0600 root:root, rendered by the redis role, tasks/redis.py) into REDISCLI_AUTH, which
  redis-cli authenticates with. Neither redis-cli's argv nor pyinfra's printed commands carry
  it. The values of SECRET_SETTINGS are not even read back: the host answers their sha256.
- `--json` (RESP3) makes every reply one parseable line; `-e` makes an error reply exit
  non-zero with its text on stderr (redis-cli 7.0 otherwise exits 0 on an error reply).
  Each call runs under `timeout` (redis-cli has no connect timeout of its own), its stderr
  folded into stdout, and every fact command exits 0: a server or sentinel that does not
  answer is an answer (None, or an "error" record), not a failed fact.
- Every fact needs redis-cli (`requires_command`). On a host that has none yet (a new host,
  before the redis role's apt install) pyinfra answers the fact's default while it prepares
  the run: "nobody answered". Nothing is decided on that answer: the operations ask again
  when they run, after the install (operations/redis.py, tasks/redis.py).

The parsing is pure (`process`); which server is the primary is decided from the records by
cluster.broker.choose_primary.
"""

import hashlib
import json
import shlex

from pyinfra.api import FactBase

# redis-cli's password on every redis host: the password alone, no newline.
AUTH_FILE = "/etc/redis/airflow-cluster/cli.auth"
# Seconds one redis-cli call may take before `timeout` ends it.
TIMEOUT = 5
# Settings whose values are secrets: RedisConfig answers their digest (see `digest`).
SECRET_SETTINGS = ("masterauth", "requirepass")
# For a shell command made of several redis-cli calls: the password, read once on the host.
EXPORT_AUTH = f'export REDISCLI_AUTH="$(cat {AUTH_FILE} 2>/dev/null)";'


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """("address", "port") of `address:port` (`[v6]:port` too, as cluster.net.endpoint writes)."""
    address, _, port = endpoint.rpartition(":")
    return address.strip("[]"), port


def redis_cli(endpoint: str, *command, json_output=False, last_from_stdin=False) -> str:
    """The shell words of one redis-cli call to `endpoint` (no password: see AUTH_FILE).
    `last_from_stdin`: redis-cli's -x, the command's last argument is read from stdin."""
    address, port = split_endpoint(endpoint)
    words = ["timeout", str(TIMEOUT), "redis-cli", "--no-auth-warning", "-e"]
    if json_output:
        words.append("--json")
    if last_from_stdin:
        words.append("-x")
    words += ["-h", address, "-p", port, *command]
    return " ".join(shlex.quote(str(word)) for word in words)


def with_auth(command: str) -> str:
    """`command` (redis-cli calls) with REDISCLI_AUTH read from AUTH_FILE on the host."""
    return f"{EXPORT_AUTH} {command}"


def digest(value: str) -> str:
    """How RedisConfig reports the value of a secret setting."""
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


def _reply(line: str):
    """A JSON reply line of `redis-cli --json` (an object or an array), else None."""
    if line[:1] not in ("{", "["):
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None


def _error(lines) -> str:
    """The error text among `lines` (an error reply, a connection error), one line."""
    texts = []
    for line in lines:
        if line.startswith('error:"'):
            line = json.loads(line[len("error:"):])
        if line:
            texts.append(line)
    return "; ".join(texts) or "no answer"


def _lines(output):
    return [line.strip() for line in output]


class RedisFact(FactBase):
    abstract = True

    def requires_command(self, *args, **kwargs) -> str:
        return "redis-cli"


class RedisClusterView(RedisFact):
    """What every sentinel says about the primary monitored as `master`, and every server
    about its role: one record per endpoint, in order (cluster.broker.choose_primary reads
    them).

    - sentinel: {"kind": "sentinel", "addr", "ip", "port", "epoch", "flags", "replicas": [ip]}
      from SENTINEL MASTER and SENTINEL REPLICAS, or {"kind": "sentinel", "addr", "error"};
    - server: {"kind": "server", "addr", "role", "connected_slaves"} from ROLE, or
      {"kind": "server", "addr", "error"}.
    """

    @staticmethod
    def default():
        return []

    def command(self, master, sentinels, servers):
        parts = [EXPORT_AUTH]
        for sentinel in sentinels:
            parts += [
                f"echo {shlex.quote('@sentinel ' + sentinel)};",
                redis_cli(sentinel, "SENTINEL", "MASTER", master, json_output=True),
                "2>&1 &&",
                redis_cli(sentinel, "SENTINEL", "REPLICAS", master, json_output=True),
                "2>&1;",
            ]
        for server in servers:
            parts += [
                f"echo {shlex.quote('@server ' + server)};",
                redis_cli(server, "ROLE", json_output=True),
                "2>&1;",
            ]
        return " ".join(parts + ["true"])

    def process(self, output):
        blocks = []
        for line in _lines(output):
            kind, _, addr = line.partition(" ")
            if kind in ("@sentinel", "@server") and addr:
                blocks.append((kind[1:], addr, []))
            elif blocks:
                blocks[-1][2].append(line)
        return [
            (self._sentinel if kind == "sentinel" else self._server)(addr, lines)
            for kind, addr, lines in blocks
        ]

    @staticmethod
    def _sentinel(addr, lines):
        replies = [_reply(line) for line in lines]
        masters = [r for r in replies if isinstance(r, dict)]
        replicas = [r for r in replies if isinstance(r, list)]
        if not masters or not replicas:
            return {"kind": "sentinel", "addr": addr, "error": _error(lines)}
        master = masters[0]
        return {
            "kind": "sentinel",
            "addr": addr,
            "ip": master["ip"],
            "port": int(master["port"]),
            "epoch": int(master.get("config-epoch", 0)),
            "flags": master.get("flags", ""),
            "replicas": [replica["ip"] for replica in replicas[0]],
        }

    @staticmethod
    def _server(addr, lines):
        role = _role(lines)
        if role is None:
            return {"kind": "server", "addr": addr, "error": _error(lines)}
        return {"kind": "server", "addr": addr, **role}


def _role(lines):
    """{"role", "connected_slaves"} from a ROLE reply among `lines` (a replica adds
    "master_host", "master_port" and "master_link": "connected" when its link is up)."""
    for reply in map(_reply, lines):
        if isinstance(reply, list) and reply and isinstance(reply[0], str):
            if reply[0] == "master":
                return {"role": "master", "connected_slaves": len(reply[2])}
            if reply[0] == "slave":
                return {
                    "role": "slave",
                    "connected_slaves": 0,
                    "master_host": reply[1],
                    "master_port": int(reply[2]),
                    "master_link": reply[3],
                }
            return {"role": reply[0], "connected_slaves": 0}
    return None


class SentinelMaster(RedisFact):
    """The fields of `SENTINEL MASTER master` (all strings) on the sentinel at `sentinel`;
    {} when it does not monitor `master`, None when it does not answer."""

    def command(self, master, sentinel):
        return with_auth(
            f"{redis_cli(sentinel, 'SENTINEL', 'MASTER', master, json_output=True)} 2>&1; true"
        )

    def process(self, output):
        lines = _lines(output)
        for reply in map(_reply, lines):
            if isinstance(reply, dict):
                return reply
        if _error(lines).startswith("ERR No such master"):
            return {}
        return None


class RedisRole(RedisFact):
    """The role of the server at `server` (ROLE): {"role": "master", "connected_slaves"} or
    {"role": "slave", "connected_slaves": 0, "master_host", "master_port", "master_link"};
    None when it does not answer."""

    def command(self, server):
        return with_auth(f"{redis_cli(server, 'ROLE', json_output=True)} 2>&1; true")

    def process(self, output):
        return _role(_lines(output))


class RedisConfig(RedisFact):
    """The values of the settings `names` on the server at `server` (CONFIG GET); those of
    SECRET_SETTINGS as their digest (`digest`), hashed on the host. None when it does not
    answer."""

    def command(self, server, names):
        plain = [name for name in names if name not in SECRET_SETTINGS]
        secret = [name for name in names if name in SECRET_SETTINGS]
        parts = [EXPORT_AUTH]
        if plain:
            parts.append(f"{redis_cli(server, 'CONFIG', 'GET', *plain, json_output=True)} 2>&1;")
        for name in secret:
            # Raw reply "NAME\nVALUE": the value, without its newline, hashed on the host.
            parts.append(
                f"printf '%s ' {shlex.quote(name)}; {redis_cli(server, 'CONFIG', 'GET', name)}"
                " 2>/dev/null | sed -n 2p | tr -d '\\n' | sha256sum;"
            )
        return " ".join(parts + ["true"])

    def process(self, output):
        values, answered = {}, False
        for line in _lines(output):
            reply = _reply(line)
            if isinstance(reply, dict):
                values.update(reply)
                answered = True
                continue
            fields = line.split()
            if len(fields) >= 2 and fields[0] in SECRET_SETTINGS and len(fields[1]) == 64:
                values[fields[0]] = "sha256:" + fields[1]
        return values if answered else None


class RedisReplication(RedisFact):
    """`INFO replication` of the server at `server`: {"role", "master_repl_offset",
    "replicas": [{"ip", "port", "state", "offset", "lag"}]} (a replica's record lists none);
    None when it does not answer."""

    def command(self, server):
        return with_auth(f"{redis_cli(server, 'INFO', 'replication')} 2>&1; true")

    def process(self, output):
        fields = dict(line.split(":", 1) for line in _lines(output) if ":" in line)
        if "role" not in fields:
            return None
        replicas = []
        for key, value in sorted(fields.items()):
            if key.startswith("slave") and key[5:].isdigit():
                record = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
                replicas.append({
                    "ip": record.get("ip"),
                    "port": int(record.get("port", 0)),
                    "state": record.get("state"),
                    "offset": int(record.get("offset", 0)),
                    "lag": int(record.get("lag", 0)),
                })
        return {
            "role": fields["role"],
            "master_repl_offset": int(fields.get("master_repl_offset", 0)),
            "replicas": replicas,
        }
