"""wait_for: poll a predicate until it answers or a deadline passes."""

import time


def wait_for(what, predicate, timeout, interval=2.0, *, fail=True):
    """predicate()'s first truthy value within `timeout` seconds (an exception counts as a
    falsy answer and is retried). At the deadline: AssertionError naming `what`, or with
    fail=False the last falsy value (None after an exception)."""
    deadline, last = time.monotonic() + timeout, None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last = value
        except Exception as error:  # noqa: BLE001 - retried until the deadline
            last = f"{type(error).__name__}: {error}"
        if time.monotonic() > deadline:
            if not fail:
                return None if isinstance(last, str) else last
            raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")
        time.sleep(interval)
