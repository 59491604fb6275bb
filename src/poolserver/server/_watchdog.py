"""Requests in flight, and the watchdog that deals with the slow and the stuck.

Python threads cannot be killed. What the watchdog does instead, for a request past
`slow_request_timeout`: log once the stack of the thread running it. Past `request_timeout`:
cancel the request's token (cooperative applications stop), answer the client 504 if no
response has started (else cut the connection), and give up on the worker: the pool starts a
replacement so capacity is kept (up to `max_stuck_workers` stuck threads), and whatever the
stuck application produces later is discarded.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from threading import get_ident
from time import monotonic
from typing import TYPE_CHECKING

from ..http import error_response
from ..pool import CancelToken

if TYPE_CHECKING:
    from ..http import Request
    from ._connection import Connection
    from ._server import Server
    from ._stats import Shard

log = logging.getLogger("poolserver")


class InFlight(CancelToken):
    """A request being run by a worker: its cancel token, which also records it for the
    watchdog and for introspection (one object per request, not two)."""

    __slots__ = (
        "conn",
        "ident",
        "number",
        "request",
        "shard",
        "slow_logged",
        "started",
        "timed_out",
    )

    def __init__(  # noqa: PLR0917 - positional on purpose: made once per request
        self,
        conn: Connection,
        deadline: float,
        number: int,
        request: Request,
        started: float,
        shard: Shard,
    ) -> None:
        self.deadline = deadline
        self._cancelled = False
        self._event = None
        self.conn = conn
        self.number = number
        self.request = request
        self.started = started
        self.shard = shard  # the running thread's: it knows the thread's name
        self.ident = get_ident()
        self.slow_logged = self.timed_out = False

    @property
    def method(self) -> str:
        """The request's method."""
        return self.request.method

    @property
    def path(self) -> str:
        """The request's target, without its query."""
        return self.request.target.split(b"?", 1)[0].decode("latin-1")

    @property
    def worker(self) -> str:
        """The name of the worker thread running it."""
        return self.shard.name


class Watchdog:
    """A thread that checks the requests in flight a few times a second."""

    def __init__(self, server: Server) -> None:
        self._server = server
        config = server.config
        shortest = min(config.slow_request_timeout, config.request_timeout)
        self._interval = min(1.0, max(0.01, shortest / 10))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="poolserver-watchdog", daemon=True)

    def start(self) -> None:
        """Start checking."""
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the watchdog thread runs."""
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop checking."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check(monotonic())
            except Exception:
                log.exception("the watchdog failed a check; it goes on")

    def check(self, now: float) -> None:
        """Log the slow, time out the late."""
        config = self._server.config
        for record in list(self._server.inflight.values()):
            if (
                not record.slow_logged
                and not record.timed_out
                and now - record.started >= config.slow_request_timeout
            ):
                record.slow_logged = True
                self._log_slow(record, now)
            if not record.timed_out and record.deadline is not None and now >= record.deadline:
                record.timed_out = True
                self._time_out(record)

    def _log_slow(self, record: InFlight, now: float) -> None:
        self._server.stats.shard().slow += 1
        frame = sys._current_frames().get(record.ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(gone)\n"
        log.warning(
            "slow request: %s %s running for %.1f s in %s; its stack:\n%s",
            record.method,
            record.path,
            now - record.started,
            record.worker,
            stack.rstrip(),
        )

    def _time_out(self, record: InFlight) -> None:
        server = self._server
        record.cancel()
        outcome = record.conn.hijack(record, error_response(504, server.date))
        if outcome == "finished":
            return
        log.error(
            "request timeout: %s %s after %.1f s in %s (%s)",
            record.method,
            record.path,
            monotonic() - record.started,
            record.worker,
            outcome,
        )
        if outcome == "interrupted":
            return  # the worker was writing: it sees the failure and carries on itself
        server.stats.shard().stuck += 1
        if server.pool.statistics().stuck >= server.config.max_stuck_workers:
            log.error(
                "%d workers are stuck already: %s is not replaced, capacity is reduced",
                server.config.max_stuck_workers,
                record.worker,
            )
            return
        server.pool.abandon(record.conn)
