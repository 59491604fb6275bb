"""HTTP/1.1 over real loopback sockets: framing, keep-alive, errors, timeouts, real frameworks.

Protocol edges are driven with raw bytes (`RawClient`), ordinary traffic with `http.client`.
Every wait is bounded by a socket timeout; nothing sleeps to wait for the server.
"""

from __future__ import annotations

import gc
import hashlib
import http.client
import io
import json
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs
from wsgiref.validate import validator

import pytest
from django.conf import settings  # type: ignore[import-untyped]
from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]
from django.http import HttpRequest, JsonResponse  # type: ignore[import-untyped]
from django.urls import path as url_path  # type: ignore[import-untyped]
from flask import Flask, jsonify, request

from poolserver.wsgi import StartResponse, WSGIApp

from .helpers import TIMEOUT, IncompleteResponse, RawClient, exchange, get_request, running

SECRET = "s3cr3t-detail-that-must-not-leak"
BLOCK = bytes(range(256)) * 256  # 64 KiB


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    """The test application: one behaviour per path."""
    path = environ["PATH_INFO"]
    info = [
        ("X-Method", environ["REQUEST_METHOD"]),
        ("X-Path", path),
        ("X-Remote-Port", environ["REMOTE_PORT"]),
        ("X-Protocol", environ["SERVER_PROTOCOL"]),
    ]
    if path == "/echo":
        stream = environ["wsgi.input"]
        body = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", str(len(body))),
            ("X-Content-Length", environ.get("CONTENT_LENGTH", "")),
            ("X-Sha256", hashlib.sha256(body).hexdigest()),
            ("X-Spooled", "no" if isinstance(stream, io.BytesIO) else "yes"),
        ]
        start_response("200 OK", headers + info)
        yield body
    elif path == "/stream":
        start_response("200 OK", [("Content-Type", "text/plain"), *info])
        yield b"one,"
        yield b"two,"
        yield b"three"
    elif path == "/fail-before":
        raise ValueError(SECRET)
    elif path == "/fail-after":
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        raise ValueError(SECRET)
    elif path == "/close":
        start_response("200 OK", [("Content-Length", "3"), ("Connection", "close")])
        yield b"bye"
    else:
        body = b"hello"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5"), *info])
        yield body


def assert_serves(address: tuple[str, int]) -> None:
    """A fresh connection gets a normal answer: the server is alive and well."""
    response = exchange(address, get_request("/"))
    assert response.status == 200
    assert response.body == b"hello"


def connection(address: tuple[str, int]) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(address[0], address[1], timeout=TIMEOUT)


# --------------------------------------------------------------------------- connections


def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    with running(app) as server, RawClient(server.address) as client:
        ports = set()
        for i in range(5):
            client.send(get_request(f"/n{i}"))
            response = client.read_response()
            assert response.status == 200
            assert response.header("X-Path") == f"/n{i}"
            assert not response.closes
            ports.add(response.header("X-Remote-Port"))
        assert len(ports) == 1  # one connection served all five


def test_keep_alive_with_http_client() -> None:
    with running(app) as server:
        conn = connection(server.address)
        try:
            ports = set()
            for method, path, body in [
                ("GET", "/a", None),
                ("POST", "/echo", b"payload"),
                ("GET", "/stream", None),
            ]:
                conn.request(method, path, body=body)
                response = conn.getresponse()
                data = response.read()
                assert response.status == 200
                ports.add(response.getheader("X-Remote-Port"))
                if path == "/echo":
                    assert data == b"payload"
                if path == "/stream":
                    assert data == b"one,two,three"
            assert len(ports) == 1
        finally:
            conn.close()


def test_http_1_0_closes_after_the_response() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(b"GET /x HTTP/1.0\r\n\r\n")
        response = client.read_response()
        assert response.version == "HTTP/1.1"
        assert response.status == 200
        assert response.header("X-Protocol") == "HTTP/1.0"
        assert response.closes
        assert client.closed_by_server()


def test_http_1_0_keep_alive_when_asked() -> None:
    with running(app) as server, RawClient(server.address) as client:
        for path in ("/a", "/b"):
            client.send(f"GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
            response = client.read_response()
            assert response.header("X-Path") == path
            assert response.header("Connection") == "keep-alive"
        client.send(b"GET /last HTTP/1.0\r\n\r\n")
        assert client.read_response().closes
        assert client.closed_by_server()


def test_http_1_1_connection_close_closes_after_the_response() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/", "Connection: close"))
        response = client.read_response()
        assert response.status == 200
        assert response.closes
        assert client.closed_by_server()


def test_app_connection_close_closes() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/close"))
        response = client.read_response()
        assert response.body == b"bye"
        assert response.header("Connection") == "close"
        assert client.closed_by_server()


class _HeldIterable:
    """A response body whose `close()` waits until the test lets it go (bounded)."""

    def __init__(self, body: bytes, release: threading.Event) -> None:
        self.body = body
        self.release = release

    def __iter__(self) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        self.release.wait(TIMEOUT)


class _HeldList(list[bytes]):
    """The same as a list: the body whose length the server works out itself."""

    def __init__(self, body: bytes, release: threading.Event) -> None:
        super().__init__([body])
        self.release = release

    def close(self) -> None:
        self.release.wait(TIMEOUT)


@pytest.mark.parametrize("body_type", [_HeldList, _HeldIterable], ids=["whole", "chunked"])
def test_a_closing_response_ends_the_stream_before_the_apps_close_returns(
    body_type: type[_HeldList | _HeldIterable],
) -> None:
    # The half-close leaves with the response's last bytes (in the same segment on Linux), so
    # a client knows at once that nothing follows, whatever the application's close() does.
    release = threading.Event()

    def held(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body_type(b"hello", release)

    with running(held) as server, RawClient(server.address, timeout=TIMEOUT / 2) as client:
        try:
            client.send(get_request("/", "Connection: close"))
            response = client.read_response()
            assert response.body == b"hello"
            assert response.chunked == (body_type is _HeldIterable)
            assert client.closed_by_server()  # before `release`: times out on a late FIN
            assert not release.is_set()
        finally:
            release.set()


def test_pipelined_requests_are_answered_in_order() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(
            get_request("/first")
            + b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsecond"
            + get_request("/third")
        )
        responses = [client.read_response() for _ in range(3)]
        assert [r.header("X-Path") for r in responses] == ["/first", "/echo", "/third"]
        assert responses[1].body == b"second"


def test_many_pipelined_requests() -> None:
    with running(app, workers=2) as server, RawClient(server.address) as client:
        client.send(b"".join(get_request(f"/p{i}") for i in range(50)))
        paths = [client.read_response().header("X-Path") for _ in range(50)]
        assert paths == [f"/p{i}" for i in range(50)]


# --------------------------------------------------------------------------- bodies and framing


def test_chunked_request_body_reaches_the_app() -> None:
    with running(app) as server:
        response = exchange(
            server.address,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"6;ext=1\r\nhello \r\n5\r\nworld\r\n0\r\nX-Trailer: x\r\n\r\n",
        )
        assert response.status == 200
        assert response.body == b"hello world"
        assert response.header("X-Content-Length") == "11"


def test_chunked_request_body_with_http_client() -> None:
    with running(app) as server:
        conn = connection(server.address)
        try:
            conn.request("POST", "/echo", body=iter([b"abc", b"def"]), encode_chunked=True)
            response = conn.getresponse()
            assert response.read() == b"abcdef"
        finally:
            conn.close()


def test_streamed_response_is_chunked() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/stream"))
        response = client.read_response()
        assert response.chunked
        assert response.header("Content-Length") is None
        assert response.chunks == [b"one,", b"two,", b"three"]
        assert not response.closes
        client.send(get_request("/after"))  # the framing left the connection usable
        assert client.read_response().header("X-Path") == "/after"


def test_streamed_response_to_http_1_0_is_close_delimited() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = client.read_response()
        assert not response.chunked
        assert response.closes
        assert response.body == b"one,two,three"
        assert client.eof


def test_head_has_no_body() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/", method="HEAD"))
        response = client.read_response(method="HEAD")
        assert response.status == 200
        assert response.header("Content-Length") == "5"
        # Had a body been sent, it would be read as the start of the next response.
        client.send(get_request("/next"))
        following = client.read_response()
        assert following.header("X-Path") == "/next"
        assert following.body == b"hello"


def test_date_and_server_headers() -> None:
    with running(app) as server:
        before = time.time()
        response = exchange(server.address, get_request("/"))
        after = time.time()
    assert response.header("Server") == "poolserver"
    date = response.header("Date")
    assert date is not None
    assert int(before) - 1 <= parsedate_to_datetime(date).timestamp() <= after + 1


def test_expect_100_continue() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"
        )
        interim = client.read_head()  # before any of the body was sent
        assert (interim.version, interim.status) == ("HTTP/1.1", 100)
        assert interim.headers == []
        client.send(b"hello world")
        response = client.read_response()
        assert response.status == 200
        assert response.body == b"hello world"


def test_expect_100_continue_with_http_client_style_body_in_pieces() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(
            b"PUT /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        assert client.read_head().status == 100
        client.send(b"3\r\nabc\r\n")
        client.send(b"3\r\ndef\r\n0\r\n\r\n")
        assert client.read_response().body == b"abcdef"


def test_expect_100_continue_with_a_body_too_large_gets_413_without_100() -> None:
    with running(app, max_body_size=1000) as server, RawClient(server.address) as client:
        client.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            b"Content-Length: 1001\r\n\r\n"
        )
        response = client.read_response()
        assert response.status == 413
        assert response.closes
        assert client.closed_by_server()


# --------------------------------------------------------------------------- bad input

WIRE_LIMITS: dict[str, Any] = {
    "max_request_line": 100,
    "max_header_size": 1024,
    "max_headers": 10,
    "max_body_size": 1000,
}
CHUNKED = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"


def head(*lines: bytes, first: bytes = b"GET / HTTP/1.1") -> bytes:
    return b"\r\n".join([first, *lines]) + b"\r\n\r\n"


BAD_INPUT = [
    pytest.param(b"GET / HTTP/1.1 x\r\nHost: t\r\n\r\n", 400, id="malformed-request-line"),
    pytest.param(b"GET HTTP/1.1\r\nHost: t\r\n\r\n", 400, id="request-line-without-target"),
    pytest.param(
        b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n",
        400,
        id="method-not-a-token",
    ),
    pytest.param(
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40),
        400,
        id="tls-handshake",
    ),
    pytest.param(head(b"Host: t", first=b"GET /" + b"a" * 200 + b" HTTP/1.1"), 414, id="414"),
    pytest.param(head(b"Host: t", b"X-Big: " + b"v" * 2000), 431, id="431-size"),
    pytest.param(head(b"Host: t", *(b"X-%d: v" % i for i in range(10))), 431, id="431-count"),
    pytest.param(
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413, id="413-length"
    ),
    pytest.param(
        CHUNKED + b"".join(b"200\r\n" + b"x" * 512 + b"\r\n" for _ in range(3)) + b"0\r\n\r\n",
        413,
        id="413-chunked",
    ),
    pytest.param(head(b"Host: t", b"Transfer-Encoding: gzip"), 501, id="te-gzip"),
    pytest.param(
        head(b"Host: t", b"Transfer-Encoding: gzip, chunked") + b"0\r\n\r\n",
        501,
        id="te-gzip-chunked",
    ),
    pytest.param(
        head(b"Host: t", b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked") + b"0\r\n\r\n",
        501,
        id="te-gzip-chunked-two-fields",
    ),
    pytest.param(
        head(b"Transfer-Encoding: chunked", first=b"POST / HTTP/1.0") + b"0\r\n\r\n",
        400,
        id="te-http-1.0",
    ),
    pytest.param(
        head(b"Host: t", b"Content-Length: 3", b"Transfer-Encoding: chunked") + b"0\r\n\r\n",
        400,
        id="content-length-and-te",
    ),
    pytest.param(
        head(b"Host: t", b"Content-Length: 3", b"Content-Length: 3") + b"abc",
        400,
        id="duplicate-content-length-same",
    ),
    pytest.param(
        head(b"Host: t", b"Content-Length: 3", b"Content-Length: 4") + b"abcd",
        400,
        id="duplicate-content-length-different",
    ),
    *(
        pytest.param(head(b"Host: t", b"Content-Length: " + v) + b"x", 400, id=f"cl-{name}")
        for name, v in [("minus", b"-1"), ("plus", b"+1"), ("list", b"1, 1"), ("word", b"one")]
    ),
    pytest.param(head(b"Host: t", b"X-A: a", b" folded"), 400, id="obs-fold"),
    pytest.param(b"GET / HTTP/1.1\nHost: t\r\n\r\n", 400, id="bare-lf-request-line"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n", 400, id="bare-lf-header"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: t\rX-A: b\r\n\r\n", 400, id="bare-cr"),
    pytest.param(head(b"Host: t", b"X-A: a\x00b"), 400, id="nul-in-value"),
    pytest.param(head(b"Host: t", b"X-A: a\x01b"), 400, id="ctl-in-value"),
    pytest.param(head(b"Host: t", b"X-A: a\x7fb"), 400, id="del-in-value"),
    pytest.param(head(b"Host: t", first=b"GET /a\x00b HTTP/1.1"), 400, id="nul-in-target"),
    pytest.param(head(), 400, id="missing-host"),
    pytest.param(head(b"Host: a", b"Host: b"), 400, id="two-hosts"),
    pytest.param(head(b"Host: t", first=b"GET / HTTP/2.0"), 505, id="http-2.0"),
    pytest.param(head(b"Host: t", first=b"GET / HTTP/0.9"), 505, id="http-0.9"),
    pytest.param(b"GET /\r\n\r\n", 505, id="http-0.9-simple-request"),
    pytest.param(
        head(b"Host: t", first=b"GET / RTSP/1.0"),
        505,
        id="not-http",
    ),
    pytest.param(head(b"Host: t", first=b"BREW / HTTP/1.1"), 501, id="unknown-method"),
    pytest.param(head(b"Host: t", b"Expect: teapot"), 417, id="expect-other"),
    pytest.param(head(b"Host: a:443", first=b"CONNECT a:443 HTTP/1.1"), 405, id="connect"),
    pytest.param(CHUNKED + b"3\r\nabcXY0\r\n\r\n", 400, id="chunk-data-without-crlf"),
    pytest.param(CHUNKED + b"3\nabc\r\n0\r\n\r\n", 400, id="chunk-size-bare-lf"),
]


@pytest.mark.parametrize(("data", "status"), BAD_INPUT)
def test_bad_input_is_answered_then_closed(data: bytes, status: int) -> None:
    with running(app, **WIRE_LIMITS) as server:
        with RawClient(server.address) as client:
            client.send(data)
            response = client.read_response()
            assert (response.version, response.status) == ("HTTP/1.1", status)
            assert response.closes
            assert response.body.startswith(b"%d " % status)
            assert client.closed_by_server()
        assert_serves(server.address)


def test_bad_request_after_a_good_one_on_the_same_connection() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/ok") + b"GET / HTTP/1.1\r\n\r\n")  # the second lacks Host
        first = client.read_response()
        assert first.header("X-Path") == "/ok"
        second = client.read_response()
        assert second.status == 400
        assert client.closed_by_server()


def test_bad_request_while_the_client_keeps_sending_still_gets_its_answer() -> None:
    # The server reads and drops what follows (a lingering close) so that the answer is not
    # destroyed by a reset.
    with running(app, max_body_size=1000) as server, RawClient(server.address) as client:
        client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n")
        client.send(b"x" * 200000)
        response = client.read_response()
        assert response.status == 413
        assert client.closed_by_server()


def test_request_with_connection_close_is_answered_even_with_bytes_after_it() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/a", "Connection: close") + get_request("/b"))
        response = client.read_response()
        assert response.status == 200
        assert response.header("X-Path") == "/a"
        assert client.closed_by_server()


def test_upgrade_request_body_reaches_the_app() -> None:
    # `curl --http2 -d abc http://...` sends this; a server that does not switch protocols
    # must answer it as the POST it is.
    with running(app) as server:
        response = exchange(
            server.address,
            b"POST /echo HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
            b"Content-Length: 3\r\n\r\nabc",
        )
        assert response.status == 200
        assert response.body == b"abc"


def test_upgrade_request_is_answered_and_the_connection_closed() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/ws", "Connection: Upgrade", "Upgrade: websocket") + b"\x81\x00")
        response = client.read_response()
        assert response.status == 200
        assert response.header("X-Path") == "/ws"
        assert response.closes
        assert client.closed_by_server()


# --------------------------------------------------------------------------- timeouts


def test_silent_client_is_closed_after_the_header_timeout_without_an_answer() -> None:
    with running(app, header_timeout=0.3) as server, RawClient(server.address) as client:
        started = time.monotonic()
        assert client.closed_by_server()  # no 408: no request had begun
        elapsed = time.monotonic() - started
        # TCP_DEFER_ACCEPT keeps a silent connection in the kernel about a second before the
        # server sees it; the header timeout runs from then.
        assert 0.3 <= elapsed < 0.3 + 2.5


def test_partial_head_gets_408_then_close() -> None:
    with running(app, header_timeout=0.3) as server, RawClient(server.address) as client:
        client.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n")
        started = time.monotonic()
        response = client.read_response()
        elapsed = time.monotonic() - started
        assert response.status == 408
        assert response.closes
        assert client.closed_by_server()
        assert 0.25 <= elapsed < 0.3 + 2.0
        assert_serves(server.address)


def test_header_timeout_bounds_the_whole_head_not_each_byte() -> None:
    # A client that trickles its head keeps sending, yet must still be cut off.
    with running(app, header_timeout=0.3) as server, RawClient(server.address) as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")
        started = time.monotonic()
        client.sock.settimeout(0.05)
        response_bytes = b""
        while time.monotonic() - started < 3 and not response_bytes:
            try:
                client.send(b"X-Drip: 1\r\n")
                response_bytes = client.sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        assert response_bytes.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 0.3 + 2.0


def test_idle_keep_alive_connection_is_closed_after_keepalive_timeout() -> None:
    with running(app, keepalive_timeout=0.3) as server, RawClient(server.address) as client:
        client.send(get_request("/"))
        assert client.read_response().status == 200
        started = time.monotonic()
        assert client.closed_by_server()
        elapsed = time.monotonic() - started
        assert 0.25 <= elapsed < 0.3 + 1.5


# --------------------------------------------------------------------------- application errors


def app_failures_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Error records that carry the application's exception (itself or as their cause)."""
    found = []
    for record in caplog.records:
        exc = record.exc_info[1] if record.exc_info else None
        chain = [exc, exc.__cause__, exc.__context__] if exc is not None else []
        if record.levelno >= logging.ERROR and any(
            isinstance(e, ValueError) and str(e) == SECRET for e in chain
        ):
            found.append(record)
    return found


def test_app_exception_before_start_response_gives_500_without_details(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="poolserver")
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/fail-before"))
        response = client.read_response()
        assert response.status == 500
        assert SECRET.encode() not in response.body
        assert b"Traceback" not in response.body
        assert b"ValueError" not in response.body
        if response.closes:
            assert client.closed_by_server()
        else:
            client.send(get_request("/again"))
            assert client.read_response().header("X-Path") == "/again"
        assert_serves(server.address)
    failures = app_failures_logged(caplog)
    assert len(failures) == 1
    assert SECRET in caplog.text


def test_app_exception_after_the_response_started_truncates_and_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="poolserver")
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/fail-after"))
        with pytest.raises(IncompleteResponse) as info:
            client.read_response()
        partial = info.value.partial
        assert partial is not None
        assert partial.status == 200
        assert partial.chunks == [b"partial"]  # no last chunk: the client knows it is cut
        assert client.eof
        assert_serves(server.address)
    assert len(app_failures_logged(caplog)) == 1
    assert SECRET in caplog.text


def test_app_exception_on_head_gives_500_without_a_body() -> None:
    with running(app) as server, RawClient(server.address) as client:
        client.send(get_request("/fail-before", method="HEAD"))
        response = client.read_response(method="HEAD")
        assert response.status == 500
        if response.closes:
            assert client.closed_by_server()
        else:
            # A body after the head would be read as the start of the next response.
            client.send(get_request("/next"))
            following = client.read_response()
            assert following.header("X-Path") == "/next"


def test_closing_the_server_while_a_worker_finishes_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="poolserver")
    responded = threading.Event()
    server_closed = threading.Event()

    class GatedBody:
        """The response's iterable; its close() (the app's last act) waits for the close."""

        def __iter__(self) -> Iterator[bytes]:
            yield b"done"

        def close(self) -> None:
            responded.set()
            server_closed.wait(TIMEOUT)

    def gated(environ: dict[str, Any], start_response: StartResponse) -> GatedBody:
        start_response("200 OK", [("Content-Length", "4")])
        return GatedBody()

    with running(gated) as server, RawClient(server.address) as client:
        # A request, and the start of another, which the worker will park the connection for.
        client.send(get_request("/first") + b"GET /second HTTP/1.1\r\n")
        assert client.read_response().body == b"done"
        assert responded.wait(TIMEOUT)
        server.close()
        server_closed.set()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_app_errors_do_not_stop_the_server() -> None:
    with running(app, workers=2) as server:
        for _ in range(10):
            assert exchange(server.address, get_request("/fail-before")).status == 500
        assert_serves(server.address)


# --------------------------------------------------------------------------- large transfers


def test_large_response_to_a_slow_reader_arrives_whole() -> None:
    blocks = 128  # 8 MiB
    ahead = threading.Event()

    def big(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", str(blocks * len(BLOCK)))])
        for i in range(blocks):
            if i == 8:
                ahead.set()  # 512 KiB handed to the server while the client reads nothing
            yield BLOCK

    with running(big) as server, RawClient(server.address, rcvbuf=16384) as client:
        client.send(get_request("/big"))
        assert ahead.wait(TIMEOUT)
        response = client.read_head()
        assert response.header("Content-Length") == str(blocks * len(BLOCK))
        digest = hashlib.sha256()
        received = 0
        while received < blocks * len(BLOCK):
            piece = client.read_exact(min(4096, blocks * len(BLOCK) - received))
            digest.update(piece)
            received += len(piece)
        assert digest.digest() == hashlib.sha256(BLOCK * blocks).digest()
        client.send(get_request("/"))  # and the connection is still in step
        assert client.read_response().status == 200


def test_large_streamed_response_arrives_whole() -> None:
    def big(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        for _ in range(64):
            yield BLOCK

    with running(big) as server:
        conn = connection(server.address)
        try:
            conn.request("GET", "/")
            data = conn.getresponse().read()
        finally:
            conn.close()
    assert data == BLOCK * 64


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_large_request_body_is_spooled_and_arrives_whole(chunked: bool) -> None:
    body = BLOCK * 80  # 5 MiB
    with running(app, body_spool_threshold=64 * 1024) as server:
        conn = connection(server.address)
        try:
            if chunked:
                pieces = (body[i : i + 100_000] for i in range(0, len(body), 100_000))
                conn.request("POST", "/echo", body=pieces, encode_chunked=True)
            else:
                conn.request("POST", "/echo", body=body)
            response = conn.getresponse()
            data = response.read()
        finally:
            conn.close()
    assert response.status == 200
    assert response.getheader("X-Content-Length") == str(len(body))
    assert response.getheader("X-Sha256") == hashlib.sha256(body).hexdigest()
    assert response.getheader("X-Spooled") == "yes"
    assert data == body


def open_temp_files() -> int:
    """Temporary files this process holds open (unlinked files, as TemporaryFile makes)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}").endswith(" (deleted)"):
                count += 1
        except OSError:
            pass  # closed meanwhile
    return count


def temp_files_left_by_an_unfinished_upload(ending: str) -> int:
    """How many temp files stay open once the server is done with an unfinished upload.

    The cyclic GC is off meanwhile: only explicit closes and reference counting free things,
    which is all a server can count on to release a file descriptor promptly.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        with running(app, body_spool_threshold=1000, max_body_size=3000) as server:
            before = open_temp_files()
            with RawClient(server.address) as client:
                if ending == "client-leaves":
                    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2500\r\n\r\n"
                    client.send(head + b"x" * 2000)  # spooled: above the threshold
                    client.sock.shutdown(socket.SHUT_WR)
                    # The server closes the connection when it sees the client gone.
                    assert client.closed_by_server()
                    return open_temp_files() - before
                chunks = b"".join(b"400\r\n" + b"x" * 1024 + b"\r\n" for _ in range(3))
                client.send(CHUNKED + chunks)
                assert client.read_response().status == 413
                client.sock.shutdown(socket.SHUT_WR)
                # Only half-closed by the server so far (it lingers to read the rest): its own
                # close comes later, at the latest when the server closes.
                assert client.closed_by_server()
        return open_temp_files() - before
    finally:
        if enabled:
            gc.enable()


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
@pytest.mark.parametrize("ending", ["client-leaves", "413-chunked"])
def test_an_unfinished_upload_releases_its_temp_file(ending: str) -> None:
    left_open = temp_files_left_by_an_unfinished_upload(ending)
    # Free what was leaked now, quietly, so that no later test is blamed for its warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
    assert left_open == 0


# --------------------------------------------------------------------------- frameworks


def flask_app() -> WSGIApp:
    flask = Flask("poolserver-test")

    @flask.post("/items")
    def create_item() -> Any:
        payload = request.get_json()
        return jsonify(received=payload, length=request.content_length), 201

    @flask.get("/search")
    def search() -> Any:
        return jsonify(q=request.args.get("q"), tags=request.args.getlist("tag"))

    wsgi: WSGIApp = flask.wsgi_app
    return wsgi


def test_flask_app_end_to_end() -> None:
    with running(flask_app()) as server:
        conn = connection(server.address)
        try:
            payload = {"name": "caf\u00e9", "n": [1, 2, 3]}
            conn.request(
                "POST",
                "/items",
                body=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            assert response.status == 201
            assert response.getheader("Content-Type") == "application/json"
            created = json.loads(response.read())
            assert created["received"] == payload

            conn.request("GET", "/search?q=caf%C3%A9+au+lait&tag=a&tag=b")
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read()) == {"q": "caf\u00e9 au lait", "tags": ["a", "b"]}

            conn.request("GET", "/nowhere")
            response = conn.getresponse()
            assert response.status == 404
            response.read()
        finally:
            conn.close()


def django_items(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    return JsonResponse({"received": json.loads(request.body)}, status=201)


def django_search(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"q": request.GET.get("q"), "tags": request.GET.getlist("tag")})


# This module is the Django URLconf of `django_app` (ROOT_URLCONF = __name__).
urlpatterns = [url_path("items", django_items), url_path("search", django_search)]


def django_app() -> WSGIApp:
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="poolserver-tests-only",
            ALLOWED_HOSTS=["127.0.0.1", "localhost"],
            ROOT_URLCONF=__name__,
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            DATABASES={},
            USE_TZ=True,
        )
    wsgi: WSGIApp = get_wsgi_application()
    return wsgi


def test_django_app_end_to_end() -> None:
    with running(django_app()) as server:
        conn = connection(server.address)
        try:
            payload = {"name": "caf\u00e9", "n": [1, 2, 3]}
            conn.request(
                "POST",
                "/items",
                body=json.dumps(payload).encode(),
                headers={"Content-Type": "application/json"},
            )
            response = conn.getresponse()
            assert response.status == 201
            assert response.getheader("Content-Type") == "application/json"
            assert json.loads(response.read()) == {"received": payload}

            conn.request("GET", "/search?q=caf%C3%A9+au+lait&tag=a&tag=b")
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read()) == {"q": "caf\u00e9 au lait", "tags": ["a", "b"]}

            conn.request("GET", "/nowhere")
            response = conn.getresponse()
            assert response.status == 404
            response.read()
        finally:
            conn.close()


# --------------------------------------------------------------------------- PEP 3333 validator


def validated_app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    stream = environ["wsgi.input"]
    body = stream.read(int(environ.get("CONTENT_LENGTH") or 0))
    query = parse_qs(environ["QUERY_STRING"])
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    if "write" in query:
        write(b"written;")
    yield environ["PATH_INFO"].encode("latin-1") + b";"
    yield body


def test_validator_wrapped_app_over_the_wire() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with running(validator(validated_app)) as server, RawClient(server.address) as client:
            client.send(get_request("/a%20b?x=1"))
            response = client.read_response()
            assert response.status == 200, response.body
            assert response.body == b"/a b;"

            client.send(b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nbody")
            response = client.read_response()
            assert response.status == 200, response.body
            assert response.body == b"/p;body"

            client.send(
                b"POST /c?write=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nhi\r\n0\r\n\r\n"
            )
            response = client.read_response()
            assert response.status == 200, response.body
            assert response.body == b"written;/c;hi"

            client.send(get_request("/h", method="HEAD"))
            response = client.read_response(method="HEAD")
            assert response.status == 200
