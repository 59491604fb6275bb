"""A small single-threaded event loop: readiness callbacks, timers and signals.

The supervisor runs on it because it forks: a process that forks must not have other
threads (a lock one of them holds at the fork stays held forever in the child).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import selectors
import signal
from collections.abc import Callable, Iterable
from time import monotonic

Callback = Callable[[], None]


class EventLoop:
    """Callbacks on readable/writable descriptors, timers, and signals as ordinary events."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Callback]] = []
        self._sequence = itertools.count()
        self._cancelled: set[int] = set()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._on_signal: Callable[[int], None] | None = None
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._read_signals)

    # ----------------------------------------------------------------- registration

    def watch(self, fd: int, events: int, callback: Callable[[int], None]) -> None:
        """Call `callback(events)` whenever `fd` is ready for `events` (replaces a watch)."""
        try:
            self._selector.modify(fd, events, callback)
        except KeyError:
            self._selector.register(fd, events, callback)

    def unwatch(self, fd: int) -> None:
        """Stop watching `fd` (no error if it was not watched)."""
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(fd)

    def call_later(self, delay: float, callback: Callback) -> int:
        """Call `callback` after `delay` seconds; returns a handle for `cancel`."""
        handle = next(self._sequence)
        heapq.heappush(self._timers, (monotonic() + delay, handle, callback))
        return handle

    def cancel(self, handle: int) -> None:
        """Cancel a timer (no error if it ran already)."""
        self._cancelled.add(handle)

    def handle_signals(self, signums: Iterable[int], callback: Callable[[int], None]) -> None:
        """Deliver `signums` to `callback` from the loop, not from a signal handler."""
        self._on_signal = callback
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in signums:
            # The C handler writes the number to the wake-up pipe; this one does nothing.
            signal.signal(signum, _ignore)

    # ----------------------------------------------------------------- running

    def run_once(self, max_wait: float = 1.0) -> None:
        """Wait for events (at most until the next timer, or `max_wait`) and handle them."""
        wait = max_wait
        if self._timers:
            wait = min(wait, max(0.0, self._timers[0][0] - monotonic()))
        for key, mask in self._selector.select(wait):
            key.data(mask)
        self._run_due_timers()

    def _run_due_timers(self) -> None:
        now = monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, handle, callback = heapq.heappop(self._timers)
            if handle in self._cancelled:
                self._cancelled.discard(handle)
                continue
            callback()

    def _read_signals(self, events: int) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        if self._on_signal is not None:
            for signum in data:
                self._on_signal(signum)

    def close(self) -> None:
        """Release the loop's descriptors and stop signals from writing to its pipe.

        Also what a forked child calls first: it must not share the parent's wake-up pipe.
        """
        signal.set_wakeup_fd(-1)
        self._selector.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _ignore(signum: int, frame: object) -> None:
    """A Python-level handler that does nothing: the loop reads the signal from its pipe."""
