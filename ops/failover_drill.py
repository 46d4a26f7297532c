"""`python -m ops failover-drill redis [-y]`: a Sentinel failover on purpose, as a rehearsal:
the sentinels are told to fail the primary over (SENTINEL FAILOVER), and a redis host times,
from that moment, how long until the new primary accepts a write (with min-replicas-to-write,
that is once a replica follows it). Then the new topology, once every server is back in it.

The timing runs on a redis host, next to the servers: no SSH round trip in the figure.
"""

import shlex
import time

import click

from facts.redis import EXPORT_AUTH

from .context import OpsContext
from .session import Session
from .status.assess import redis_report
from .status.collect import redis_inputs
from .workers import yes_option

# Seconds the new primary has to take a write before the drill counts as failed.
PROMOTION_TIMEOUT = 60
# Seconds the old primary has to rejoin as a replica before the topology is printed as is.
REJOIN_TIMEOUT = 120
# The key the drill writes (expires after a minute; no Celery or Airflow key looks like it).
DRILL_KEY = "airflow-cluster:failover-drill"


def drill_script(sentinel: tuple[str, int], master: str, old: str, redis_port: int) -> str:
    """Shell run on a redis host: fail over, then print `PROMOTED <address> <milliseconds>` when the
    new primary takes a write, or `TIMEOUT` after PROMOTION_TIMEOUT s."""
    address, port = sentinel
    cli = f"redis-cli --no-auth-warning -e -h {shlex.quote(address)} -p {port}"
    return "\n".join([
        EXPORT_AUTH,
        "start=$(date +%s%N)",
        f"{cli} SENTINEL FAILOVER {shlex.quote(master)} >/dev/null || exit 1",
        "while :; do",
        f"  new=$({cli} --raw SENTINEL GET-MASTER-ADDR-BY-NAME {shlex.quote(master)} | head -1)",
        f'  if [ -n "$new" ] && [ "$new" != {shlex.quote(old)} ] && timeout 2 redis-cli '
        f'--no-auth-warning -e -h "$new" -p {redis_port} SET {DRILL_KEY} 1 EX 60 >/dev/null 2>&1;'
        " then",
        '    echo "PROMOTED $new $(( ($(date +%s%N) - start) / 1000000 ))"; exit 0',
        "  fi",
        f"  if [ $(( ($(date +%s%N) - start) / 1000000000 )) -ge {PROMOTION_TIMEOUT} ]; then "
        "echo TIMEOUT; exit 0; fi",
        "  sleep 0.05",
        "done",
    ])


@click.command("failover-drill")
@click.argument("component", type=click.Choice(["redis"]))
@yes_option
@click.pass_obj
def command(ops: OpsContext, component: str, yes: bool) -> None:
    """Fail the Redis primary over on purpose; print the seconds until the new primary takes
    writes, and the new topology."""
    inventory, cluster = ops.load(None)
    broker = cluster.broker
    session = Session(inventory)
    try:
        asker = next((n for n in session.connect(list(cluster.groups["redis"]))), None)
        if asker is None:
            raise click.ClickException("no redis host can be reached")

        def view():
            problems = []
            return redis_report(redis_inputs(session, cluster), _hosts(cluster), problems), problems

        before, problems = view()
        if before["primary"] is None or problems:
            raise click.ClickException("Redis is not healthy, no drill: " + "; ".join(problems))
        old = before["primary"].rpartition(":")[0]
        if not yes:
            click.confirm(f"Fail the Redis primary {before['primary']} over?", abort=True)
        # A sentinel beside a replica: the primary's own host may be the one in trouble.
        sentinel = next((s for s in broker.sentinels if s[0] != old), None)
        if sentinel is None:
            raise click.ClickException(f"no sentinel runs beside a replica of {old}")
        result = session.run(asker, "bash -c " + shlex.quote(
            drill_script(sentinel, broker.master_name, old, broker.port)),
            timeout=PROMOTION_TIMEOUT + 30)
        answer = " ".join(result.stdout).split()
        if not result.ok or not answer or answer[0] != "PROMOTED":
            raise click.ClickException(f"no new primary took a write within {PROMOTION_TIMEOUT} s "
                                       f"({result.error if not result.ok else ' '.join(answer)})")
        _, new, milliseconds = answer
        click.echo(f"failover: {old} -> {new}; the new primary took a write after "
                   f"{int(milliseconds) / 1000:.2f} s")
        deadline = time.monotonic() + REJOIN_TIMEOUT
        while True:
            after, problems = view()
            if not problems or time.monotonic() > deadline:
                break
            time.sleep(1)
    finally:
        session.close()
    click.echo(f"primary   {after['primary']}")
    for replica in after["replicas"]:
        click.echo(f"replica   {replica['address']} ({replica['state']})")
    if problems:
        raise click.ClickException("after the drill: " + "; ".join(problems))


def _hosts(cluster) -> dict:
    return {name: {"address": node.address} for name, node in cluster.nodes.items()}
