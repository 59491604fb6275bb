"""A full pool: requests wait unread for a bounded time, then get 503 with Retry-After.

The refusal costs no worker: it is sent while every worker is still blocked.
"""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterable
from typing import Any

from poolserver.server._stats import Refusal
from poolserver.testing import serving


class BlockingApp:
    """Blocks each request on `release`, after signalling `entered`."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        self.calls += 1
        self.entered.set()
        assert self.release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


def get(address: tuple[str, int], results: list[http.client.HTTPResponse]) -> threading.Thread:
    def run() -> None:
        client = http.client.HTTPConnection(*address, timeout=10)
        client.request("GET", "/")
        response = client.getresponse()
        response.read()
        results.append(response)
        client.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_request_that_finds_no_room_in_time_gets_503_with_retry_after() -> None:
    app = BlockingApp()
    with serving(app, workers=1, queue_size=0, queue_timeout=0.2) as server:
        first: list[http.client.HTTPResponse] = []
        holder = get(server.address, first)
        assert app.entered.wait(5)
        client = http.client.HTTPConnection(*server.address, timeout=10)
        client.request("GET", "/")
        refused = client.getresponse()
        body = refused.read()
        # Answered while the only worker is still blocked: the refusal used no worker.
        assert not app.release.is_set()
        assert refused.status == 503
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["Connection"] == "close"
        assert body == b"503 Service Unavailable\n"
        assert app.calls == 1
        assert server.stats.totals().refusals[Refusal.QUEUE_FULL] == 1
        app.release.set()
        holder.join(10)
        assert first[0].status == 200
        client.close()


def test_a_request_that_finds_room_within_queue_timeout_is_served_not_lost() -> None:
    app = BlockingApp()
    with serving(app, workers=1, queue_size=0, queue_timeout=10) as server:
        results: list[http.client.HTTPResponse] = []
        threads = [get(server.address, results)]
        assert app.entered.wait(5)
        threads += [get(server.address, results) for _ in range(3)]
        app.release.set()
        for thread in threads:
            thread.join(10)
        assert [r.status for r in results] == [200, 200, 200, 200]
        assert sum(server.stats.totals().refusals.values()) == 0
