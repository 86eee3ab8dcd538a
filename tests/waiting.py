"""Polling with a deadline, for tests that wait on the broker or on another thread.

Owns: `wait_until`. Tests import it (`from waiting import wait_until`) instead of sleeping and
hoping: the condition is checked until it holds or the deadline passes, and a timeout fails
with a sentence that says what was awaited and what the condition last returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, interval: float = 0.05,
               description: str | None = None) -> T:
    """Call `predicate` until it returns something truthy and return that; AssertionError on timeout.

    `predicate` may do the waiting itself (e.g. `connection.process_data_events(time_limit=...)`),
    in which case a small `interval` keeps the loop tight. Exceptions from it propagate at once.
    """
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        result = predicate()
        if result:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            what = description or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(
                f"timed out after {timeout:g}s ({attempts} checks) waiting until {what}; "
                f"the last check returned {result!r}"
            )
        time.sleep(min(interval, remaining))
