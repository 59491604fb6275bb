"""Servers sharing one listener (as `--processes N` runs them): a server whose workers are all
taken, running or queued, leaves new connections to the others."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterable
from typing import Any

from poolserver.config import Config
from poolserver.server import Server

from ..pool.helpers import warm_up
from .apps import StartResponse
from .helpers import TIMEOUT


class Holding:
    """Counts the requests that reach it and holds each until `release` is set."""

    def __init__(self, arrived: threading.Semaphore, release: threading.Event) -> None:
        self.arrived = arrived
        self.release = release
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.calls += 1
        self.arrived.release()
        assert self.release.wait(TIMEOUT)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]


def test_a_burst_of_connections_is_shared_by_servers_on_one_listener() -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    port = listener.getsockname()[1]
    arrived, release = threading.Semaphore(0), threading.Event()
    apps = [Holding(arrived, release), Holding(arrived, release)]
    # A busy server waits up to a second before it takes a connection itself: far longer
    # than the idle one needs to take it.
    config = Config(host="127.0.0.1", port=0, workers=2, busy_accept_delay=1.0)
    servers = [Server(app, config) for app in apps]
    clients: list[socket.socket] = []
    try:
        # Idle workers: a new job is queued for one of them, not given to a new thread.
        for server in servers:
            warm_up(server.pool, 2)
        # A burst: four requests wait in the backlog when the servers begin to accept.
        for _ in range(4):
            client = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(client)
        servers[0].start(listener, shared=True)
        servers[1].start(listener.dup(), shared=True)
        for _ in range(4):
            assert arrived.acquire(timeout=TIMEOUT), "a request never reached an application"
        # Each server has two workers: had one taken three connections, its third request
        # would wait in its queue while the other server had a worker free.
        assert [app.calls for app in apps] == [2, 2]
        release.set()
        for client in clients:
            assert client.recv(100).startswith(b"HTTP/1.1 200 OK")
    finally:
        release.set()
        for client in clients:
            client.close()
        for server in servers:
            server.close()
        listener.close()
