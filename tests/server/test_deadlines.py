"""Per-request deadlines, the cancel token, and the watchdog for slow and stuck requests."""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pytest

import poolserver
from poolserver.testing import serving

from .apps import BlockingApp, StreamingApp, get


def test_the_app_sees_its_deadline_and_a_cancel_token() -> None:
    app = BlockingApp()
    with serving(app, request_timeout=30) as server:
        get(server.address, "/fast").join(10)
    remaining = app.remaining[0]
    assert remaining is not None
    assert 29 < remaining <= 30
    token = app.tokens[0]
    assert token.deadline is not None
    assert not token.cancelled


def test_a_client_may_shorten_its_deadline_never_lengthen_it() -> None:
    app = BlockingApp()
    with serving(app, request_timeout=30, client_timeout_header=True) as server:
        for header in ("2.5", "300", "nonsense"):
            client = http.client.HTTPConnection(*server.address, timeout=10)
            client.request("GET", "/fast", headers={"Request-Timeout": header})
            assert client.getresponse().status == 200
            client.close()
    shortened, not_lengthened, ignored = app.remaining
    assert shortened is not None
    assert 2 < shortened <= 2.5
    assert not_lengthened is not None
    assert 29 < not_lengthened <= 30
    assert ignored is not None
    assert 29 < ignored <= 30


def test_the_request_timeout_header_is_ignored_unless_enabled() -> None:
    app = BlockingApp()
    with serving(app, request_timeout=30) as server:
        client = http.client.HTTPConnection(*server.address, timeout=10)
        client.request("GET", "/fast", headers={"Request-Timeout": "1"})
        assert client.getresponse().status == 200
        client.close()
    assert app.remaining[0] is not None
    assert app.remaining[0] > 29


def test_remaining_outside_poolserver_is_none() -> None:
    assert poolserver.remaining({}) is None


def test_a_slow_request_is_logged_once_with_its_stack(caplog: pytest.LogCaptureFixture) -> None:
    app = BlockingApp()
    caplog.set_level(logging.WARNING, logger="poolserver")
    with serving(app, slow_request_timeout=0.1) as server:
        thread = get(server.address, "/slowly")
        assert app.entered.wait(5)
        # Released once the watchdog has spoken: the log record is the event waited for.
        logged = threading.Event()

        class Signal(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if "slow request" in record.getMessage():
                    logged.set()

        handler = Signal()
        logging.getLogger("poolserver").addHandler(handler)
        try:
            assert logged.wait(5)
        finally:
            logging.getLogger("poolserver").removeHandler(handler)
        app.release.set()
        thread.join(10)
        assert server.stats.totals().slow == 1
    slow = [r for r in caplog.records if "slow request" in r.getMessage()]
    assert len(slow) == 1
    message = slow[0].getMessage()
    assert "GET /slowly" in message
    assert "in __call__" in message  # the stack of the thread, down to the app's frame


class StuckApp:
    """`/stuck` blocks until `release` whatever happens; anything else answers at once."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()
        self.cancelled_seen: list[bool] = []

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/stuck":
            self.entered.set()
            self.release.wait(10)  # ignores its cancel token: a truly stuck handler
            self.cancelled_seen.append(environ[poolserver.CANCEL_KEY].cancelled)
            self.returned.set()
            start_response("200 OK", [("Content-Length", "5")])
            return [b"late!"]
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]


def test_a_stuck_request_gets_504_and_its_worker_is_replaced() -> None:
    app = StuckApp()
    with serving(app, workers=1, request_timeout=0.3) as server:
        client = http.client.HTTPConnection(*server.address, timeout=10)
        started = time.monotonic()
        client.request("GET", "/stuck")
        response = client.getresponse()
        assert response.status == 504
        assert 0.25 < time.monotonic() - started < 3
        assert app.entered.is_set()
        assert not app.returned.is_set()
        # Capacity is kept: the only worker is stuck, yet another request is served.
        results: list[Any] = []
        get(server.address, "/other", results).join(10)
        assert results[0][0] == 200
        stats = server.pool.statistics()
        assert (stats.stuck, stats.abandoned) == (1, 1)
        assert server.stats.totals().stuck == 1
        app.release.set()  # it returns at last: its answer is discarded
        assert app.returned.wait(5)
        client.close()
    assert app.cancelled_seen == [True]


def test_a_request_that_started_its_response_is_cut_at_its_deadline() -> None:
    app = StreamingApp()
    with serving(app, workers=1, request_timeout=0.3) as server:
        sock = socket.create_connection(server.address, timeout=10)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
        assert received.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"first " in received
        assert not received.endswith(b"0\r\n\r\n")  # the body never finished: it was cut
        app.release.set()
        sock.close()


def test_stuck_workers_beyond_the_bound_are_not_replaced() -> None:
    app = StuckApp()
    with serving(app, workers=1, request_timeout=0.3, max_stuck_workers=0) as server:
        client = http.client.HTTPConnection(*server.address, timeout=10)
        client.request("GET", "/stuck")
        assert client.getresponse().status == 504
        assert server.pool.statistics().abandoned == 0
        app.release.set()
        assert app.returned.wait(5)
        client.close()
        # Once the stuck thread returns, the worker serves again.
        results: list[Any] = []
        get(server.address, "/other", results).join(10)
        assert results[0][0] == 200
