"""A client of the public URL, as the fault drills' users: GET /api/v2/monitor/health five
times a second, each on a new HTTPS connection to the VIP (so every request is routed
afresh), and what it saw."""

import json
import threading
import time
from dataclasses import dataclass

PATH = "/api/v2/monitor/health"
INTERVAL = 0.2
# A request still unanswered after this long counts as failed (a slow answer is not an error).
REQUEST_TIMEOUT = 10.0
# A gap between two successful answers longer than this (beyond the poll interval and a slow
# answer) counts as unavailability.
GRACE = 1.0


@dataclass
class Sample:
    at: float  # time.time() when the request was sent
    ok: bool
    detail: str  # the HTTP status, or the error
    seconds: float  # until the answer (or the error)


class Poller(threading.Thread):
    """Polls until stop(); a request fails on a network error, a timeout, a status other than
    200 or a metadata database the API server reports unhealthy (it could serve no data)."""

    def __init__(self, lab, interval=INTERVAL):
        super().__init__(daemon=True)
        self.lab, self.interval = lab, interval
        self.samples: list[Sample] = []
        self._halt = threading.Event()

    def run(self):
        address = self.lab.cluster.lb_vip or self.lab.cluster.node(
            self.lab.cluster.groups["lb"][0]).address
        while not self._halt.is_set():
            sent = time.time()
            ok, detail = self._probe(address)
            self.samples.append(Sample(sent, ok, detail, time.time() - sent))
            self._halt.wait(max(0.0, self.interval - (time.time() - sent)))

    def _probe(self, address) -> tuple[bool, str]:
        try:
            status, _, body = self.lab.https_get(address, PATH, timeout=REQUEST_TIMEOUT)
        except Exception as error:  # noqa: BLE001 - whatever failed, the request failed
            return False, f"{type(error).__name__}: {error}"
        if status != 200:
            return False, f"HTTP {status}"
        try:
            database = json.loads(body)["metadatabase"]["status"]
        except (ValueError, KeyError, TypeError):
            return False, "HTTP 200 without a health report"
        return database == "healthy", f"HTTP 200, metadatabase {database}"

    def stop(self):
        self._halt.set()
        self.join(REQUEST_TIMEOUT + 5)

    def between(self, start=0.0, end=float("inf")) -> list[Sample]:
        return [s for s in list(self.samples) if start <= s.at < end]

    def failures(self, start=0.0, end=float("inf")) -> list[Sample]:
        return [s for s in self.between(start, end) if not s.ok]

    def unavailable(self, start=0.0, end=float("inf")) -> float:
        """Seconds the client went without a successful answer, beyond GRACE per gap: failed
        requests and requests hanging through a failover both count, a normal poll does not."""
        answered = sorted(s.at + s.seconds for s in list(self.samples) if s.ok)
        # From the last answer before `start`, but counting from `start` on only.
        before = [max(t, start) for t in answered if t < start]
        points = before[-1:] + [t for t in answered if start <= t < end]
        sent = [s.at + s.seconds for s in self.between(start, end)]
        if sent and points and max(sent) > points[-1]:
            points.append(max(sent))  # still failing at the end
        return sum(max(0.0, b - a - GRACE) for a, b in zip(points, points[1:]))
