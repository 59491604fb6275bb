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

import _socket
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

from ..config import Config, trusted_networks
from ..http import DateHeader, Limits, Request, error_response
from ..pool import DeadlineExceeded, DrainReport, JobCancelled, PoolClosed, PoolError, WorkerPool
from ..wsgi import WSGIApp, base_environ
from ._access_log import AccessLog
from ._admin import AdminServer
from ._agent import AgentListener, agent_reply
from ._connection import HANDSHAKE_READ, HANDSHAKE_WRITE, Connection
from ._listen import nodelay_inherited, open_listener, tls_context
from ._poller import Poller, sweep_interval
from ._proxy import is_trusted
from ._sampler import Sampler
from ._snapshot import snapshot
from ._stats import Refusal, Stats, Totals
from ._tls import TLSSocket, handshake
from ._watchdog import InFlight, Watchdog

log = logging.getLogger("poolserver")
access_log = logging.getLogger("poolserver.access")

_SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_FD_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


@dataclass(frozen=True, slots=True)
class ShutdownReport:
    """What a graceful shutdown did, counted from the moment it began.

    Attributes:
        served: responses sent while draining.
        refused: requests answered 503 while draining (still queued at the deadline, or late).
        cut: connections closed at the deadline without an answer (a request was running or
            still arriving on them).
        pool: the worker pool's drain report.
    """

    served: int
    refused: int
    cut: int
    pool: DrainReport

    @property
    def clean(self) -> bool:
        """Every request that arrived was answered, and nothing was cut or refused."""
        return self.cut == 0 and self.refused == 0 and self.pool.clean


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
            timings=False,  # each request is timed in its exchange, finer than the pool could
        )
        self.poller = Poller(self, sweep_every=sweep_interval(config))
        self.watchdog = Watchdog(self)
        self.stats = Stats()
        self.sampler = Sampler(self)
        self.started_at = monotonic()
        self.inflight: dict[Connection, InFlight] = {}
        self.draining = False
        self.debug = log.isEnabledFor(logging.DEBUG)
        self.access_log = (
            AccessLog(config.access_log_format, config.access_log_file)
            if config.access_log
            else None
        )
        self.admin: AdminServer | None = None
        self.agent: AgentListener | None = None
        self.base_environ: dict[str, Any] = {}
        self._trusted = self.trusted_networks = trusted_networks(config)
        self._trust_cache: dict[str, bool] = {}
        self.checks_upstream = config.request_start_header  # X-Request-Start is looked at
        # Proxy headers are looked at (from trusted peers) unless nobody is trusted.
        self.proxy_headers = self._trusted is None or bool(self._trusted)
        self.trust_checked = self.proxy_headers or config.proxy_protocol or self.checks_upstream
        self._tls = tls_context(config)
        self.request_numbers = itertools.count(1)  # the seed's Job Id, one per request
        self._admission_wait = config.queue_timeout if config.overload_policy == "wait" else 0.0
        self._max_wait = config.max_queue_wait
        self._connections: dict[int, Connection] = {}
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._stop_accepting = threading.Event()
        self._below_max = threading.Event()
        self._all_closed = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._address: tuple[str, int] = ("", 0)
        self._closed = False
        self._shared = False
        self._unavailable_cache: tuple[int, int, bytes] = (0, 0, b"")
        self._family = int(socket.AF_INET)
        self._nodelay_each = False  # TCP_NODELAY set on each connection, not inherited
        self._before_drain: Totals | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self, listener: socket.socket | None = None, *, shared: bool = False) -> None:
        """Listen (on `listener` if given, else as the config says), start the poller and
        the acceptor; returns once the server accepts.

        `shared`: other processes accept on the same listener. Then this one accepts only
        while it has a free worker (when busy, it leaves a new connection `busy_accept_delay`
        seconds to the others), and never changes the listener itself: stopping only closes
        its own descriptor.
        """
        config = self.config
        self._shared = shared
        self._listener = listener if listener is not None else open_listener(config)
        self._listener.setblocking(False)
        self._family = int(self._listener.family)
        self._nodelay_each = self._family != socket.AF_UNIX and not nodelay_inherited(
            self._listener
        )
        if self._family == socket.AF_UNIX:
            host, port = str(self._listener.getsockname()), 0
        else:
            host, port = self._listener.getsockname()[:2]
        self._address = (host, port)
        scheme = "https" if self._tls is not None else "http"
        self.base_environ = base_environ(host or "localhost", port, scheme)
        if self.access_log is not None:
            self.access_log.start()
        if config.admin_port is not None:
            self.admin = AdminServer(self, config.admin_host, config.admin_port)
            self.admin.start()
            log.info("admin listener on http://%s:%d", *self.admin.address)
        if config.agent_port is not None:
            self.agent = AgentListener(
                config.admin_host,
                config.agent_port,
                lambda: agent_reply(snapshot(self, detail=False)),
            )
            self.agent.start()
            log.info("agent-check listener on %s:%d", *self.agent.address)
        self.poller.start()
        self.watchdog.start()
        self._acceptor = threading.Thread(
            target=self._accept_loop, name="poolserver-acceptor", daemon=True
        )
        self._acceptor.start()
        log.log(
            logging.DEBUG if shared else logging.INFO,
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
        """`http://host:port` (or `https://`, or `unix:path`) of the listener."""
        host, port = self._address
        if self._family == socket.AF_UNIX:
            return f"unix:{host}"
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    def stop_accepting(self, *, take_backlog: bool = True) -> None:
        """The first phase of a drain; idempotent. Returns once the listener is closed.

        Connections the kernel had already accepted (its backlog) are taken in and served,
        not reset; every response from now on says `Connection: close`. With a shared
        listener that others go on accepting from, `take_backlog=False` leaves them the
        backlog.
        """
        if self._before_drain is None:
            self._before_drain = self.stats.totals()
        self.draining = True
        self._stop_acceptor(take_backlog=take_backlog)

    def shutdown(self, timeout: float | None = None) -> ShutdownReport:
        """Drain gracefully within `timeout` seconds (default: `drain_timeout`), in phases.

        1. Stop accepting (`stop_accepting`): from now on every response says
           `Connection: close`.
        2. For `drain_grace` seconds idle keep-alive connections stay open: a request already
           on its way is answered, not reset. Then those still idle are closed.
        3. Queued and running requests finish, until the deadline.
        4. At the deadline, requests still queued are answered 503; connections still open
           (a request running or arriving) are cut.
        """
        timeout = self.config.drain_timeout if timeout is None else timeout
        start = monotonic()
        end = start + timeout
        self.stop_accepting()
        if self._connections:
            self._all_closed.wait(max(0.0, min(start + self.config.drain_grace, end) - start))
        self.poller.close_idle()
        if self._connections:
            self._all_closed.wait(max(0.0, end - monotonic()))
        # Past the deadline this answers what is still queued 503 at once; before it, the
        # last workers are only booking the requests they just finished.
        pool_report = self.pool.drain(max(0.0, end - monotonic()))
        # Connections answered and lingering to their close are not cut; the others are.
        cut = sum(1 for conn in list(self._connections.values()) if not conn.answered)
        self.close()
        before, after = self._before_drain, self.stats.totals()
        assert before is not None
        return ShutdownReport(
            served=after.served - before.served,
            refused=_refused(after) - _refused(before),
            cut=cut,
            pool=pool_report,
        )

    def close(self) -> None:
        """Stop at once: close the listener and every connection. Running requests are
        abandoned (their threads cannot be stopped) and what they write is discarded.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.draining = True
        self._stop_acceptor()
        if self.admin is not None:
            self.admin.stop()
        if self.agent is not None:
            self.agent.stop()
        self.watchdog.stop()
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
        if self.access_log is not None:
            self.access_log.stop()

    def _stop_acceptor(self, *, take_backlog: bool = False) -> None:
        if self._stop_accepting.is_set():
            return
        self._stop_accepting.set()
        self._below_max.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._acceptor is not None and self._acceptor is not threading.current_thread():
            self._acceptor.join(5)
        if self._listener is not None:
            if take_backlog:
                # A listener closed with connections in its queue resets them. Shrink the
                # queue first, so few new handshakes complete meanwhile; take what is in it.
                # (A shared listener is the supervisor's to shrink: it serves the others too.)
                if not self._shared:
                    with contextlib.suppress(OSError):
                        self._listener.listen(0)
                self._take_backlog(self._listener)
            self._listener.close()

    def _take_backlog(self, listener: socket.socket) -> None:
        # Connections completed by the kernel are established for their clients, which may
        # have sent a request already: closing the listener would reset them.
        while True:
            try:
                fd, address = listener._accept()  # type: ignore[attr-defined]
            except OSError:
                return
            self._admit(fd, address)

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
            if self._shared:
                self._accept_shared(listener)
            else:
                self._accept_batch(listener)

    def _accept_shared(self, listener: socket.socket) -> None:
        # Every process sharing the listener wakes for a new connection; the first to accept
        # gets it. A process with no free worker waits first, so that a free one gets it;
        # if none took it meanwhile, all are busy and this one takes its share (admission
        # control then queues or refuses it as with one process).
        free = self._free_workers()
        if free <= 0:
            free = self._wait_for_a_free_worker(self.config.busy_accept_delay)
        self._accept_batch(listener, limit=free)

    def _free_workers(self) -> int:
        # Queued jobs count as busy: each has a worker woken for it, or one that will take it
        # when done. A connection just accepted waits queued until its woken worker runs, so
        # counting running jobs only would take a whole burst of connections in one process.
        pool = self.pool
        return pool.max_workers - pool.running_hint - pool.pending

    def _wait_for_a_free_worker(self, delay: float) -> int:
        """Wait until a worker is free or `delay` has passed; how many to accept then.

        Looked at every 2 ms: a worker that is only finishing a response frees itself
        within that, and this process takes the connection as an idle one would.
        """
        waker = select.poll()
        waker.register(self._wake_r, select.POLLIN)
        end = monotonic() + delay
        while (left := end - monotonic()) > 0:
            if waker.poll(min(left, 0.002) * 1000) or self._stop_accepting.is_set():
                return 0
            free = self._free_workers()
            if free > 0:
                return free
        return 64  # still busy: so is every other process, or it would have taken it

    def _wait_below_max(self, max_connections: int) -> None:
        self._below_max.clear()
        # Checked again after clearing: a connection that closed in between has set nothing.
        if len(self._connections) >= max_connections:
            self._below_max.wait()

    def _accept_batch(self, listener: socket.socket, limit: int = 64) -> None:
        # Accepting a batch per wake-up amortises taking the GIL back across connections.
        for _ in range(min(limit, 64)):
            if self._stop_accepting.is_set():
                return
            try:
                # `_accept` gives the new descriptor; `accept` would also build a Python
                # `socket.socket` around it, finding its family through an IntEnum: a cost
                # per connection that the C socket type below does without.
                fd, address = listener._accept()  # type: ignore[attr-defined]
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
            self._admit(fd, address)

    def _admit(self, fd: int, address: Any) -> None:
        family = self._family
        if family == socket.AF_UNIX:
            address = ("", 0)
        sock = _socket.socket(family, socket.SOCK_STREAM, 0, fd)
        try:
            sock.setblocking(False)
            if self._nodelay_each:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            sock.close()
            return
        if self._tls is not None:
            self._admit_tls(sock, address)
            return
        conn = Connection(sock, address, self)
        if self.trust_checked:
            self._trust(conn)
        self._connections[conn.fd] = conn
        # Its request is read here, as the poller reads a keep-alive connection's next one:
        # it has usually arrived with the handshake's last packet, and a worker that finds
        # it parsed serves 53% more new connections per second on one core
        # (docs/architecture.md).
        conn.take_input(conn.ready_at)

    def _admit_tls(self, raw: _socket.socket, address: tuple[str, int]) -> None:
        assert self._tls is not None
        try:
            plain = socket.socket(self._family, socket.SOCK_STREAM, 0, raw.detach())
            # A socket made from a descriptor believes it blocks (timeout None), whatever the
            # descriptor's flags; then the ssl module retries a wanting handshake in a loop.
            plain.setblocking(False)
            wrapped = self._tls.wrap_socket(plain, server_side=True, do_handshake_on_connect=False)
        except OSError as exc:
            log.debug("TLS set-up failed for %s: %s", address[0], exc)
            return
        conn = Connection(TLSSocket(wrapped), address, self)
        if self.trust_checked:
            self._trust(conn)
        self._connections[conn.fd] = conn
        self.continue_handshake(conn)

    def continue_handshake(self, conn: Connection) -> None:
        """Advance a TLS handshake without blocking (acceptor or poller thread): done, the
        connection goes to the pool; else it waits in the poller, within header_timeout."""
        sock = conn.sock
        assert isinstance(sock, TLSSocket)
        try:
            state = handshake(sock.ssl)
        except OSError as exc:
            log.debug("TLS handshake with %s failed: %s", conn.remote_addr, exc)
            conn.close()
            return
        if state == 0:
            self.resume(conn, monotonic())
            return
        mode = HANDSHAKE_READ if state == 1 else HANDSHAKE_WRITE
        self.poller.park(conn, mode, conn.request_started + self.config.header_timeout)

    def _trust(self, conn: Connection) -> None:
        """Whether the peer may speak for the client; then a PROXY header is awaited if asked."""
        address = conn.remote_addr
        trusted = self._trust_cache.get(address)
        if trusted is None:
            trusted = is_trusted(address, self._trusted)
            if len(self._trust_cache) < 4096:
                self._trust_cache[address] = trusted
        conn.trusted = trusted
        if trusted and self.config.proxy_protocol:
            conn.proxy_buf = b""

    # ----------------------------------------------------------------- connection services

    def resume(self, conn: Connection, ready_at: float) -> None:
        """Hand a connection that has bytes to process since `ready_at` to the pool (from an
        I/O thread).

        Under the `wait` policy it may wait for room up to `queue_timeout`; in all it may wait
        up to `max_queue_wait` before a worker starts it. Past either, it is answered 503 by
        the pool's timer thread: a refusal costs no worker.
        """
        conn.ready_at = ready_at
        try:
            self.pool.post(conn, wait=self._admission_wait, deadline=ready_at + self._max_wait)
        except PoolClosed:
            conn.close()

    def refuse(self, conn: Connection, reason: PoolError) -> None:
        """Answer 503 without running the application (called by whoever gives up on it)."""
        if isinstance(reason, JobCancelled):
            why = Refusal.DRAINING
        elif isinstance(reason, DeadlineExceeded):
            why = Refusal.QUEUE_AGE
        else:
            why = Refusal.QUEUE_FULL
        empty = conn.drop_unread()
        if empty is False:
            # Nobody to refuse: an idle keep-alive connection whose client closed it is posted
            # like one with a request, and is only closed.
            return
        # Counted before the answer: a client that has its 503 finds it in the books.
        self.stats.shard().refusals[why] += 1
        if self.debug:
            log.debug("503 to %s: %s", conn.remote_addr, why.value)
        conn.answer_unread(self._unavailable(), empty)

    def refuse_late(self, conn: Connection, request: Request, waited: float) -> None:
        """Answer 503 to a request that waited past `max_queue_wait` (found by its worker)."""
        self.stats.shard().refusals[Refusal.QUEUE_AGE] += 1
        log.debug(
            "503 to %s: %s %s waited %.3f s",
            conn.remote_addr,
            request.method,
            request.target.decode("latin-1"),
            waited,
        )
        if request.body is not None:
            request.body.close()
        conn.answer_and_linger(self._unavailable())

    def _unavailable(self) -> bytes:
        # Built once per second and Retry-After value: under overload it is sent thousands of
        # times a second, by I/O threads whose time the running requests need.
        retry_after = self.retry_after()
        second = int(time.time())
        cached = self._unavailable_cache
        if cached[0] != retry_after or cached[1] != second:
            response = error_response(503, self.date, extra=(("Retry-After", str(retry_after)),))
            cached = self._unavailable_cache = (retry_after, second, response)
        return cached[2]

    def retry_after(self) -> int:
        """Seconds a refused client should wait: the backlog over recent throughput, >= 1."""
        rate = self.sampler.rate.rate
        backlog = self.pool.pending + self.config.workers
        if rate <= 0:
            return max(1, math.ceil(self.config.max_queue_wait))
        return min(300, max(1, math.ceil(backlog / rate)))

    def trusts(self, conn: Connection) -> bool:
        """Whether proxy headers from this connection's peer are believed."""
        return conn.trusted

    def forget(self, conn: Connection) -> None:
        """A connection closed: unregister it; wake the acceptor or a drain if they wait."""
        connections = self._connections
        if connections.get(conn.fd) is conn:
            del connections[conn.fd]
            if not self._below_max.is_set():
                self._below_max.set()
            if self.draining and not connections:
                self._all_closed.set()

    @property
    def connection_count(self) -> int:
        """Open connections now."""
        return len(self._connections)

    def threads_alive(self) -> dict[str, bool]:
        """The server's own threads, and whether each is alive (for /livez)."""
        acceptor = self._acceptor is not None and (
            self._acceptor.is_alive() or self._stop_accepting.is_set()
        )
        return {
            "acceptor": acceptor,
            "poller": self.poller.alive,
            "watchdog": self.watchdog.alive,
        }

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
            "shut down %s: %d served, %d refused, %d cut while draining",
            "cleanly" if report.clean else "with losses",
            report.served,
            report.refused,
            report.cut,
        )
        return 0 if report.clean else 1


def _refused(totals: Totals) -> int:
    return sum(count for why, count in totals.refusals.items() if why is not Refusal.CLIENT_GONE)


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
