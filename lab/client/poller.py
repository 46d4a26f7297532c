"""A client of the public URL, as the fault drills' users: GET /api/v2/monitor/health five
times a second, each on a new HTTPS connection to the VIP (so every request is routed
afresh), and what it saw."""

import json
import threading
import time
from dataclasses import dataclass

PATH = "/api/v2/monitor/health"
INTERVAL = 0.2
# A request still unanswered after this long counts as failed.
REQUEST_TIMEOUT = 3.0


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
        """Seconds the client saw errors: each run of failed requests counts from its first
        request to the next request that succeeded (or the last one sent)."""
        samples, total, since = self.between(start, end), 0.0, None
        for sample in samples:
            if not sample.ok and since is None:
                since = sample.at
            elif sample.ok and since is not None:
                total, since = total + sample.at - since, None
        if since is not None:
            total += samples[-1].at - since
        return total
