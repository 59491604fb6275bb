"""A cooperative cancel token: Python threads cannot be stopped, so a job is asked to stop.

A running job consults its token (`cancelled`, `remaining()`, or `wait(timeout)` in place of a
sleep) and returns early when asked to. The token is cheap to create: the event that `wait()`
blocks on is only made the first time somebody waits.
"""

from __future__ import annotations

import threading
import time

# Guards the lazy creation of each token's event. One lock for all tokens: creation is rare, and
# a lock per token would cost every job an allocation it almost never needs.
_EVENT_LOCK = threading.Lock()


class CancelToken:
    """Tells a running job that it should stop: cancelled by a caller, or past its deadline.

    Args:
        deadline: a `time.monotonic()` instant after which the token counts as cancelled, or
            None for no deadline.
    """

    __slots__ = ("_cancelled", "_event", "deadline")

    def __init__(self, deadline: float | None = None) -> None:
        self.deadline = deadline
        self._cancelled = False
        self._event: threading.Event | None = None

    def cancel(self) -> None:
        """Ask the job to stop. Wakes every `wait()`; idempotent."""
        with _EVENT_LOCK:
            self._cancelled = True
            event = self._event
        if event is not None:
            event.set()

    @property
    def cancelled(self) -> bool:
        """True once `cancel()` was called or the deadline has passed."""
        if self._cancelled:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline

    def remaining(self) -> float | None:
        """Seconds left before the deadline (0.0 once passed or cancelled); None without one."""
        if self._cancelled:
            return 0.0
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - time.monotonic())

    def wait(self, timeout: float | None = None) -> bool:
        """Block until cancelled, the deadline passes, or `timeout` seconds elapse.

        Returns:
            True if the token is cancelled (by a caller or its deadline), False on timeout.
        """
        limit = self.remaining()
        if limit == 0.0:
            return True
        if timeout is not None:
            limit = timeout if limit is None else min(limit, timeout)
        with _EVENT_LOCK:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
            if self._cancelled:
                return True
        event.wait(limit)
        return self.cancelled
