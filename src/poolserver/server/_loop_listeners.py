"""The supervisor's admin and agent-check listeners, on its event loop.

They answer as one server's listeners do (`_admin.answer`, `_agent.agent_reply`), from the
snapshots of every serving process merged: each answer asks the processes for a fresh
snapshot (`source`), so counters are exact, and comes within a second even if a process
does not answer (its last snapshot stands in for it).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
from collections.abc import Callable
from http import HTTPStatus
from time import monotonic

from ._admin import answer, wants_detail
from ._agent import agent_reply
from ._loop import EventLoop
from ._snapshot import Snapshot

log = logging.getLogger("poolserver")

# Asks for a merged snapshot (detailed or not) and calls back with it, later.
SnapshotSource = Callable[[bool, Callable[[Snapshot], None]], None]

MAX_HEAD = 8192
MAX_CLIENTS = 64
CLIENT_TIMEOUT = 5.0


class _Client:
    """One connection to a loop listener: read a head (admin), write one answer, close."""

    def __init__(self, loop: EventLoop, sock: socket.socket, clients: set[_Client]) -> None:
        self.loop, self.sock, self.clients = loop, sock, clients
        self.head = bytearray()
        self.out = b""
        self.deadline = monotonic() + CLIENT_TIMEOUT
        sock.setblocking(False)
        clients.add(self)

    def reply(self, data: bytes) -> None:
        if self.sock.fileno() < 0:
            return  # closed meanwhile (time-out)
        self.out = data
        self.loop.watch(self.sock.fileno(), selectors.EVENT_WRITE, self._write)
        self._write(selectors.EVENT_WRITE)

    def _write(self, events: int) -> None:
        try:
            sent = self.sock.send(self.out)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        self.out = self.out[sent:]
        if not self.out:
            self.close()

    def close(self) -> None:
        self.clients.discard(self)
        if self.sock.fileno() >= 0:
            self.loop.unwatch(self.sock.fileno())
        self.sock.close()


class LoopListener:
    """A listening socket on the loop whose connections are answered by `on_client`."""

    def __init__(self, loop: EventLoop, host: str, port: int) -> None:
        self.loop = loop
        self.sock = socket.create_server((host, port))
        self.sock.setblocking(False)
        self.clients: set[_Client] = set()
        loop.watch(self.sock.fileno(), selectors.EVENT_READ, self._accept)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self.sock.getsockname()[:2]
        return str(host), int(port)

    def _accept(self, events: int) -> None:
        for _ in range(16):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if len(self.clients) >= MAX_CLIENTS:
                conn.close()
                continue
            self.on_client(_Client(self.loop, conn, self.clients))

    def on_client(self, client: _Client) -> None:
        """Handle a new connection."""
        raise NotImplementedError

    def expire(self, now: float) -> None:
        """Close connections that have had their time."""
        for client in [c for c in self.clients if c.deadline <= now]:
            client.close()

    def close(self) -> None:
        """Close the listener and every connection."""
        for client in list(self.clients):
            client.close()
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.loop.unwatch(self.sock.fileno())
        self.sock.close()


class LoopAdmin(LoopListener):
    """/metrics, /livez, /readyz, /status and /status.json for all the processes."""

    def __init__(self, loop: EventLoop, host: str, port: int, source: SnapshotSource) -> None:
        super().__init__(loop, host, port)
        self.source = source

    def on_client(self, client: _Client) -> None:
        """Read the request head, then answer."""
        self.loop.watch(
            client.sock.fileno(), selectors.EVENT_READ, lambda events: self._read(client)
        )

    def _read(self, client: _Client) -> None:
        try:
            data = client.sock.recv(MAX_HEAD)
        except BlockingIOError:
            return
        except OSError:
            client.close()
            return
        if not data:
            client.close()
            return
        client.head += data
        if b"\r\n\r\n" not in client.head and b"\n\n" not in client.head:
            if len(client.head) > MAX_HEAD:
                client.reply(_response(431, "text/plain", b"request head too large\n"))
            return
        self.loop.unwatch(client.sock.fileno())
        request_line = bytes(client.head).split(b"\n", 1)[0].decode("latin-1").split()
        if len(request_line) != 3 or request_line[0] not in ("GET", "HEAD"):
            client.reply(_response(405, "text/plain", b"only GET\n"))
            return
        method, path = request_line[0], request_line[1]
        route = path.split("?", 1)[0]
        if route in ("/status", "/"):
            client.reply(_response(*answer(route, {}), head_only=method == "HEAD"))
            return

        def respond(data: Snapshot) -> None:
            try:
                status, content_type, body = answer(path, data)
            except Exception:
                log.exception("admin request %s failed", path)
                status, content_type, body = 500, "text/plain", b"internal error\n"
            client.reply(_response(status, content_type, body, head_only=method == "HEAD"))

        self.source(wants_detail(path), respond)


class LoopAgent(LoopListener):
    """HAProxy's agent check for all the processes: their free capacity, or `drain`."""

    def __init__(self, loop: EventLoop, host: str, port: int, source: SnapshotSource) -> None:
        super().__init__(loop, host, port)
        self.source = source

    def on_client(self, client: _Client) -> None:
        """Send the line at once (the agent protocol has no request)."""
        self.source(False, lambda data: client.reply(agent_reply(data)))


def _response(status: int, content_type: str, body: bytes, *, head_only: bool = False) -> bytes:
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + (b"" if head_only else body)
