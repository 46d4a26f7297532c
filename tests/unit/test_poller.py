"""The fault drills' client of the public URL (lab/client/poller.py): how its samples become
the figures the drills report (no network here)."""

from lab.client.poller import GRACE, Poller, Sample


def poller_with(*samples):
    poller = Poller.__new__(Poller)  # not started: samples given
    poller.samples = list(samples)
    return poller


def test_normal_polls_are_no_unavailability():
    poller = poller_with(*(Sample(i * 0.2, True, "HTTP 200", 0.01) for i in range(50)))
    assert poller.unavailable() == 0.0 and poller.failures() == []


def test_a_request_hanging_through_a_failover_counts_though_it_succeeded():
    poller = poller_with(Sample(0.0, True, "", 0.01), Sample(0.2, True, "", 4.0),
                         Sample(4.2, True, "", 0.01))
    assert poller.failures() == []
    assert round(poller.unavailable(), 2) == round(4.2 - 0.01 - GRACE, 2)


def test_failed_requests_count_until_the_next_success():
    poller = poller_with(Sample(0.0, True, "", 0.0), Sample(0.2, False, "HTTP 503", 0.0),
                         Sample(2.2, False, "HTTP 503", 0.0), Sample(3.0, True, "", 0.0))
    assert [s.detail for s in poller.failures()] == ["HTTP 503", "HTTP 503"]
    assert round(poller.unavailable(), 2) == 2.0
    # Only what happened after `start` (the fault) counts.
    assert poller.failures(start=2.5) == [] and poller.unavailable(start=2.9) == 0.0


def test_still_failing_at_the_end_counts():
    poller = poller_with(Sample(0.0, True, "", 0.0), Sample(0.2, False, "timeout", 10.0))
    assert round(poller.unavailable(), 2) == round(10.2 - GRACE, 2)
