"""What a client of the public URL saw from the end of the session's first deploy until now
(before the lab power tests and the fault drills): for at least ten minutes, not one failed
request, except while a test broke the load balancer on purpose. And the fresh cluster's
first DAG run retried nothing (test_airflow.py)."""

import time

from tests.lab.support import PUBLIC_URL_WATCH

WATCH_SECONDS = 600


def test_public_url_never_failed_since_the_deploy(deployed):
    poller = PUBLIC_URL_WATCH.poller
    assert poller is not None and poller.samples, "nobody polled the public URL"
    # The rest of the ten minutes, if the tests before took less.
    time.sleep(max(0.0, poller.samples[0].at + WATCH_SECONDS - time.time()))
    PUBLIC_URL_WATCH.poller.stop()
    failed = PUBLIC_URL_WATCH.unexpected_failures()
    seconds = poller.samples[-1].at - poller.samples[0].at
    print(f"\n{len(poller.samples)} requests over {seconds:.0f} s, {len(failed)} failed "
          f"outside {len(PUBLIC_URL_WATCH.outages)} expected outage(s)")
    assert seconds >= WATCH_SECONDS - 5
    assert failed == [], [(time.strftime("%H:%M:%S", time.gmtime(s.at)), s.detail)
                          for s in failed[:20]]
