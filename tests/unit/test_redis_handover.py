"""The handover program (files/redis/airflow-cluster-redis-handover), run by sh against
stand-ins for redis-cli, date and sleep: it hands the role over only when the sentinel names
this server the primary, retries what Sentinel says is temporary, waits for a synced
replica, and never has the password on a command line."""

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from operations.redis import HANDOVER_SOURCE, handover_command
from tests.unit.support import PROJECT

PROGRAM = PROJECT / HANDOVER_SOURCE
PASSWORD = "r3dis-PW_x"

# redis-cli: answers from script.json (command words -> [[exit code, stdout, stderr], ...],
# the last answer repeats), every call logged with its argv and REDISCLI_AUTH.
REDIS_CLI = """\
import json, os, sys
state = os.environ["STUB_DIR"]
args = sys.argv[1:]
with open(os.path.join(state, "calls"), "a") as log:
    log.write(json.dumps({"argv": args, "auth": os.environ.get("REDISCLI_AUTH")}) + "\\n")
command = " ".join(args[args.index("-p") + 2:])
counts_path = os.path.join(state, "counts.json")
counts = json.load(open(counts_path)) if os.path.exists(counts_path) else {}
answers = json.load(open(os.path.join(state, "script.json")))[command]
code, out, err = answers[min(counts.get(command, 0), len(answers) - 1)]
counts[command] = counts.get(command, 0) + 1
json.dump(counts, open(counts_path, "w"))
sys.stdout.write(out)
sys.stderr.write(err)
sys.exit(code)
"""
# date +%s: 30 s later at every call; sleep: none.
DATE = """\
import os
import shlex
path = os.path.join(os.environ["STUB_DIR"], "now")
now = int(open(path).read()) if os.path.exists(path) else 1000
open(path, "w").write(str(now + 30))
print(now)
"""

PRIMARY_HERE = [0, "10.0.0.1\n6379\n", ""]
REPLICA_SYNCED = [0, "slave\n10.0.0.2\n6379\nconnected\n100\n", ""]
STILL_PRIMARY = [0, "master\n100\n10.0.0.2\n6379\n100\n", ""]


def stub(path: Path, source: str):
    path.write_text(f"#!{sys.executable}\n{source}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run(tmp_path, script, args=None, fake_clock=False):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub(bin_dir / "redis-cli", REDIS_CLI)
    if fake_clock:
        stub(bin_dir / "date", DATE)
        stub(bin_dir / "sleep", "")
    (tmp_path / "script.json").write_text(json.dumps(script))
    auth = tmp_path / "cli.auth"
    auth.write_text(PASSWORD)  # as the role renders it: no newline
    if args is None:
        command = handover_command("airflow", "127.0.0.1:26379", "[::1]:6379", "10.0.0.1")
        args = shlex.split(command.get_raw_value())[1:]
        args[0] = str(auth)
    done = subprocess.run(
        ["sh", str(PROGRAM), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_DIR": str(tmp_path)},
    )
    calls_path = tmp_path / "calls"
    calls = [json.loads(line) for line in calls_path.read_text().splitlines()] if calls_path.exists() else []
    return done, calls


def commands(calls):
    return [" ".join(call["argv"][call["argv"].index("-p") + 2:]) for call in calls]


def test_the_primary_hands_over_and_waits_for_a_synced_replica(tmp_path):
    done, calls = run(tmp_path, {
        "SENTINEL GET-MASTER-ADDR-BY-NAME airflow": [PRIMARY_HERE],
        # Replicas just restarted are not "good" yet: retried.
        "SENTINEL FAILOVER airflow": [[1, "", "NOGOODSLAVE No suitable replica to promote\n"],
                                      [0, "OK\n", ""]],
        "ROLE": [STILL_PRIMARY, REPLICA_SYNCED],
    })
    assert done.returncode == 0, done.stderr
    assert done.stdout == "handed the primary role over to 10.0.0.2\n"
    assert commands(calls) == [
        "SENTINEL GET-MASTER-ADDR-BY-NAME airflow",
        "SENTINEL FAILOVER airflow",
        "SENTINEL FAILOVER airflow",
        "ROLE",
        "ROLE",
    ]
    for call in calls:
        assert call["auth"] == PASSWORD
        assert PASSWORD not in " ".join(call["argv"])
        assert call["argv"][:2] == ["--no-auth-warning", "-e"]
    # The sentinel and the server (an IPv6 endpoint: brackets off for -h).
    assert calls[0]["argv"][2:6] == ["-h", "127.0.0.1", "-p", "26379"]
    assert calls[-1]["argv"][2:6] == ["-h", "::1", "-p", "6379"]


def test_a_replica_hands_nothing_over(tmp_path):
    done, calls = run(tmp_path, {"SENTINEL GET-MASTER-ADDR-BY-NAME airflow": [[0, "10.0.0.2\n6379\n", ""]]})
    assert (done.returncode, done.stdout) == (0, "not the primary (10.0.0.2 is)\n")
    assert commands(calls) == ["SENTINEL GET-MASTER-ADDR-BY-NAME airflow"]


@pytest.mark.parametrize(
    "answer, message",
    [
        ([0, "\n", ""], "no handover (the sentinel does not monitor airflow)"),
        ([1, "", "Could not connect to Redis at 127.0.0.1:26379: Connection refused\n"],
         "no handover (Could not connect to Redis at 127.0.0.1:26379: Connection refused)"),
        ([1, "", "AUTH failed: WRONGPASS invalid username-password pair or user is disabled.\n"
                 "NOAUTH Authentication required.\n"], "no handover (NOAUTH Authentication required.)"),
        ([124, "", ""], "no handover (no answer)"),  # `timeout` ended it
        # A new host's sentinel has no password yet: redis-cli warns, the reply is empty.
        ([0, "\n", "AUTH failed: ERR AUTH <password> called without any password configured "
                   "for the default user. Are you sure your configuration is correct?\n"],
         "no handover (the sentinel does not monitor airflow)"),
    ],
)
def test_no_answer_from_the_sentinel_means_no_handover(tmp_path, answer, message):
    done, calls = run(tmp_path, {"SENTINEL GET-MASTER-ADDR-BY-NAME airflow": [answer]})
    assert (done.returncode, done.stdout) == (0, message + "\n")
    assert len(calls) == 1


def test_a_refused_failover_is_not_retried(tmp_path):
    done, calls = run(tmp_path, {
        "SENTINEL GET-MASTER-ADDR-BY-NAME airflow": [PRIMARY_HERE],
        "SENTINEL FAILOVER airflow": [[1, "", "ERR something else\n"]],
    })
    assert (done.returncode, done.stdout) == (0, "no handover (ERR something else)\n")
    assert commands(calls).count("SENTINEL FAILOVER airflow") == 1


def test_sentinel_busy_for_a_minute_means_no_handover(tmp_path):
    done, calls = run(tmp_path, {
        "SENTINEL GET-MASTER-ADDR-BY-NAME airflow": [PRIMARY_HERE],
        "SENTINEL FAILOVER airflow": [[1, "", "INPROG Failover already in progress\n"]],
    }, fake_clock=True)
    assert (done.returncode, done.stdout) == (0, "no handover (INPROG Failover already in progress)\n")
    assert 2 <= commands(calls).count("SENTINEL FAILOVER airflow") <= 4


def test_a_role_not_handed_over_in_time_fails(tmp_path):
    done, calls = run(tmp_path, {
        "SENTINEL GET-MASTER-ADDR-BY-NAME airflow": [PRIMARY_HERE],
        "SENTINEL FAILOVER airflow": [[0, "OK\n", ""]],
        "ROLE": [STILL_PRIMARY],
    }, fake_clock=True)
    assert done.returncode == 1
    assert done.stderr == "the primary role was not handed over within 60 s\n"
    assert "ROLE" in commands(calls)


def test_usage_and_an_unreadable_password_file(tmp_path):
    done, _ = run(tmp_path, {}, args=["only", "two"])
    assert done.returncode == 2 and "usage:" in done.stderr
    done, calls = run(tmp_path, {}, args=[str(tmp_path / "missing"), "airflow", "a:1", "b:2", "c"])
    assert done.returncode == 2 and calls == []


def test_the_program_is_posix_sh_and_executable():
    assert subprocess.run(["sh", "-n", str(PROGRAM)]).returncode == 0
    assert PROGRAM.stat().st_mode & stat.S_IXUSR
    assert PROGRAM.read_text().startswith("#!/bin/sh\n# Managed by the airflow-cluster deploy")
