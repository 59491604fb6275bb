"""The poller: one thread that watches parked connections with epoll and enforces timeouts.

Theory of operation
-------------------
A parked connection belongs to the poller. Workers park a connection as their last act on it
(`park`): they record the deadline, put it in `_parked`, then arm epoll with
EPOLLONESHOT; the poller may take it the instant epoll is armed. When it is readable, the
poller reads and parses what came itself, and hands the connection to the pool only once a
request is complete (or a body is to be read, which a worker does): so a head that trickles in
costs no worker, and a keep-alive request reaches its worker parsed. When a pending response
can be written, or input must be discarded while lingering, the poller does that small
non-blocking I/O itself too.

Deadlines: every parked connection carries its own (`park_deadline`), and the poller sweeps
`_parked` for those past it every `sweep_every` seconds: a quarter of the shortest timeout a
park can have, at most 1 s (`sweep_interval`). So each deadline is kept at most a quarter of its
duration late, and a sweep's cost does not depend on how many deadlines there are: ~30 ns per
parked connection (0.3 ms for 10,000). Nothing is recorded per park but the connection's own
fields: a keep-alive park, once per request, allocates nothing. (A queue of
`(deadline, connection)` entries would hold one per request for `keepalive_timeout`: ~150,000
at 30,000 requests/s and 5 s, each an object for the cyclic garbage collector to walk, which
paused the server for ~90 ms every few seconds; with a 60 s timeout, millions.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING

from ..http import error_response
from ..wsgi import ClientGone
from ._connection import HANDSHAKE_WRITE, LINGER, LINGER_TIMEOUT, READ, WRITE, Connection

if TYPE_CHECKING:
    from ..config import Config
    from ._server import Server

log = logging.getLogger("poolserver")

_READ_EVENTS = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT
_WRITE_EVENTS = select.EPOLLOUT | select.EPOLLONESHOT


def _between_requests(conn: Connection) -> bool:
    """Parked between requests, or connected and silent: nothing of a request read yet."""
    return conn.park_mode == READ and not conn.parser.in_progress


def _with_input(conns: list[Connection]) -> set[int]:
    """The descriptors of `conns` with bytes to read, or the end of the stream, waiting now."""
    if not conns:
        return set()
    poll = select.poll()
    for conn in conns:
        poll.register(conn.fd, select.POLLIN)
    return {fd for fd, _ in poll.poll(0)}


def sweep_interval(config: Config) -> float:
    """Seconds between two sweeps for deadlines: a quarter of the shortest timeout a parked
    connection can have, at most 1 s."""
    shortest = min(
        config.header_timeout,
        config.keepalive_timeout,
        config.read_timeout,
        config.write_timeout,
        LINGER_TIMEOUT,
    )
    return min(1.0, shortest / 4)


class Poller:
    """Watches parked connections; hands readable ones to the pool; expires the idle."""

    def __init__(self, server: Server, sweep_every: float) -> None:
        self._server = server
        self._epoll = select.epoll()
        self._parked: dict[int, Connection] = {}
        self._sweep_every = sweep_every
        self._next_sweep = monotonic() + sweep_every
        self._wake_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._stopping = False
        self._close_idle_requested = False
        self._thread = threading.Thread(target=self._run, name="poolserver-poller", daemon=True)

    def start(self) -> None:
        """Start the poller thread."""
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the poller thread runs."""
        return self._thread.is_alive()

    # ----------------------------------------------------------------- parking (any thread)

    def park(self, conn: Connection, mode: int, deadline: float) -> None:
        """Hand `conn` to the poller to wait for `mode` until `deadline`. Last touch."""
        conn.park_seq += 1
        conn.park_mode = mode
        conn.park_deadline = deadline
        self._arm(conn, _WRITE_EVENTS if mode in (WRITE, HANDSHAKE_WRITE) else _READ_EVENTS)

    def _arm(self, conn: Connection, events: int) -> None:
        fd = conn.fd
        self._parked[fd] = conn
        try:
            if conn.registered:
                self._epoll.modify(fd, events)
            else:
                conn.registered = True
                self._epoll.register(fd, events)
        except (OSError, ValueError):
            # The socket, or epoll itself at shutdown, is closed under us: drop it.
            self._parked.pop(fd, None)
            conn.close()

    def wake(self) -> None:
        """Make the poller look at its deadlines and state now."""
        with self._wake_lock:
            if self._wake_w < 0:
                return  # stopped: its pipe is closed, and the number may be reused
            with contextlib.suppress(BlockingIOError):  # a full pipe: already woken
                os.write(self._wake_w, b"x")

    # ----------------------------------------------------------------- the poller's own

    def _run(self) -> None:
        epoll, parked, server = self._epoll, self._parked, self._server
        while not self._stopping:
            try:
                events = epoll.poll(self._sleep_time(), 1024)
            except InterruptedError:
                continue
            now = monotonic()
            for fd, _ in events:
                conn = parked.pop(fd, None)
                if conn is None:
                    if fd == self._wake_r:
                        self._drain_wake_pipe()
                    continue
                mode = conn.park_mode
                if mode == READ:
                    if conn.parser.awaiting_body is None:
                        # A head that trickles in (a slow client, or slowloris) is read
                        # here as it comes and reaches the pool only once a request is
                        # complete: each piece would otherwise cost a hand-off to a worker
                        # and back, for a few bytes. A keep-alive connection's next
                        # request, read here too, reaches its worker parsed.
                        conn.take_input(now)
                    else:
                        server.resume(conn, now)  # a body: read by a worker
                elif mode == WRITE:
                    self._write(conn)
                elif mode == LINGER:
                    self._linger(conn)
                else:
                    server.continue_handshake(conn)
            self._after_events(now)
        self._close_all()

    def _after_events(self, now: float) -> None:
        """Once a pass: deadlines, the sampler's tick, and a requested close of the idle."""
        if now >= self._next_sweep:
            self._sweep(now)
        sampler = self._server.sampler
        if now >= sampler.next_sample:
            sampler.tick(now)
        if self._close_idle_requested:
            self._close_idle()

    def _write(self, conn: Connection) -> None:
        try:
            pending = conn.flush()
        except ClientGone:
            conn.close()
            return
        if pending:
            self.park(conn, WRITE, monotonic() + self._server.config.write_timeout)
        elif conn.after_write == LINGER:
            conn.linger()
        elif conn.parser.complete:
            self._server.resume(conn, monotonic())
        elif conn.parser.in_progress:
            deadline = conn.request_started + self._server.config.header_timeout
            self.park(conn, READ, deadline)
        else:
            self.park(conn, READ, monotonic() + self._server.config.keepalive_timeout)

    def _linger(self, conn: Connection) -> None:
        if conn.discard_input():
            self.park(conn, LINGER, conn.park_deadline)
        else:
            conn.close()

    def _drain_wake_pipe(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _sleep_time(self) -> float:
        return max(self._next_sweep - monotonic(), 0.0)

    def _sweep(self, now: float) -> None:
        """Time out the parked connections past their deadline."""
        self._next_sweep = now + self._sweep_every
        parked = self._parked
        # A snapshot: workers add to `_parked` meanwhile (only this thread removes).
        due = [conn for conn in list(parked.values()) if conn.park_deadline <= now]
        taken = []
        for conn in due:
            if parked.get(conn.fd) is conn:  # not closed meanwhile (and its number reused)
                del parked[conn.fd]
                taken.append(conn)
        self._end_unless_arrived(taken, now, self._time_out)

    def _time_out(self, conn: Connection) -> None:
        if conn.park_mode == READ and conn.parser.in_progress:
            # A request had begun and did not arrive in time.
            self._server.stats.shard().timeouts += 1
            conn.answer_and_linger(error_response(408, self._server.date))
        else:
            conn.close()  # a silent new connection, a stalled reader, or a finished linger

    # ----------------------------------------------------------------- shutdown

    def idle_count(self) -> int:
        """Connections parked between requests now (any thread; a snapshot)."""
        return sum(
            1 for conn in list(self._parked.values()) if _between_requests(conn) and conn.requests
        )

    def close_idle(self) -> None:
        """Close every parked connection that is between requests (done by the poller thread:
        only it removes connections from `_parked`)."""
        self._close_idle_requested = True
        self.wake()

    def _close_idle(self) -> None:
        self._close_idle_requested = False
        # A snapshot: workers add to `_parked` meanwhile (only this thread removes).
        idle = [conn for conn in list(self._parked.values()) if _between_requests(conn)]
        for conn in idle:
            del self._parked[conn.fd]
        self._end_unless_arrived(idle, monotonic(), Connection.close)

    def _end_unless_arrived(
        self, conns: list[Connection], now: float, end: Callable[[Connection], None]
    ) -> None:
        """Apply `end` to each of `conns`, just taken from `_parked`; but one that is between
        requests and whose next request has come is read and served instead.

        That request arrived since this thread last waited on epoll, its event not yet taken:
        closed unread, the connection would be reset and the request lost (a proxy that
        reused the connection then has no answer to give). What is left of the race is the
        time from this look to the close.
        """
        arrived = _with_input([conn for conn in conns if _between_requests(conn)])
        for conn in conns:
            if conn.fd in arrived:
                conn.take_input(now)
                if self._parked.get(conn.fd) is not conn or not _between_requests(conn):
                    continue  # a request, whole or begun: it is served
                # What came held nothing of a request (a PROXY header, a TLS record
                # without data): idle still.
                del self._parked[conn.fd]
            end(conn)

    def stop(self) -> None:
        """Stop the thread and close every parked connection."""
        self._stopping = True
        self.wake()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    def _close_all(self) -> None:
        for conn in list(self._parked.values()):
            conn.close()
        self._parked.clear()
        self._epoll.close()
        with self._wake_lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
