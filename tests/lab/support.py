"""Helpers of the end-to-end tests (the fixtures built on them are in conftest.py). The lab
itself is reached through lab.client, which the benchmarks use too."""

import os
import time
from contextlib import contextmanager

from cluster.systems import RELEASES, postgres_layout
from lab.client import Lab, Poller
from lab.paths import lab_suite

# The lab's inventory, model and secrets, loaded once for the session (test parameters too).
LAB = Lab()
# The Debian release the lab's hosts run (LAB_DISTRO), and its PostgreSQL.
RELEASE = RELEASES["debian", {"bookworm": "12", "trixie": "13"}[lab_suite()]]
POSTGRES = postgres_layout(RELEASE)
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


class PublicUrlWatch:
    """A client polling the public URL five times a second from the end of the session's
    deploy (conftest.py: `deployed`) until the fault drills: it must see no failed request,
    except while a test breaks the load balancer on purpose (`expected_outage`)."""

    def __init__(self):
        self.poller = None
        self.outages = []  # (start, end, why): windows where failures are the point

    def start(self):
        if self.poller is None:
            self.poller = Poller(LAB)
            self.poller.start()

    @contextmanager
    def expected_outage(self, why, settle=10.0):
        """Failures seen inside the block (and `settle` s after it) are the test's doing."""
        start = time.time()
        try:
            yield
        finally:
            self.outages.append((start, time.time() + settle, why))

    def unexpected_failures(self):
        return [s for s in self.poller.failures()
                if not any(start <= s.at < end for start, end, _ in self.outages)]


PUBLIC_URL_WATCH = PublicUrlWatch()
