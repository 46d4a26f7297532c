"""Helpers of the end-to-end tests (the fixtures built on them are in conftest.py). The lab
itself is reached through lab.client, which the benchmarks use too."""

import os

from lab.client import Lab

# The lab's inventory, model and secrets, loaded once for the session (test parameters too).
LAB = Lab()
# LAB_EXTERNAL=1: the lab is taken as already up with the common role deployed, and each test
# module deploys only its own roles (conftest.py: role_deploy).
LAB_EXTERNAL = os.environ.get("LAB_EXTERNAL") == "1"


def listening(host, port):
    """The local addresses testinfra `host` listens on for TCP `port`."""
    out = host.check_output(f"ss -Hltn 'sport = :{port}'")
    return {line.split()[3].rsplit(":", 1)[0].strip("[]") for line in out.splitlines() if line}


def owner_and_mode(host, path):
    """(user, group, mode) of `path` on testinfra `host`."""
    f = host.file(path)
    assert f.exists, path
    return f.user, f.group, f.mode
