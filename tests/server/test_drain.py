"""The phased graceful drain, and the close of idle connections: nothing that arrived is reset,
and the drain's report says what happened."""

from __future__ import annotations

import http.client
import select
import socket
import threading
from typing import Any

from poolserver.server import Server, ShutdownReport
from poolserver.testing import serving

from ..waiting import wait_for
from .apps import BlockingApp, get


def shut_down_in_background(server: Server, timeout: float) -> tuple[threading.Thread, list[Any]]:
    """Begin the drain here (the listener is closed on return), finish it in a thread."""
    server.stop_accepting()
    reports: list[ShutdownReport] = []
    thread = threading.Thread(target=lambda: reports.append(server.shutdown(timeout)))
    thread.start()
    return thread, reports


def test_a_request_on_an_idle_connection_during_the_grace_is_answered_with_close() -> None:
    app = BlockingApp()
    with serving(app, drain_grace=5) as server:
        client = http.client.HTTPConnection(*server.address, timeout=10)
        client.request("GET", "/fast")
        assert client.getresponse().read() == b"ok"  # now idle, keep-alive
        # Booked after its response is sent: the drain's report must not count it.
        wait_for("the first request to be booked", lambda: server.stats.totals().served == 1, 5)
        busy = get(server.address, "/busy")  # keeps the drain in its grace period
        assert app.entered.wait(5)
        drainer, reports = shut_down_in_background(server, timeout=10)
        # New connections are refused once the drain began...
        with socket.socket() as probe:
            probe.settimeout(5)
            refused = probe.connect_ex(server.address)
        # ...but the idle connection is still there, and its next request is answered.
        client.request("GET", "/fast")
        response = client.getresponse()
        assert response.status == 200
        assert response.read() == b"ok"
        assert response.headers["Connection"] == "close"
        app.release.set()
        busy.join(10)
        drainer.join(15)
        assert refused != 0
        report = reports[0]
        assert report.clean
        assert report.served == 2
        client.close()


def test_connections_idle_through_the_grace_are_closed_and_the_drain_ends_early() -> None:
    with serving(BlockingApp(), drain_grace=0.2, keepalive_timeout=60) as server:
        client = socket.create_connection(server.address, timeout=10)
        client.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200 OK")
        drainer, reports = shut_down_in_background(server, timeout=30)
        assert client.recv(4096) == b""  # closed after the grace, not after 60 s
        drainer.join(10)
        assert not drainer.is_alive()
        assert reports[0].clean
        client.close()


def send_unseen(server: Server, client: socket.socket, request: bytes) -> None:
    """Send `request` on the server's only connection, idle and parked, so that it arrives
    but the poller never sees it come: its epoll interest in the connection is cleared first.
    That is the race of a request that comes just as the poller decides to close."""
    (conn,) = server._connections.values()

    def parked_then_disarmed() -> bool:
        # Parking is the last act of a worker's job (no job running: it is done) or of the
        # acceptor's admission, whose first registration with epoll comes after the
        # connection is in `_parked`: until then, `modify` finds nothing to modify.
        if server.poller._parked.get(conn.fd) is not conn or server.pool.statistics().running:
            return False
        try:
            server.poller._epoll.modify(conn.fd, 0)
        except FileNotFoundError:
            return False
        return True

    wait_for(
        "the connection to be parked, then its epoll interest cleared", parked_then_disarmed, 5
    )
    client.sendall(request)
    waiting = select.poll()
    waiting.register(conn.fd, select.POLLIN)
    wait_for("the request to reach the server's socket", lambda: bool(waiting.poll(0)), 5)


def read_to_close(client: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    answer = b""
    while chunk := client.recv(4096):
        answer += chunk
    return answer


def test_a_request_that_came_unread_as_the_grace_ends_is_answered_not_reset() -> None:
    with serving(BlockingApp(), drain_grace=0, keepalive_timeout=60) as server:
        client = socket.create_connection(server.address, timeout=10)
        client.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200 OK")
        send_unseen(server, client, b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        drainer, reports = shut_down_in_background(server, timeout=10)
        answer = read_to_close(client)
        drainer.join(15)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nConnection: close\r\n" in answer
        assert answer.endswith(b"ok")
        assert reports[0].clean
        assert reports[0].served == 1
        client.close()


def test_unread_bytes_that_hold_no_request_do_not_keep_the_drain_waiting() -> None:
    with serving(BlockingApp(), proxy_protocol=True, drain_grace=0, header_timeout=60) as server:
        client = socket.create_connection(server.address, timeout=10)
        wait_for("the connection to be accepted", lambda: server.connection_count == 1, 5)
        send_unseen(server, client, b"PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\n")
        drainer, reports = shut_down_in_background(server, timeout=30)
        assert read_to_close(client) == b""
        drainer.join(10)
        assert not drainer.is_alive()  # not held to the header timeout, nor to the deadline
        assert reports[0].clean
        client.close()


def test_a_request_that_came_unread_as_the_keepalive_timeout_ends_is_answered() -> None:
    with serving(BlockingApp(), keepalive_timeout=1.0) as server:
        client = socket.create_connection(server.address, timeout=10)
        client.sendall(b"GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(4096).startswith(b"HTTP/1.1 200 OK")
        # Sent within the timeout: the connection is not idle, whatever the poller saw.
        send_unseen(server, client, b"GET /fast HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_to_close(client)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"ok")
        client.close()


def test_at_the_deadline_queued_requests_get_503_and_running_ones_are_cut() -> None:
    app = BlockingApp()
    with serving(app, workers=1, queue_size=4, drain_grace=0) as server:
        running: list[Any] = []
        holder = get(server.address, "/running", running)
        assert app.entered.wait(5)
        queued = socket.create_connection(server.address, timeout=10)
        queued.sendall(b"GET /queued HTTP/1.1\r\nHost: x\r\n\r\n")
        # Established before the drain begins: accepted from the backlog if need be, queued.
        drainer, reports = shut_down_in_background(server, timeout=0.5)
        answer = b""
        while chunk := queued.recv(4096):
            answer += chunk
        drainer.join(10)
        app.release.set()
        holder.join(10)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")  # not a reset
        assert running[0][0] == 0  # cut: the request outlived the drain
        report = reports[0]
        assert (report.served, report.refused, report.cut) == (0, 1, 1)
        assert not report.clean
        queued.close()
    assert app.paths == ["/running"]
