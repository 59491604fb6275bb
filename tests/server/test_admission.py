"""Admission and shedding: the overload policy, queue age, Retry-After, departed clients."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from typing import Any

from poolserver.server._stats import Refusal
from poolserver.testing import serving

from .apps import BlockingApp, get


def refusals(server: object) -> dict[Refusal, int]:
    return server.stats.totals().refusals  # type: ignore[attr-defined, no-any-return]


def test_reject_policy_answers_503_at_once_when_the_pool_is_full() -> None:
    app = BlockingApp()
    with serving(app, workers=1, queue_size=0, overload_policy="reject") as server:
        holder = get(server.address)
        assert app.entered.wait(5)
        client = http.client.HTTPConnection(*server.address, timeout=10)
        started = time.monotonic()
        client.request("GET", "/")
        response = client.getresponse()
        assert response.status == 503
        assert time.monotonic() - started < 1.0  # no waiting under `reject`
        assert int(response.headers["Retry-After"]) >= 1
        assert refusals(server)[Refusal.QUEUE_FULL] == 1
        app.release.set()
        holder.join(10)
        client.close()
    assert app.calls == 1


def test_a_request_queued_past_max_queue_wait_is_answered_503_without_running() -> None:
    app = BlockingApp()
    with serving(app, workers=1, queue_size=4, max_queue_wait=0.2) as server:
        holder = get(server.address)
        assert app.entered.wait(5)
        results: list[Any] = []
        late = get(server.address, "/late", results)
        late.join(10)  # answered while the only worker is still blocked
        assert not app.release.is_set()
        status, headers, _ = results[0]
        assert status == 503
        assert int(headers["Retry-After"]) >= 1
        assert refusals(server)[Refusal.QUEUE_AGE] == 1
        app.release.set()
        holder.join(10)
    assert app.paths == ["/"]


def test_a_request_that_waited_too_long_is_refused_by_the_worker_that_takes_it() -> None:
    # A trusted proxy says the request waited upstream for 10 s: older than max_queue_wait.
    app = BlockingApp()
    options = {"request_start_header": True, "max_queue_wait": 1.0}
    with serving(app, **options) as server:
        client = http.client.HTTPConnection(*server.address, timeout=10)
        stamp = f"t={time.time() - 10:.3f}"
        client.request("GET", "/fast", headers={"X-Request-Start": stamp})
        response = client.getresponse()
        assert response.status == 503
        assert refusals(server)[Refusal.QUEUE_AGE] == 1
        client.close()
        fresh = http.client.HTTPConnection(*server.address, timeout=10)
        fresh.request("GET", "/fast", headers={"X-Request-Start": f"{time.time() * 1000:.0f}"})
        assert fresh.getresponse().status == 200
        fresh.close()
    assert app.paths == ["/fast"]


def test_x_request_start_from_an_untrusted_peer_is_ignored() -> None:
    app = BlockingApp()
    options = {
        "request_start_header": True,
        "max_queue_wait": 1.0,
        "forwarded_allow_ips": "10.0.0.0/8",
    }
    with serving(app, **options) as server:
        client = http.client.HTTPConnection(*server.address, timeout=10)
        client.request("GET", "/fast", headers={"X-Request-Start": f"t={time.time() - 10:.3f}"})
        assert client.getresponse().status == 200
        client.close()


def test_retry_after_is_the_backlog_over_recent_throughput() -> None:
    with serving(BlockingApp(), workers=4) as server:
        assert server.retry_after() == 5  # nothing measured yet: max_queue_wait
        server.sampler.rate.sample(0, now=100.0)
        server.sampler.rate.sample(2, now=101.0)  # 2 requests a second
        assert server.retry_after() == 2  # (0 queued + 4 workers) / 2 per second
        server.sampler.rate.sample(1002, now=102.0)
        assert server.retry_after() == 1  # never below one second


def test_a_client_that_leaves_while_queued_is_dropped_before_the_app_runs() -> None:
    app = BlockingApp()
    with serving(app, workers=1, queue_size=4) as server:
        holder = get(server.address, "/work")
        assert app.entered.wait(5)
        gone = socket.create_connection(server.address, timeout=5)
        gone.sendall(b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n")
        gone.close()  # leaves while its request waits for the busy worker
        # The busy request does 200 ms of work, so the departed one waits that long.
        threading.Timer(0.2, app.release.set).start()
        holder.join(10)
        results: list[Any] = []
        get(server.address, "/fast", results).join(10)
        assert results[0][0] == 200
        assert refusals(server)[Refusal.CLIENT_GONE] == 1
    assert app.paths == ["/work", "/fast"]
