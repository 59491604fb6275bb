"""The admin listener: /metrics, /livez, /readyz, /status and /status.json.

It has its own socket and its own threads (one per admin request, at most a few at once), so
its answers never queue behind application work: probes answer within milliseconds even when
every worker is stuck. Metrics are exposed through prometheus_client from a collector that
reads the pool's statistics and the server's sharded counters at scrape time, so the request
path pays nothing for the exposition.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from time import monotonic
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from .. import __version__
from ..pool import Distribution
from ._stats import Timing
from ._status_page import STATUS_PAGE

if TYPE_CHECKING:
    from ._server import Server

log = logging.getLogger("poolserver")

MAX_ADMIN_REQUESTS = 8  # at once; beyond, a probe is answered 503 at once
TIMELINE_SECONDS = 10.0

_HISTOGRAMS = {
    Timing.QUEUE_WAIT: ("poolserver_queue_wait_seconds", "Time from ready to a worker starting it"),
    Timing.SERVICE: ("poolserver_service_seconds", "Time a worker spent on the request"),
    Timing.TOTAL: ("poolserver_request_duration_seconds", "Queue wait plus service time"),
}


def readiness(server: Server) -> tuple[bool, str]:
    """Whether the server should receive work now, and why not."""
    if server.draining:
        return False, "draining"
    config = server.config
    waiting = server.pool.pending
    high = config.ready_queue_high * config.queue_size
    if waiting > high:
        return False, f"queue: {waiting} waiting, high-water mark {high:g}"
    p95 = server.sampler.recent_queue_wait().quantile(0.95)
    if p95 is not None and p95 > config.ready_queue_wait:
        return False, f"queue wait: p95 {p95:.3f} s over the last 10 s"
    return True, "ready"


def liveness(server: Server) -> tuple[bool, str]:
    """Whether the server's own threads are alive."""
    dead = [name for name, alive in server.threads_alive().items() if not alive]
    return (not dead, "alive" if not dead else "dead: " + ", ".join(dead))


class MetricsCollector(Collector):
    """Reads the server's state at scrape time, for prometheus_client."""

    def __init__(self, server: Server) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        """The metric families, at this instant."""
        server = self._server
        pool = server.pool.statistics()
        totals = server.stats.totals()
        yield _gauge("poolserver_workers", "Worker threads at most", pool.max_workers)
        yield _gauge("poolserver_workers_busy", "Workers running a request", pool.running)
        yield _gauge("poolserver_workers_stuck", "Abandoned workers not back yet", pool.stuck)
        yield _gauge(
            "poolserver_queue_depth", "Requests waiting for a worker", pool.queued + pool.waiting
        )
        yield _gauge("poolserver_capacity", "Workers plus queue size", pool.capacity)
        yield _gauge("poolserver_ready", "1 when /readyz says ready", int(readiness(server)[0]))
        connections = GaugeMetricFamily(
            "poolserver_connections", "Open client connections", labels=["state"]
        )
        open_, idle = server.connection_count, server.poller.idle_count()
        connections.add_metric(["open"], open_)
        connections.add_metric(["idle"], idle)
        connections.add_metric(["active"], max(0, open_ - idle))
        yield connections
        yield from _counters(totals)
        for timing, (name, documentation) in _HISTOGRAMS.items():
            yield _histogram(name, documentation, totals.timings[timing])


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counters(totals: Any) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "poolserver_requests", "Responses to requests, by status class", labels=["status_class"]
    )
    for cls, count in totals.responses.items():
        requests.add_metric([f"{cls}xx"], count)
    yield requests
    refusals = CounterMetricFamily(
        "poolserver_refusals", "Requests not run, by reason (503, or dropped)", labels=["reason"]
    )
    for reason, count in totals.refusals.items():
        refusals.add_metric([reason.value], count)
    yield refusals
    bad = CounterMetricFamily(
        "poolserver_bad_requests", "Requests refused for bad input, by status", labels=["status"]
    )
    for status, count in sorted(totals.bad_requests.items()):
        bad.add_metric([str(status)], count)
    yield bad
    yield CounterMetricFamily(
        "poolserver_timeouts", "Requests that did not arrive in time (408)", value=totals.timeouts
    )
    yield CounterMetricFamily(
        "poolserver_slow_requests", "Requests logged as slow", value=totals.slow
    )
    yield CounterMetricFamily(
        "poolserver_stuck_requests", "Requests past request_timeout", value=totals.stuck
    )


def _histogram(name: str, documentation: str, dist: Distribution) -> HistogramMetricFamily:
    buckets = [
        ("+Inf" if bound == float("inf") else repr(bound), count) for bound, count in dist.buckets
    ]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=dist.sum)


# ------------------------------------------------------------------------- status


def status(server: Server) -> dict[str, Any]:
    """Everything the status page shows, as JSON-ready data."""
    pool = server.pool.statistics()
    totals = server.stats.totals()
    now = monotonic()
    ready, why = readiness(server)
    open_, idle = server.connection_count, server.poller.idle_count()
    return {
        "version": __version__,
        "time": time.time(),
        "uptime": now - server.started_at,
        "draining": server.draining,
        "ready": {"ready": ready, "reason": why},
        "config": {
            "workers": server.config.workers,
            "queue_size": server.config.queue_size,
            "max_queue_wait": server.config.max_queue_wait,
            "request_timeout": server.config.request_timeout,
        },
        "pool": {
            "max_workers": pool.max_workers,
            "running": pool.running,
            "queued": pool.queued,
            "waiting": pool.waiting,
            "idle": pool.idle,
            "stuck": pool.stuck,
            "capacity": pool.capacity,
            "throughput": (
                round(server.sampler.rate.rate, 1) if server.sampler.rate.known else None
            ),
        },
        "connections": {"open": open_, "idle": idle, "active": max(0, open_ - idle)},
        "totals": {
            "responses": {f"{cls}xx": n for cls, n in totals.responses.items()},
            "refusals": {reason.value: n for reason, n in totals.refusals.items()},
            "bad_requests": {str(k): v for k, v in sorted(totals.bad_requests.items())},
            "timeouts": totals.timeouts,
            "slow": totals.slow,
            "stuck": totals.stuck,
        },
        "timings": {t.value: _summary(totals.timings[t]) for t in Timing},
        "recent_queue_wait_p95": server.sampler.recent_queue_wait().quantile(0.95),
        "history": [
            {
                "time": s.time,
                "running": s.running,
                "backlog": s.backlog,
                "rate": None if s.rate is None else round(s.rate, 1),
            }
            for s in list(server.sampler.history)
        ],
        "inflight": [
            {
                "number": r.number,
                "method": r.method,
                "path": r.path,
                "age": round(now - r.started, 3),
                "worker": r.worker,
                "stuck": r.timed_out,
            }
            for r in sorted(server.inflight.values(), key=lambda r: r.started)
        ],
        "timeline": _timeline(server, now),
    }


def _summary(dist: Distribution) -> dict[str, Any]:
    return {
        "count": dist.count,
        "sum": dist.sum,
        "p50": dist.quantile(0.5),
        "p95": dist.quantile(0.95),
        "p99": dist.quantile(0.99),
        "buckets": [["+Inf" if b == float("inf") else b, c] for b, c in dist.buckets],
    }


def _timeline(server: Server, now: float) -> dict[str, Any]:
    """Per worker, what it ran in the last seconds: spans relative to now (seconds <= 0).

    A row says `since` when it is known: before then the worker did not exist or its record
    was not kept (busy workers keep their last RECENT_SPANS requests), so a gap there is
    not idleness. Threads with nothing in the window (the watchdog, workers gone) have no row.
    """
    start = now - TIMELINE_SECONDS
    rows: dict[str, dict[str, Any]] = {}
    for name, since, spans in server.stats.recent_spans():
        kept = [
            {"start": round(s - now, 3), "end": round(e - now, 3), "request": number}
            for s, e, number in spans
            if e >= start
        ]
        if kept:
            row = rows.setdefault(name, {"name": name, "since": None, "spans": []})
            row["spans"].extend(kept)
            if since > start:
                row["since"] = round(since - now, 3)
    for record in list(server.inflight.values()):
        row = rows.setdefault(record.worker, {"name": record.worker, "since": None, "spans": []})
        row["spans"].append(
            {
                "start": round(max(record.started, start) - now, 3),
                "end": None,
                "request": record.number,
                "state": "stuck" if record.timed_out else "running",
            }
        )
    return {
        "window": TIMELINE_SECONDS,
        "workers": [rows[name] for name in sorted(rows, key=_worker_order)],
    }


def _worker_order(name: str) -> tuple[int, str]:
    tail = name.rsplit("-", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)


# ------------------------------------------------------------------------- the listener


class AdminServer:
    """The admin HTTP listener of one server."""

    def __init__(self, server: Server, host: str, port: int) -> None:
        self._server = server
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(MetricsCollector(server))
        self._slots = threading.BoundedSemaphore(MAX_ADMIN_REQUESTS)
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="poolserver-admin", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Serve in a thread of its own."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def answer(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for an admin GET."""
        server = self._server
        route = path.split("?", 1)[0]
        if route == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if route in ("/livez", "/readyz"):
            ok, why = liveness(server) if route == "/livez" else readiness(server)
            return (200 if ok else 503), "text/plain; charset=utf-8", (why + "\n").encode()
        if route == "/status.json":
            return 200, "application/json", json.dumps(status(server)).encode()
        if route in ("/status", "/"):
            return 200, "text/html; charset=utf-8", STATUS_PAGE.encode()
        return 404, "text/plain; charset=utf-8", b"not found\n"


def _make_handler(admin: AdminServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = f"poolserver-admin/{__version__}"
        timeout = 5  # a stalled admin client holds its thread for this long at most

        def do_GET(self) -> None:
            if not admin._slots.acquire(blocking=False):
                self._reply(503, "text/plain", b"busy\n")
                return
            try:
                status, content_type, body = admin.answer(self.path)
            except Exception:
                log.exception("admin request %s failed", self.path)
                status, content_type, body = 500, "text/plain", b"internal error\n"
            finally:
                admin._slots.release()
            self._reply(status, content_type, body)

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("admin: " + format, *args)

    return Handler
