"""A client connection, as a job of the worker pool.

Theory of operation
-------------------
A connection belongs to exactly one owner at a time: the acceptor (briefly), the pool (queued
or waiting for admission), a worker (while `run` executes), or the poller (parked). Whoever
owns it may touch it; handing it on (`pool.post`, `poller.park`) is the owner's last act. One
exception: the watchdog may `hijack` a connection from a worker whose request ran out of
time; `send_lock` orders that against the worker's writes, and a hijacked connection is never
touched by its worker again.

A worker owns a connection only while it has bytes to process. `run` reads what the socket
holds without blocking (unless an I/O thread has just read a complete request), feeds the parser,
answers every complete request, and then parks the connection with the poller: to wait for
more of a request (header or read timeout), for the next request (keep-alive timeout), or for
the client to accept the rest of a response (write timeout). So no worker ever waits for a
client to send, and none waits for a slow reader beyond the write timeout of one response's
high-water mark.

What a new connection has sent is read by the acceptor, and what arrives on a parked one by the
poller (`take_input`), a chunk per readiness, until a request is complete; only then does the
connection go to the pool. So a client that sends its head a byte at a time never wakes a
worker for each byte, and a request reaches its worker parsed, which served 31% more keep-alive
requests and 53% more new connections per second on one core than a worker reading them
(docs/architecture.md). A request body is the exception: once a head announces one, the worker
reads it, so that a large upload is spooled by a worker, not by an I/O thread.

Answers the server gives itself (400s, 408, 503, 504) are sent without blocking, after which the
connection is half-closed and the poller reads and discards what the client still sends before
closing it ("lingering close"): closing a socket with unread input makes the kernel send a
reset, which can destroy the answer before the client reads it.
"""

from __future__ import annotations

import _socket
import contextlib
import logging
import select
import socket
import threading
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING, Any

from ..http import CONTINUE, ProtocolError, RequestParser, error_response
from ..pool import PoolError, Task
from ..wsgi import ClientGone
from ._exchange import serve_request
from ._proxy import parse_proxy_header
from ._stats import Refusal
from ._tls import TLSSocket

if TYPE_CHECKING:
    from ._server import Server
    from ._watchdog import InFlight

log = logging.getLogger("poolserver")

RECV_SIZE = 65536
# Bytes read in one run at most before the connection yields its worker (a fast uploader must
# not monopolise one).
READ_PER_RUN = 1024 * 1024
# A response's unsent bytes held per connection before the worker waits for the client.
HIGH_WATER = 1024 * 1024
# How long a half-closed connection is read and discarded before it is closed anyway.
LINGER_TIMEOUT = 2.0
# A connection that waited longer than this for a worker is checked for a departed client
# before its request runs (one more recv). Clients give up after seconds, not milliseconds;
# checking after every short wait would cost a system call per request under load.
GONE_CHECK_AFTER = 0.05

# Flags of a connection's last send, a half-close right behind it: MSG_MORE lets the kernel hold
# the bytes for the FIN, so the answer and the close leave in one segment (a segment and a
# wake-up of the client less per connection). Linux only; elsewhere a plain send.
LAST_SEND_FLAGS = getattr(socket, "MSG_MORE", 0)

# Park modes: what the poller waits for.
READ, WRITE, LINGER, HANDSHAKE_READ, HANDSHAKE_WRITE = 1, 2, 3, 4, 5


class Connection(Task):
    """One accepted socket and its HTTP/1.1 state; a `Task` of the worker pool."""

    __slots__ = (
        "after_write",
        "environ",
        "fd",
        "hijacked",
        "last_end",
        "out",
        "out_size",
        "park_deadline",
        "park_mode",
        "park_seq",
        "parser",
        "pending_error",
        "proxy_buf",
        "ready_at",
        "registered",
        "remote_addr",
        "remote_port",
        "request_started",
        "requests",
        "response_started",
        "send_lock",
        "sent_continue",
        "server",
        "sock",
        "trusted",
    )

    def __init__(
        self, sock: _socket.socket | TLSSocket, address: tuple[str, int], server: Server
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.server = server
        self.remote_addr = address[0]
        self.remote_port = address[1]
        self.parser = RequestParser(server.limits)
        self.out: deque[bytes | memoryview] = deque()
        self.out_size = 0
        self.after_write = READ  # what follows once `out` is sent: READ (keep-alive) or LINGER
        self.request_started = self.ready_at = self.last_end = monotonic()
        self.environ: dict[str, Any] | None = None  # the keys all its requests share
        self.requests = 0  # requests answered on this connection
        self.sent_continue = False
        self.response_started = False
        self.hijacked = False
        self.pending_error: ProtocolError | None = None
        self.send_lock = threading.Lock()
        self.park_deadline = 0.0
        self.park_mode = 0
        self.park_seq = 0  # parks so far: tells a connection parked again from one still parked
        self.registered = False
        self.trusted = False  # the peer may speak for the client (forwarded_allow_ips)
        self.proxy_buf: bytes | None = None  # a PROXY header is awaited (b"" so far)

    # ----------------------------------------------------------------- the pool's Job protocol

    def run(self) -> bool | None:
        """Process what the socket holds; True asks the pool to requeue (others are waiting)."""
        try:
            started = monotonic()
            waited = started - self.ready_at
            thorough = waited > GONE_CHECK_AFTER
            # Requests read by the acceptor or the poller are served without another read;
            # after a long wait the socket is looked at anyway, for a client that left
            # meanwhile.
            if (thorough or not self.parser.complete) and not self._receive(thorough=thorough):
                return None
            complete = self.parser.complete
            while complete:
                if not serve_request(self, complete.popleft(), waited, started):
                    return None
                if complete:
                    # The next pipelined request's clock starts now; it waits its turn if
                    # others wait in the queue (fairness).
                    waited = 0.0
                    started = self.ready_at = self.last_end
                    if self.server.pool.pending:
                        return True
            if self.pending_error is not None:
                self._answer_error(self.pending_error)
                return None
            self.wait_for_more()
        except Exception:
            log.exception("unexpected error on a connection from %s", self.remote_addr)
            self.close()
        return None

    def discard(self, reason: PoolError) -> None:
        """The pool will not run this connection: answer 503 at once, without a worker."""
        self.server.refuse(self, reason)

    # ----------------------------------------------------------------- serving

    def _receive(self, *, thorough: bool, limit: int = READ_PER_RUN) -> bool:
        """Read without blocking, up to about `limit` bytes, and feed the parser; False if
        the connection is gone.

        `thorough` reads until the socket says it is empty, so that a client that left while
        its request waited is noticed (its FIN follows the request) before the app runs.
        """
        parser = self.parser
        received = 0
        while received < limit:
            try:
                data = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                return True
            except OSError:
                return self._client_gone()
            if not data:
                return self._on_eof(thorough)
            if self.proxy_buf is not None:
                try:
                    data = self._take_proxy_header(data)
                except ProtocolError as error:
                    self._answer_error(error)
                    return False
                if not data:
                    continue
            if not parser.in_progress:
                self.request_started = monotonic()
            try:
                parser.feed(data)
            except ProtocolError as error:
                if parser.complete:
                    # Requests that came whole before the bad bytes are answered first.
                    self.pending_error = error
                    return True
                self._answer_error(error)
                return False
            if len(data) < RECV_SIZE and not thorough:
                return True  # most likely drained: skip the recv that would say so
            received += len(data)
        return True

    def take_input(self, ready_at: float) -> None:
        """Read and parse what arrived, one chunk at most, in an I/O thread (the acceptor, or
        the poller); then hand the connection to the pool if a worker has something to do (a
        complete request, or a body to read), else park it for more."""
        if not self._receive(thorough=False, limit=RECV_SIZE):
            return  # closed, or answered with an error and lingering
        parser = self.parser
        if parser.complete or parser.awaiting_body is not None:
            self.server.resume(self, ready_at)
        else:
            self.wait_for_more()

    def _take_proxy_header(self, data: bytes) -> bytes:
        """Consume the PROXY protocol header; the bytes after it are the HTTP stream."""
        buf = (self.proxy_buf or b"") + data
        parsed = parse_proxy_header(buf)
        if parsed is None:
            self.proxy_buf = buf
            return b""
        consumed, client = parsed
        self.proxy_buf = None
        if client is not None:
            self.remote_addr, self.remote_port = client
        return buf[consumed:]

    def _on_eof(self, waited: bool) -> bool:
        # TCP cannot tell a half-close from a close. A client that shuts its side right after
        # sending (as some HTTP/1.0 tools do) is answered, then the connection closed; but a
        # request whose client closed while it waited for a worker is taken as abandoned and
        # dropped before the app runs (so under load a half-closing client goes unanswered).
        if self.parser.complete and not waited:
            for request in self.parser.complete:
                request.keep_alive = False
            return True
        return self._client_gone()

    def _client_gone(self) -> bool:
        if self.parser.complete:
            # It sent requests and left while they waited: none of them will run.
            self.server.stats.shard().refusals[Refusal.CLIENT_GONE] += len(self.parser.complete)
            self.parser.complete.clear()
        self.close()
        return False

    def wait_for_more(self) -> None:
        """Park with the poller until more of a request, or the next one, arrives."""
        parser = self.parser
        server = self.server
        waiting = parser.awaiting_body
        if waiting is not None:
            if waiting.expect_continue and not self.sent_continue:
                self.sent_continue = True
                self.send_now(CONTINUE)
            server.poller.park(self, READ, monotonic() + server.config.read_timeout)
        elif parser.in_progress or not self.requests:
            # A request under way, or a new connection that has sent nothing yet.
            server.poller.park(self, READ, self.request_started + server.config.header_timeout)
        else:
            server.poller.park(self, READ, self.last_end + server.config.keepalive_timeout)

    def environ_base(self) -> dict[str, Any]:
        """The environ keys every request of this connection shares, kept from its second
        request on (a connection that serves one request would not reuse it)."""
        base = self.environ = dict(self.server.base_environ)
        base["REMOTE_ADDR"] = self.remote_addr
        base["REMOTE_PORT"] = str(self.remote_port)
        return base

    # ----------------------------------------------------------------- writing

    def send(self, data: bytes, flags: int = 0) -> None:
        """Send response bytes; wait (bounded) only past the high-water mark.

        Raises:
            ClientGone: the client is gone, or the watchdog took the connection.
        """
        lock = self.send_lock
        lock.acquire()  # not `with`: that makes two bound methods per call, on the hot path
        try:
            if self.hijacked:
                raise ClientGone("the request timed out")
            self.response_started = True
            if not self.out:  # the usual case, written out here: one frame less per response
                try:
                    sent = self.sock.send(data, flags)
                except BlockingIOError:
                    sent = 0
                except OSError as exc:
                    raise ClientGone(str(exc)) from exc
                if sent == len(data):
                    return
                data = memoryview(data)[sent:]  # type: ignore[assignment]
            self._write(data, flags)
        finally:
            lock.release()

    def send_last(self, data: bytes) -> None:
        """Send the connection's last bytes and half-close it, the FIN in the same segment.

        The caller then closes or lingers as usual. What the client does not accept at once
        waits in `out`, and the half-close with it (`linger`, once the poller has sent it).

        Raises:
            ClientGone: as `send`.
        """
        self.send(data, LAST_SEND_FLAGS)
        if not self.out:
            # Right after the send, not at the close: the bytes wait in the kernel until the
            # FIN, and the close comes only after the books and the iterable's `close()`.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def _write(self, data: bytes, flags: int = 0) -> None:
        rest: bytes | memoryview = data
        if not self.out:
            try:
                sent = self.sock.send(data, flags)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise ClientGone(str(exc)) from exc
            if sent == len(data):
                return
            rest = memoryview(data)[sent:]
        self.out.append(rest)
        self.out_size += len(rest)
        if self.out_size > HIGH_WATER:
            self._flush_blocking()

    def send_now(self, data: bytes) -> None:
        """Send a small answer of the server's own; what does not fit waits in `out`.
        A client that is gone is not an error here."""
        try:
            self.send(data)
        except ClientGone:
            self.out.clear()
            self.out_size = 0

    def _flush_blocking(self) -> None:
        """Wait for the client to accept bytes until under the high-water mark, bounded."""
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        timeout_ms = int(self.server.config.write_timeout * 1000)
        while self.out_size > HIGH_WATER // 2:
            if not poller.poll(timeout_ms):
                raise ClientGone("write timeout: the client accepts no data")
            if not self.flush():
                return

    def flush(self) -> bool:
        """Send what `out` holds without blocking; True while bytes remain.

        Raises:
            ClientGone: the client is gone.
        """
        out = self.out
        while out:
            data = out[0]
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                return True
            except OSError as exc:
                raise ClientGone(str(exc)) from exc
            self.out_size -= sent
            if sent == len(data):
                out.popleft()
            else:
                out[0] = memoryview(data)[sent:]
                return True
        return False

    @property
    def answered(self) -> bool:
        """True once the connection's last answer is out or on its way, and it only closes."""
        return self.after_write == LINGER

    def hand_off_output(self, keep_alive: bool) -> bool:
        """After a response: park for the unsent rest, close, or go on. True to go on."""
        if self.out:
            self.after_write = READ if keep_alive else LINGER
            self.server.poller.park(self, WRITE, monotonic() + self.server.config.write_timeout)
            return False
        if not keep_alive:
            if self.parser.in_progress or self.parser.complete:
                self.linger()  # input left unread: a plain close would reset the answer
            else:
                self.close()
            return False
        return True

    # ----------------------------------------------------------------- the watchdog

    def hijack(self, record: InFlight, answer: bytes) -> str:
        """Take the connection from a worker whose request ran out of time (watchdog thread).

        The worker leaves `inflight` under `send_lock` too, so the request is still running
        when this takes the connection, or it has ended and nothing is taken.

        Returns:
            "finished": the request ended meanwhile; nothing was done.
            "answered": no response had started, `answer` was sent and the connection lingers.
            "cut": a response had started; the connection is shut and lingers to its close.
            "interrupted": the worker was writing; its write now fails and it closes itself.
        """
        if not self.send_lock.acquire(blocking=False):
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)
            return "interrupted"
        try:
            if self.server.inflight.get(self) is not record:
                return "finished"  # it ended meanwhile: the connection is not ours to take
            self.hijacked = True
            if self.response_started:
                with contextlib.suppress(OSError):
                    self.sock.shutdown(socket.SHUT_RDWR)
                self.server.poller.park(self, LINGER, monotonic() + LINGER_TIMEOUT)
                return "cut"
            self._finish_with(answer)
            return "answered"
        finally:
            self.send_lock.release()

    # ----------------------------------------------------------------- endings

    def _answer_error(self, error: ProtocolError) -> None:
        server = self.server
        if error.status >= 500 or error.status in (408, 413, 414, 431):
            log.info("%s from %s: %s", error.status, self.remote_addr, error.reason)
        else:
            log.debug("%s from %s: %s", error.status, self.remote_addr, error.reason)
        bad = server.stats.shard().bad_requests
        bad[error.status] = bad.get(error.status, 0) + 1
        self.answer_and_linger(error_response(error.status, server.date))

    def answer_and_linger(self, response: bytes) -> None:
        """Send a final answer without blocking, then half-close and linger in the poller."""
        with self.send_lock:
            self._finish_with(response)

    def _finish_with(self, response: bytes, *, close_when_sent: bool = False) -> None:
        """Send `response` in place of anything pending; once it is out, linger (or close, if
        nothing unread could reset it)."""
        self.out.clear()
        self.out_size = 0
        with contextlib.suppress(ClientGone):
            self._write(response, LAST_SEND_FLAGS)  # the FIN of `linger` follows at once
        self.after_write = LINGER
        if self.out:
            self.server.poller.park(self, WRITE, monotonic() + self.server.config.write_timeout)
        elif close_when_sent:
            self.close()
        else:
            self.linger()

    def linger(self) -> None:
        """Half-close, then let the poller discard input until EOF or a short timeout."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.server.poller.park(self, LINGER, monotonic() + LINGER_TIMEOUT)

    def drop_unread(self) -> bool | None:
        """Read and drop what a connection about to be refused sent.

        Returns:
            False if its client is gone (EOF or an error): the connection is then closed and
            nobody is there to answer. Else as `_drain`: True if the socket is now empty.
        """
        empty = self._drain()
        if empty is False:
            self.close()
        return empty

    def answer_unread(self, response: bytes, empty: bool | None) -> None:
        """Answer a connection whose input `drop_unread` dropped (`empty`: what it said), then
        close it.

        When the socket is empty once its input is dropped, a plain close cannot reset the
        answer (nothing is left unread), so it closes at once; otherwise it lingers.
        """
        with self.send_lock:
            self._finish_with(response, close_when_sent=bool(empty) and not self.parser.in_progress)

    def _drain(self) -> bool | None:
        """Read and drop what the socket holds: True when it is then empty, False at EOF or
        error, None when there was more than a few reads' worth."""
        for _ in range(16):
            try:
                data = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
        return None

    def discard_input(self) -> bool:
        """Read and drop what the client sends while lingering; False at EOF or error."""
        return self._drain() is not False

    def close(self) -> None:
        """Close the socket and forget the connection. Idempotent."""
        self.server.forget(self)
        self.out.clear()
        self.parser.close()
        with contextlib.suppress(OSError):
            self.sock.close()
