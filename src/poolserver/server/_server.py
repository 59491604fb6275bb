"""The server: a listener, an acceptor thread, a poller thread and a worker pool, wired together.

Resource handling: every accepted connection is registered in `_connections` until closed; at
most `max_connections` are open, beyond which the acceptor stops accepting and new connections
wait in the kernel's backlog. Shutdown is bounded: `shutdown(timeout)` stops accepting,
answers no more keep-alive, closes idle connections, lets requests finish until the timeout,
then closes what is left. `close()` is immediate.

Error handling: running out of file descriptors pauses accepting briefly (and is logged); a
failing application request answers 500 and the server goes on; nothing a client does can stop
a thread of the server.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import math
import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from time import monotonic
from typing import Any

from ..config import Config
from ..http import DateHeader, Limits, ProtocolError, Request, error_response
from ..pool import DrainReport, JobCancelled, PoolClosed, PoolError, WorkerPool
from ..wsgi import WSGIApp, base_environ
from ._connection import Connection
from ._listen import bind
from ._poller import Poller

log = logging.getLogger("poolserver")
access_log = logging.getLogger("poolserver.access")

_SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_FD_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    """What a graceful shutdown did.

    Attributes:
        clean: every request that arrived was answered before the deadline.
        pool: the worker pool's drain report.
        connections_cut: connections still open at the deadline, closed without an answer.
    """

    clean: bool
    pool: DrainReport
    connections_cut: int


class Server:
    """An HTTP/1.1 WSGI server on a worker pool.

    Args:
        app: the WSGI application.
        config: the options; see `poolserver.config.Config`.
    """

    def __init__(self, app: WSGIApp, config: Config | None = None) -> None:
        self.app = app
        self.config = config = config or Config()
        self.limits = Limits(
            max_request_line=config.max_request_line,
            max_header_size=config.max_header_size,
            max_headers=config.max_headers,
            max_body_size=config.max_body_size,
            body_spool_threshold=config.body_spool_threshold,
        )
        self.date = DateHeader()
        self.pool = WorkerPool(
            config.workers,
            config.queue_size,
            max_waiting=config.max_connections,
            name="poolserver",
            initializer=_set_worker_scheduling,
            initargs=(config.worker_scheduling,),
        )
        shortest = min(config.header_timeout, config.keepalive_timeout, config.read_timeout)
        self.poller = Poller(self, max_sleep=min(1.0, shortest / 4))
        self.draining = False
        self.debug = log.isEnabledFor(logging.DEBUG)
        self.access_log = config.access_log
        self.base_environ: dict[str, Any] = {}
        self.bad_requests = 0
        self.timeouts = 0
        self.refused = 0
        self._request_ids = itertools.count(1)
        self._connections: dict[int, Connection] = {}
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stop_accepting = threading.Event()
        self._below_max = threading.Event()
        self._all_closed = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._address: tuple[str, int] = ("", 0)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Bind, start the poller and the acceptor; returns once the server accepts."""
        config = self.config
        self._listener = bind(config.host, config.port, config.backlog)
        host, port = self._listener.getsockname()[:2]
        self._address = (host, port)
        self.base_environ = base_environ(host, port)
        self.poller.start()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="poolserver-acceptor", daemon=True
        )
        self._acceptor.start()
        log.info(
            "poolserver listening on %s (%d workers, queue %d)",
            self.url,
            config.workers,
            config.queue_size,
        )

    @property
    def address(self) -> tuple[str, int]:
        """The bound `(host, port)`: with port 0 in the config, the port actually chosen."""
        return self._address

    @property
    def url(self) -> str:
        """`http://host:port` of the listener."""
        host, port = self._address
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def shutdown(self, timeout: float | None = None) -> ShutdownReport:
        """Stop gracefully within `timeout` seconds (default: `drain_timeout`).

        Stops accepting, closes idle connections, answers requests still arriving on open
        connections with `Connection: close`, lets running and queued requests finish, then
        closes whatever is left.
        """
        timeout = self.config.drain_timeout if timeout is None else timeout
        end = monotonic() + timeout
        self.draining = True
        self._stop_acceptor()
        self.poller.close_idle()
        if self._connections:
            self._all_closed.wait(max(0.0, end - monotonic()))
        report = self.pool.drain(max(0.0, end - monotonic()))
        cut = len(self._connections)
        self.close()
        return ShutdownReport(clean=report.clean and cut == 0, pool=report, connections_cut=cut)

    def close(self) -> None:
        """Stop at once: close the listener and every connection. Running requests are
        abandoned (their threads cannot be stopped) and what they write is discarded."""
        self.draining = True
        self._stop_acceptor()
        self.poller.stop()
        for conn in list(self._connections.values()):
            conn.close()
        if self.pool.statistics().running == 0:
            self.pool.drain(0)
        else:
            self.pool.shutdown(wait=False, cancel_futures=True)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _stop_acceptor(self) -> None:
        if self._stop_accepting.is_set():
            return
        self._stop_accepting.set()
        self._below_max.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._acceptor is not None and self._acceptor is not threading.current_thread():
            self._acceptor.join(5)
        if self._listener is not None:
            self._listener.close()

    # ----------------------------------------------------------------- accepting

    def _accept_loop(self) -> None:
        listener = self._listener
        assert listener is not None
        poll = select.poll()
        poll.register(listener, select.POLLIN)
        poll.register(self._wake_r, select.POLLIN)
        max_connections = self.config.max_connections
        while not self._stop_accepting.is_set():
            if len(self._connections) >= max_connections:
                self._wait_below_max(max_connections)
                continue
            poll.poll()
            self._accept_batch(listener)

    def _wait_below_max(self, max_connections: int) -> None:
        self._below_max.clear()
        # Checked again after clearing: a connection that closed in between has set nothing.
        if len(self._connections) >= max_connections:
            self._below_max.wait()

    def _accept_batch(self, listener: socket.socket) -> None:
        # Accepting a batch per wake-up amortises taking the GIL back across connections.
        for _ in range(64):
            if self._stop_accepting.is_set():
                return
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _FD_EXHAUSTED:
                    # Expected under fd exhaustion: a line, not a traceback.
                    log.error("cannot accept connections: %s; pausing 100 ms", exc)  # noqa: TRY400
                    time.sleep(0.1)
                elif not self._stop_accepting.is_set():
                    log.warning("accept failed: %s", exc)
                return
            self._admit(sock, address)

    def _admit(self, sock: socket.socket, address: Any) -> None:
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            return
        conn = Connection(sock, address, self)
        self._connections[conn.fd] = conn
        self.resume(conn)

    # ----------------------------------------------------------------- connection services

    def resume(self, conn: Connection) -> None:
        """Hand a connection that has bytes to process to the pool (from an I/O thread)."""
        try:
            self.pool.post(conn, wait=self.config.queue_timeout)
        except PoolClosed:
            conn.close()

    def refuse(self, conn: Connection, reason: PoolError) -> None:
        """Answer 503 without a worker: the pool had no room in time, or is shutting down."""
        self.refused += 1
        if isinstance(reason, JobCancelled):
            log.info("503 to %s: the server is shutting down", conn.remote_addr)
        else:
            log.warning("503 to %s: %s", conn.remote_addr, reason)
        # The request was never read: drop what arrived, so that closing does not reset.
        conn.discard_input()
        conn.answer_and_linger(
            error_response(503, self.date, extra=(("Retry-After", self.retry_after()),))
        )

    def retry_after(self) -> str:
        """Seconds a refused client should wait: the queue's depth over recent throughput."""
        stats = self.pool.statistics()
        waiting = stats.queued + stats.waiting
        mean_run = stats.run_time.mean or 0.0
        workers = max(stats.max_workers, 1)
        return str(max(1, math.ceil(waiting * mean_run / workers)))

    def forget(self, conn: Connection) -> None:
        """A connection closed: unregister it; wake the acceptor or a drain if they wait."""
        connections = self._connections
        if connections.get(conn.fd) is conn:
            del connections[conn.fd]
            if not self._below_max.is_set():
                self._below_max.set()
            if self.draining and not connections:
                self._all_closed.set()

    def count_bad_request(self, error: ProtocolError) -> None:
        """Count a request refused for breaking the protocol or a limit."""
        self.bad_requests += 1

    def count_timeout(self) -> None:
        """Count a request that did not arrive within its timeout."""
        self.timeouts += 1

    @property
    def connection_count(self) -> int:
        """Open connections now."""
        return len(self._connections)

    def log_request_start(self, conn: Connection, request: Request) -> None:
        """The seed's debug line, once per request."""
        log.debug(
            "Worker %s, processing request %d",
            threading.current_thread().name.rsplit("-", 1)[-1],
            next(self._request_ids),
        )

    def log_access(self, conn: Connection, request: Request, status: str, sent: int) -> None:
        """One line per request, in the common log format."""
        access_log.info(
            '%s - - [%s] "%s %s HTTP/%s" %s %s',
            conn.remote_addr,
            time.strftime("%d/%b/%Y:%H:%M:%S %z"),
            request.method,
            request.target.decode("latin-1"),
            request.version,
            status[:3] or "-",
            sent or "-",
        )

    # ----------------------------------------------------------------- running as a program

    def serve(self, install_signals: bool = True) -> int:
        """Run until SIGTERM or SIGINT, then shut down gracefully. Returns an exit code.

        A second signal during the shutdown exits at once.
        """
        stop = threading.Event()
        if install_signals:
            _install_signal_handlers(stop.set)
            # Threads inherit the signal mask: with the signals blocked while the server's
            # threads start, the kernel can only deliver them to this thread, which is
            # waiting below. (Delivered to another thread, they would not wake this one.)
            signal.pthread_sigmask(signal.SIG_BLOCK, _SHUTDOWN_SIGNALS)
        try:
            self.start()
        finally:
            if install_signals:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _SHUTDOWN_SIGNALS)
        stop.wait()
        log.info("shutting down: draining for up to %.0f s", self.config.drain_timeout)
        report = self.shutdown()
        log.info(
            "shut down: %d requests finished while draining, %d cancelled, %d still running, "
            "%d connections cut",
            report.pool.finished,
            report.pool.cancelled,
            report.pool.still_running,
            report.connections_cut,
        )
        return 0


def _set_worker_scheduling(policy: str) -> None:
    """Worker initializer: on Linux, run the worker under SCHED_BATCH if asked.

    Why: under the GIL, a thread that wakes a worker keeps the GIL; with the default policy
    the woken worker preempts it at once, only to block on the GIL and hand the CPU back: two
    context switches per hand-off. A SCHED_BATCH worker waits for the waker to block or use
    up its time slice instead. Measured with a new connection per request, server on one
    core: 6.1 context switches per request down to 0.4, and 1.5x the throughput.
    """
    if policy != "batch" or not hasattr(os, "SCHED_BATCH"):
        return
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except OSError as exc:
        log.debug("SCHED_BATCH not available for workers: %s", exc)


def _install_signal_handlers(on_first: Callable[[], None]) -> None:
    received: list[int] = []

    def handle(signum: int, frame: object) -> None:
        if received:
            log.warning("second signal: exiting at once")
            os._exit(1)
        received.append(signum)
        on_first()

    for signum in _SHUTDOWN_SIGNALS:
        signal.signal(signum, handle)
