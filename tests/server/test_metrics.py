"""Metrics, health and the access log, scraped after known sequences of requests."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from poolserver.server import Server
from poolserver.testing import serving

from .apps import BlockingApp, get


def admin_get(server: Server, path: str) -> tuple[int, str]:
    assert server.admin is not None
    client = http.client.HTTPConnection(*server.admin.address, timeout=5)
    try:
        client.request("GET", path)
        response = client.getresponse()
        return response.status, response.read().decode()
    finally:
        client.close()


def scrape(server: Server) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = admin_get(server, "/metrics")
    assert status == 200
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


class WorkApp:
    """`/work?ms=N` takes N ms (its own work); `/missing` is 404; `/boom` raises."""

    def __init__(self) -> None:
        self.working = threading.Event()  # set when a /work request has begun

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        if path == "/boom":
            raise RuntimeError("boom")
        if path == "/missing":
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        if path == "/work":
            self.working.set()
            time.sleep(int(environ["QUERY_STRING"].split("=")[1]) / 1000)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]


def request(server: Server, path: str) -> int:
    client = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        client.request("GET", path)
        response = client.getresponse()
        response.read()
        return response.status
    finally:
        client.close()


def raw(server: Server, data: bytes) -> bytes:
    with socket.create_connection(server.address, timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
        return answer


def test_exact_counts_after_a_known_sequence() -> None:
    with serving(WorkApp(), admin_port=0) as server:
        for _ in range(5):
            assert request(server, "/") == 200
        assert request(server, "/missing") == 404
        assert request(server, "/boom") == 500
        assert raw(server, b"GET / HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert raw(server, b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n").startswith(
            b"HTTP/1.1 400"
        )
        assert raw(server, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 505")
        samples = scrape(server)
    assert value(samples, "poolserver_requests_total", status_class="2xx") == 5
    assert value(samples, "poolserver_requests_total", status_class="4xx") == 1
    assert value(samples, "poolserver_requests_total", status_class="5xx") == 1
    assert value(samples, "poolserver_bad_requests_total", status="400") == 2
    assert value(samples, "poolserver_bad_requests_total", status="505") == 1
    assert value(samples, "poolserver_refusals_total", reason="queue_full") == 0
    assert value(samples, "poolserver_service_seconds_count") == 7
    assert value(samples, "poolserver_queue_wait_seconds_count") == 7
    assert value(samples, "poolserver_request_duration_seconds_count") == 7
    assert value(samples, "poolserver_workers") == 16
    assert value(samples, "poolserver_capacity") == 16 + 64


def test_queue_wait_and_service_time_land_in_their_own_buckets() -> None:
    app = WorkApp()
    with serving(app, admin_port=0, workers=1) as server:
        results: list[Any] = []
        first = get(server.address, "/work?ms=120", results)
        assert app.working.wait(5)
        # The second request arrives while the only worker is busy: it waits, then is quick.
        waiter = get(server.address, "/", results)
        first.join(10)
        waiter.join(10)
        samples = scrape(server)
    service = "poolserver_service_seconds_bucket"
    wait = "poolserver_queue_wait_seconds_bucket"
    # Service: one request under 50 ms, one between 100 and 250 ms.
    assert value(samples, service, le="0.05") == 1
    assert value(samples, service, le="0.1") == 1
    assert value(samples, service, le="0.25") == 2
    # Queue wait: one did not wait, one waited a good part of the first's 120 ms.
    assert value(samples, wait, le="0.01") == 1
    assert value(samples, wait, le="0.25") == 2
    assert value(samples, "poolserver_queue_wait_seconds_sum") > 0.02


def test_refusals_are_counted_by_reason() -> None:
    app = BlockingApp()
    with serving(app, admin_port=0, workers=1, queue_size=0, overload_policy="reject") as server:
        holder = get(server.address)
        assert app.entered.wait(5)
        assert request(server, "/") == 503
        app.release.set()
        holder.join(10)
        samples = scrape(server)
    assert value(samples, "poolserver_refusals_total", reason="queue_full") == 1
    assert value(samples, "poolserver_refusals_total", reason="queue_age") == 0


def test_a_client_that_leaves_while_the_pool_is_full_is_not_counted_as_refused() -> None:
    # An idle keep-alive connection that its client closes becomes readable and is posted
    # like one with a request; with the pool full it is discarded: closed, not refused.
    options = {"admin_port": 0, "workers": 2, "queue_size": 0, "overload_policy": "reject"}
    with serving(WorkApp(), **options) as server:
        leaving = http.client.HTTPConnection(*server.address, timeout=10)
        staying = http.client.HTTPConnection(*server.address, timeout=10)
        release = threading.Event()
        try:
            for client in (leaving, staying):  # both served once, then idle
                client.request("GET", "/")
                response = client.getresponse()
                response.read()
                assert response.status == 200
            for _ in range(2):  # both workers taken: `submit` waits for room, never refused
                server.pool.submit(release.wait, 10, timeout=5)
            leaving.close()
            # The poller hands readable connections over in the order they became readable:
            # by the time this request is refused, the departed one has been dealt with.
            staying.request("GET", "/")
            assert staying.getresponse().status == 503
            samples = scrape(server)
        finally:
            release.set()
            staying.close()
    assert value(samples, "poolserver_refusals_total", reason="queue_full") == 1


def test_requests_that_do_not_arrive_in_time_are_counted() -> None:
    with serving(WorkApp(), admin_port=0, header_timeout=0.2) as server:
        assert raw(server, b"GET / HTTP/1.1\r\nHost: x\r\n").startswith(b"HTTP/1.1 408")
        samples = scrape(server)
    assert value(samples, "poolserver_timeouts_total") == 1


class Hold:
    """A pool job that blocks until released: fills the pool deterministically."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def run(self) -> None:
        self.release.wait(10)

    def discard(self, reason: object) -> None:
        pass


def test_readiness_follows_saturation_and_recovers() -> None:
    options = {"admin_port": 0, "workers": 1, "queue_size": 4, "ready_queue_high": 0.5}
    with serving(BlockingApp(), **options) as server:
        assert admin_get(server, "/readyz") == (200, "ready\n")
        release = threading.Event()
        for _ in range(4):  # one runs, three wait: over half of the queue
            server.pool.post(Hold(release))
        status, reason = admin_get(server, "/readyz")
        assert status == 503
        assert reason.startswith("queue: 3 waiting")
        assert value(scrape(server), "poolserver_ready") == 0
        release.set()
        assert request(server, "/fast") == 200  # queued behind the held jobs: they are done
        assert admin_get(server, "/readyz") == (200, "ready\n")


def test_readiness_is_503_while_draining() -> None:
    with serving(BlockingApp(), admin_port=0) as server:
        assert admin_get(server, "/readyz")[0] == 200
        server.stop_accepting()
        assert admin_get(server, "/readyz") == (503, "draining\n")
        assert admin_get(server, "/livez") == (200, "alive\n")


def test_probes_answer_at_once_when_every_worker_is_stuck() -> None:
    app = BlockingApp()
    with serving(app, admin_port=0, workers=2, queue_size=4) as server:
        threads = [get(server.address) for _ in range(6)]  # two stuck, four queued
        assert app.entered.wait(5)
        for path in ("/livez", "/readyz", "/metrics", "/status.json"):
            started = time.monotonic()
            status, _ = admin_get(server, path)
            assert status in (200, 503)
            assert time.monotonic() - started < 0.5, path
        assert server.pool.statistics().running == 2
        app.release.set()
        for thread in threads:
            thread.join(10)


def test_status_json_lists_requests_in_flight() -> None:
    app = BlockingApp()
    with serving(app, admin_port=0, workers=2) as server:
        thread = get(server.address, "/held")
        assert app.entered.wait(5)
        status, text = admin_get(server, "/status.json")
        data = json.loads(text)
        app.release.set()
        thread.join(10)
    assert status == 200
    assert [(r["method"], r["path"]) for r in data["inflight"]] == [("GET", "/held")]
    assert data["pool"]["running"] == 1
    worker = data["inflight"][0]["worker"]
    rows = {row["name"]: row["spans"] for row in data["timeline"]["workers"]}
    assert rows[worker][-1]["end"] is None


@pytest.mark.parametrize("fmt", ["common", "combined", "json"])
def test_access_log_lines_carry_queue_wait_and_service_time(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    options = {"access_log": True, "access_log_format": fmt, "access_log_file": str(path)}
    with serving(WorkApp(), **options) as server:
        client = http.client.HTTPConnection(*server.address, timeout=10)
        client.request("GET", "/missing?x=1", headers={"User-Agent": "probe/1", "Referer": "r"})
        client.getresponse().read()
        client.close()
    lines = path.read_text().splitlines()  # the server has closed: its writer has flushed
    assert len(lines) == 1
    line = lines[0]
    if fmt == "json":
        record = json.loads(line)
        assert (record["method"], record["path"], record["query"]) == ("GET", "/missing", "x=1")
        assert record["status"] == 404
        assert record["user_agent"] == "probe/1"
        assert record["queue_wait"] >= 0
        assert record["service"] >= 0
    else:
        assert '"GET /missing?x=1 HTTP/1.1" 404 -' in line
        assert "queue_wait=" in line
        assert "service=" in line
        assert ('"r" "probe/1"' in line) == (fmt == "combined")


def test_the_admin_listener_is_off_unless_asked_for() -> None:
    with serving(WorkApp()) as server:
        assert server.admin is None


def test_readiness_follows_the_recent_queue_wait() -> None:
    with serving(WorkApp(), admin_port=0, workers=1, ready_queue_wait=0.05) as server:
        later = time.monotonic() + 1000  # beyond any sample the poller takes meanwhile
        server.sampler.tick(later)
        results: list[Any] = []
        threads = [get(server.address, "/work?ms=80", results) for _ in range(3)]
        for thread in threads:
            thread.join(10)  # each waited behind the others: p95 queue wait well over 50 ms
        server.sampler.tick(later + 1.5)
        status, reason = admin_get(server, "/readyz")
        assert status == 503
        assert reason.startswith("queue wait: p95")
        server.sampler.tick(later + 20)  # ten quiet seconds later: recovered
        server.sampler.tick(later + 21)
        assert admin_get(server, "/readyz") == (200, "ready\n")
