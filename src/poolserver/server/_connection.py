"""A client connection, as a job of the worker pool.

Theory of operation
-------------------
A connection belongs to exactly one owner at a time: the acceptor (briefly), the pool (queued
or waiting for admission), a worker (while `run` executes), or the poller (parked). Whoever
owns it may touch it; handing it on (`pool.post`, `poller.park`) is the owner's last act.

A worker owns a connection only while it has bytes to process. `run` reads what the socket
holds without blocking, feeds the parser, answers every complete request, and then parks the
connection with the poller: to wait for more of a request (header or read timeout), for the
next request (keep-alive timeout), or for the client to accept the rest of a response (write
timeout). So no worker ever waits for a client to send, and none waits for a slow reader beyond
the write timeout of one response's high-water mark.

Answers the server gives itself (400s, 408, 503) are sent without blocking, after which the
connection is half-closed and the poller reads and discards what the client still sends before
closing it ("lingering close"): closing a socket with unread input makes the kernel send a
reset, which can destroy the answer before the client reads it.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
from collections import deque
from time import monotonic
from typing import TYPE_CHECKING

from ..http import CONTINUE, ProtocolError, Request, RequestParser, error_response
from ..pool import PoolError
from ..wsgi import ClientGone, ResponseStarted, build_environ, run_call

if TYPE_CHECKING:
    from ._server import Server

log = logging.getLogger("poolserver")

RECV_SIZE = 65536
# Bytes read in one run at most before the connection yields its worker (a fast uploader must
# not monopolise one).
READ_PER_RUN = 1024 * 1024
# A response's unsent bytes held per connection before the worker waits for the client.
HIGH_WATER = 1024 * 1024
# How long a half-closed connection is read and discarded before it is closed anyway.
LINGER_TIMEOUT = 2.0

# Park modes: what the poller waits for.
READ, WRITE, LINGER = 1, 2, 3


class Connection:
    """One accepted socket and its HTTP/1.1 state."""

    __slots__ = (
        "after_write",
        "deadline",
        "fd",
        "out",
        "out_size",
        "park_mode",
        "park_seq",
        "parser",
        "registered",
        "remote_addr",
        "remote_port",
        "request_started",
        "requests",
        "sent_continue",
        "server",
        "sock",
    )

    def __init__(self, sock: socket.socket, address: tuple[str, int], server: Server) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.server = server
        self.remote_addr = address[0]
        self.remote_port = address[1]
        self.parser = RequestParser(server.limits)
        self.out: deque[bytes | memoryview] = deque()
        self.out_size = 0
        self.after_write = READ  # what follows once `out` is sent: READ (keep-alive) or LINGER
        self.request_started = monotonic()
        self.requests = 0  # requests answered on this connection
        self.sent_continue = False
        self.deadline = 0.0
        self.park_mode = 0
        self.park_seq = 0
        self.registered = False

    # ----------------------------------------------------------------- the pool's Job protocol

    def run(self) -> bool | None:
        """Process what the socket holds; True asks the pool to requeue (others are waiting)."""
        try:
            return self._serve()
        except Exception:
            log.exception("unexpected error on a connection from %s", self.remote_addr)
            self.close()
            return None

    def discard(self, reason: PoolError) -> None:
        """The pool could not take this connection in time: answer 503 at once, no worker."""
        self.server.refuse(self, reason)

    # ----------------------------------------------------------------- serving

    def _serve(self) -> bool | None:
        if not self._receive():
            return None
        parser = self.parser
        complete = parser.complete
        while complete:
            if not self._respond(complete.popleft()):
                return None
            if complete and self.server.pool.pending:
                return True  # fairness: the next pipelined request waits its turn
        self._wait_for_more()
        return None

    def _receive(self) -> bool:
        """Read without blocking and feed the parser; False if the connection is gone."""
        parser = self.parser
        received = 0
        while received < READ_PER_RUN:
            try:
                data = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                return True
            except OSError:
                self.close()
                return False
            if not data:
                return self._on_eof()
            if not parser.in_progress:
                self.request_started = monotonic()
            try:
                parser.feed(data)
            except ProtocolError as error:
                self._answer_error(error)
                return False
            if len(data) < RECV_SIZE:
                return True  # most likely drained: skip the recv that would say so
            received += len(data)
        return True

    def _on_eof(self) -> bool:
        # The client closed its side. Complete requests already read are still answered
        # (HTTP/1.0 clients may half-close after sending); anything partial is abandoned.
        if self.parser.complete:
            for request in self.parser.complete:
                request.keep_alive = False
            return True
        self.close()
        return False

    def _wait_for_more(self) -> None:
        parser = self.parser
        server = self.server
        waiting = parser.awaiting_body
        now = monotonic()
        if waiting is not None:
            if waiting.expect_continue and not self.sent_continue:
                self.sent_continue = True
                self._send_now(CONTINUE)
            server.poller.park(self, READ, now + server.config.read_timeout)
        elif parser.in_progress or not self.requests:
            # A request under way, or a new connection that has sent nothing yet.
            server.poller.park(self, READ, self.request_started + server.config.header_timeout)
        else:
            server.poller.park_idle(self, now + server.config.keepalive_timeout)

    def _respond(self, request: Request) -> bool:
        """Run the application for `request`; True if the connection goes on."""
        server = self.server
        self.sent_continue = False
        self.requests += 1
        keep_alive = request.keep_alive and not server.draining and not self.parser.upgraded
        environ = build_environ(request, server.base_environ, self.remote_addr, self.remote_port)
        if server.debug:
            server.log_request_start(self, request)
        try:
            call = run_call(
                server.app,
                environ,
                request,
                self._send,
                server.date,
                keep_alive=keep_alive,
                lifecycle=server,
            )
        except ClientGone:
            self.close()
            return False
        except ResponseStarted:
            log.exception("error in the application after the response started")
            self.close()
            return False
        except Exception:
            log.exception("error in the application")
            keep_alive = keep_alive and not self.out
            self._send_now(error_response(500, server.date, close=not keep_alive))
            status, sent = "500", 0
        else:
            keep_alive = not call.close
            status, sent = call.status or "", call.sent
        finally:
            if request.body is not None:
                request.body.close()
        if server.access_log:
            server.log_access(self, request, status, sent)
        if self.out:
            self.after_write = READ if keep_alive else LINGER
            server.poller.park(self, WRITE, monotonic() + server.config.write_timeout)
            return False
        if not keep_alive:
            self.close()
            return False
        return True

    # ----------------------------------------------------------------- writing

    def _send(self, data: bytes) -> None:
        """Send `data` for the application; wait (bounded) only past the high-water mark."""
        if not self.out:
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise ClientGone(str(exc)) from exc
            if sent == len(data):
                return
            rest: bytes | memoryview = memoryview(data)[sent:]
        else:
            rest = data
        self.out.append(rest)
        self.out_size += len(rest)
        if self.out_size > HIGH_WATER:
            self._flush_blocking()

    def _send_now(self, data: bytes) -> None:
        """Send a small answer of the server's own; what does not fit waits in `out`."""
        try:
            self._send(data)
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

    # ----------------------------------------------------------------- endings

    def _answer_error(self, error: ProtocolError) -> None:
        server = self.server
        if error.status >= 500 or error.status in (408, 413, 414, 431):
            log.info("%s from %s: %s", error.status, self.remote_addr, error.reason)
        else:
            log.debug("%s from %s: %s", error.status, self.remote_addr, error.reason)
        server.count_bad_request(error)
        self.answer_and_linger(error_response(error.status, server.date))

    def answer_and_linger(self, response: bytes) -> None:
        """Send a final answer without blocking, then half-close and linger in the poller."""
        self.out.clear()
        self.out_size = 0
        self._send_now(response)
        self.after_write = LINGER
        if self.out:
            self.server.poller.park(self, WRITE, monotonic() + self.server.config.write_timeout)
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

    def discard_input(self) -> bool:
        """Read and drop what the client sends while lingering; False at EOF or error."""
        for _ in range(16):
            try:
                data = self.sock.recv(RECV_SIZE)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
        return True

    def close(self) -> None:
        """Close the socket and forget the connection. Idempotent."""
        self.server.forget(self)
        self.out.clear()
        with contextlib.suppress(OSError):
            self.sock.close()
