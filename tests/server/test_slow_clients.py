"""Slow and idle clients hold no worker: a normal client is still answered promptly."""

from __future__ import annotations

import _socket
import contextlib
import gc
import http.client
import resource
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from poolserver.demo import app
from poolserver.server import Server
from poolserver.server._connection import HIGH_WATER
from poolserver.testing import serving
from poolserver.wsgi import StartResponse

from ..waiting import wait_for

SLOW_REQUEST = b"GET / HTTP/1.1\r\nHost: slow\r\nX-Padding: " + b"a" * 64 + b"\r\n\r\n"


def need_descriptors(count: int) -> None:
    """Raise the soft limit on open files if this test needs more; skip if it cannot."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= count:
        return
    if hard != resource.RLIM_INFINITY and hard < count:
        pytest.skip(f"needs {count} open files, the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


@contextlib.contextmanager
def trickling(address: tuple[str, int], count: int) -> Iterator[list[socket.socket]]:
    """`count` connections that each send one byte of a request per second, while inside."""
    sockets = [socket.create_connection(address, timeout=5) for _ in range(count)]
    stop = threading.Event()

    def trickle() -> None:
        for position in range(len(SLOW_REQUEST) - 4):  # never completes the head
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.send(SLOW_REQUEST[position : position + 1])
            if stop.wait(1.0):  # one byte per second per connection
                return

    thread = threading.Thread(target=trickle)
    thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        thread.join(10)
        for sock in sockets:
            sock.close()


def keepalive_get(client: http.client.HTTPConnection) -> None:
    """One GET of the demo app's `/` on an open keep-alive connection."""
    client.request("GET", "/")
    assert client.getresponse().read() == b"Hello world !\n"


def timed_requests(address: tuple[str, int], count: int) -> list[float]:
    """Latencies of `count` sequential GETs on one keep-alive connection."""
    client = http.client.HTTPConnection(*address, timeout=5)
    latencies = []
    try:
        for _ in range(count):
            started = time.monotonic()
            client.request("GET", "/")
            response = client.getresponse()
            assert response.status == 200
            assert response.read() == b"Hello world !\n"
            latencies.append(time.monotonic() - started)
    finally:
        client.close()
    return latencies


@pytest.mark.timeout(60)
def test_200_clients_sending_one_byte_per_second_do_not_stall_a_normal_client() -> None:
    need_descriptors(1024)
    with serving(app, workers=4) as server, trickling(server.address, 200) as slow:
        # Three seconds of trickling: every slow connection is mid-request and parked.
        deadline = time.monotonic() + 3
        latencies: list[float] = []
        while time.monotonic() < deadline:
            latencies += timed_requests(server.address, 20)
        assert server.connection_count >= 200, "the slow clients must all be connected"
        still_open = sum(1 for s in slow if s.fileno() >= 0)
        assert still_open == 200
    assert len(latencies) >= 100
    assert max(latencies) < 0.5, f"slowest normal request took {max(latencies):.3f} s"


@pytest.mark.timeout(60)
def test_1000_idle_keepalive_connections_do_not_stall_a_normal_client() -> None:
    need_descriptors(2400)
    with serving(app, workers=4, keepalive_timeout=30) as server:
        idle = []
        try:
            for _ in range(1000):
                client = http.client.HTTPConnection(*server.address, timeout=5)
                client.request("GET", "/")
                assert client.getresponse().read() == b"Hello world !\n"
                idle.append(client)  # kept open: idle keep-alive, parked in the poller
            assert server.connection_count >= 1000
            latencies = timed_requests(server.address, 200)
        finally:
            for client in idle:
                client.close()
    assert max(latencies) < 0.5, f"slowest normal request took {max(latencies):.3f} s"
    assert sorted(latencies)[len(latencies) // 2] < 0.05


@pytest.mark.timeout(60)
def test_keepalive_requests_leave_nothing_for_the_garbage_collector_to_walk() -> None:
    # Between two requests a keep-alive connection is parked until its keep-alive deadline;
    # what the poller keeps for that deadline lives for keepalive_timeout. Were it to refer to
    # the connection, the cyclic collector would track one more object per request for that
    # long, and each full collection would walk them all: at 30,000 requests/s and the default
    # 5 s, ~150,000 objects and a pause of ~90 ms, every few seconds.
    requests = 3000
    with serving(app, keepalive_timeout=60) as server:
        client = http.client.HTTPConnection(*server.address, timeout=5)
        try:
            keepalive_get(client)  # the first request makes the connection's own objects
            gc.collect()
            before = len(gc.get_objects())
            for _ in range(requests):
                keepalive_get(client)
            gc.collect()
            grown = len(gc.get_objects()) - before
        finally:
            client.close()
    assert grown < requests // 4, f"{grown} more objects tracked after {requests} requests"


def big_response(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """A body below the worker's high-water mark: what the socket does not take at once, the
    worker hands to the poller to send (it does not wait for the client itself)."""
    body = b"x" * (HIGH_WATER * 3 // 4)
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.timeout(30)
def test_a_client_that_reads_nothing_is_dropped_after_write_timeout() -> None:
    # The other timeouts are long: the poller must still look at deadlines often enough for
    # this one (its sweep would otherwise come once a second).
    timeouts = {"write_timeout": 0.1, "header_timeout": 60.0, "keepalive_timeout": 60.0}
    with serving(big_response, **timeouts) as server:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            sock.connect(server.address)
            wait_for("the connection to be accepted", lambda: server.connection_count == 1, 5)
            (conn,) = server._connections.values()
            assert isinstance(conn.sock, _socket.socket)  # plain TCP here
            # A fixed send buffer: the kernel would otherwise grow it to take the whole body.
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            sent = time.monotonic()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # and never read
            wait_for("the connection to be dropped", lambda: server.connection_count == 0, 5)
            dropped_after = time.monotonic() - sent
        finally:
            sock.close()
    assert 0.1 <= dropped_after < 0.35, f"dropped after {dropped_after:.2f} s"


def test_a_slow_client_times_out_with_408_and_nothing_else_is_disturbed() -> None:
    with serving(app, header_timeout=0.3) as server:
        slow = socket.create_connection(server.address, timeout=5)
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # the head never completes
        assert timed_requests(server.address, 5)
        answer = b""
        while chunk := slow.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        slow.close()


def send_and_wait_until_read(sock: socket.socket, server: Server, piece: bytes) -> None:
    """Send `piece` of a head on the server's only connection; return once it was read (the
    connection was taken from the poller and parked again)."""
    (conn,) = server._connections.values()

    def parked() -> bool:
        return server.poller._parked.get(conn.fd) is conn

    wait_for("the connection to be parked", parked, 5)
    seq = conn.park_seq
    sock.sendall(piece)
    wait_for("the piece to be read", lambda: parked() and conn.park_seq > seq, 5)


def test_a_head_that_trickles_in_costs_the_pool_one_job_however_many_pieces() -> None:
    # The acceptor reads the first piece and the poller the others: the pool runs the
    # connection once, when the request is complete.
    pieces = [SLOW_REQUEST[i : i + 10] for i in range(0, len(SLOW_REQUEST), 10)]
    assert len(pieces) >= 8
    with serving(app, workers=2) as server:
        sock = socket.create_connection(server.address, timeout=5)
        sock.sendall(pieces[0])
        wait_for("the connection to be accepted", lambda: server.connection_count == 1, 5)
        for piece in pieces[1:-1]:
            send_and_wait_until_read(sock, server, piece)
        sock.sendall(pieces[-1])
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        wait_for("the request's job to be booked", lambda: server.pool.statistics().running == 0, 5)
        assert server.pool.statistics().completed == 1
        sock.close()


def test_the_next_request_on_a_keep_alive_connection_costs_one_job_however_it_arrives() -> None:
    # The poller reads what arrives on an idle keep-alive connection too: the next request
    # reaches the pool once, complete, however many pieces it came in.
    pieces = [SLOW_REQUEST[i : i + 10] for i in range(0, len(SLOW_REQUEST), 10)]
    with serving(app, workers=2) as server:
        sock = socket.create_connection(server.address, timeout=5)
        sock.sendall(SLOW_REQUEST)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
        wait_for("the first job to be booked", lambda: server.pool.statistics().running == 0, 5)
        assert server.pool.statistics().completed == 1
        for piece in pieces[:-1]:
            send_and_wait_until_read(sock, server, piece)
        sock.sendall(pieces[-1])
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 OK\r\n")
        wait_for("the second job to be booked", lambda: server.pool.statistics().running == 0, 5)
        assert server.pool.statistics().completed == 2
        sock.close()


def test_bad_bytes_in_a_trickling_head_are_answered_400_and_the_server_goes_on() -> None:
    with serving(app, workers=2) as server:
        sock = socket.create_connection(server.address, timeout=5)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        wait_for("the connection to be accepted", lambda: server.connection_count == 1, 5)
        send_and_wait_until_read(sock, server, b"Host: x\r\n")
        sock.sendall(b"No colon here\r\n\r\n")
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        sock.close()
        assert timed_requests(server.address, 3)
