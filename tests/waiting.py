"""Waiting for a condition that another thread or process brings about, bounded."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL = 0.02  # seconds between two looks at something polled


def wait_for(what: str, predicate: Callable[[], bool], timeout: float) -> None:
    """Poll `predicate` until it holds; fail with `what` if it does not within `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL)
