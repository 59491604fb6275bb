"""The admin listener: /metrics, /livez, /readyz, /status and /status.json.

It has its own socket and its own threads (one per admin request, at most a few at once), so
its answers never queue behind application work: probes answer within milliseconds even when
every worker is stuck. Every answer comes from a snapshot (`_snapshot`) taken for it: the
request path pays nothing for the exposition, and a supervisor answers for all its processes
with the same code from their merged snapshots.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
from ._snapshot import Snapshot, distribution, readiness, snapshot
from ._stats import Timing
from ._status_page import STATUS_PAGE

if TYPE_CHECKING:
    from ._server import Server

log = logging.getLogger("poolserver")

MAX_ADMIN_REQUESTS = 8  # at once; beyond, a probe is answered 503 at once

_HISTOGRAMS = {
    Timing.QUEUE_WAIT: ("poolserver_queue_wait_seconds", "Time from ready to a worker starting it"),
    Timing.SERVICE: ("poolserver_service_seconds", "Time a worker spent on the request"),
    Timing.TOTAL: ("poolserver_request_duration_seconds", "Queue wait plus service time"),
}


class MetricsCollector(Collector):
    """Turns a snapshot taken at scrape time into metric families, for prometheus_client."""

    def __init__(self, source: Callable[[], Snapshot]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """The metric families, at this instant."""
        return metric_families(self._source())


def metric_families(data: Snapshot) -> Iterator[Metric]:
    """The metric families of a snapshot (of one process, or merged)."""
    pool = data["pool"]
    yield _gauge("poolserver_workers", "Worker threads at most", pool["max_workers"])
    yield _gauge("poolserver_workers_busy", "Workers running a request", pool["running"])
    yield _gauge("poolserver_workers_stuck", "Abandoned workers not back yet", pool["stuck"])
    yield _gauge(
        "poolserver_queue_depth",
        "Requests waiting for a worker",
        pool["queued"] + pool["waiting"],
    )
    yield _gauge("poolserver_capacity", "Workers plus queue size", pool["capacity"])
    yield _gauge("poolserver_ready", "1 when /readyz says ready", int(data["ready"]["ready"]))
    yield _gauge("poolserver_processes", "Serving processes", len(data.get("processes", ())) or 1)
    connections = GaugeMetricFamily(
        "poolserver_connections", "Open client connections", labels=["state"]
    )
    for state in ("open", "idle", "active"):
        connections.add_metric([state], data["connections"][state])
    yield connections
    yield from _counters(data["totals"])
    for timing, (name, documentation) in _HISTOGRAMS.items():
        timings = data["timings"].get(timing.value)
        if timings is not None:
            yield _histogram(name, documentation, distribution(timings))


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _counters(totals: dict[str, Any]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "poolserver_requests", "Responses to requests, by status class", labels=["status_class"]
    )
    for cls, count in totals["responses"].items():
        requests.add_metric([cls], count)
    yield requests
    refusals = CounterMetricFamily(
        "poolserver_refusals", "Requests not run, by reason (503, or dropped)", labels=["reason"]
    )
    for reason, count in totals["refusals"].items():
        refusals.add_metric([reason], count)
    yield refusals
    bad = CounterMetricFamily(
        "poolserver_bad_requests", "Requests refused for bad input, by status", labels=["status"]
    )
    for status, count in sorted(totals["bad_requests"].items()):
        bad.add_metric([status], count)
    yield bad
    yield CounterMetricFamily(
        "poolserver_timeouts",
        "Requests that did not arrive in time (408)",
        value=totals["timeouts"],
    )
    yield CounterMetricFamily(
        "poolserver_slow_requests", "Requests logged as slow", value=totals["slow"]
    )
    yield CounterMetricFamily(
        "poolserver_stuck_requests", "Requests past request_timeout", value=totals["stuck"]
    )


def _histogram(name: str, documentation: str, dist: Distribution) -> HistogramMetricFamily:
    buckets = [
        ("+Inf" if bound == float("inf") else repr(bound), count) for bound, count in dist.buckets
    ]
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=dist.sum)


def render_metrics(data: Snapshot) -> bytes:
    """The Prometheus text exposition of a snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MetricsCollector(lambda: data))
    return generate_latest(registry)


def wants_detail(path: str) -> bool:
    """Whether answering `path` needs a detailed snapshot (the status page's data)."""
    return path.split("?", 1)[0] == "/status.json"


def answer(path: str, data: Snapshot) -> tuple[int, str, bytes]:
    """(status, content type, body) for an admin GET of `path`, from a snapshot taken for it
    (detailed if `wants_detail(path)`)."""
    route = path.split("?", 1)[0]
    if route == "/metrics":
        return 200, CONTENT_TYPE_LATEST, render_metrics(data)
    if route in ("/livez", "/readyz"):
        state = data["live"] if route == "/livez" else data["ready"]
        ok = state["live" if route == "/livez" else "ready"]
        body = (state["reason"] + "\n").encode()
        return (200 if ok else 503), "text/plain; charset=utf-8", body
    if route == "/status.json":
        return 200, "application/json", json.dumps(data).encode()
    if route in ("/status", "/"):
        return 200, "text/html; charset=utf-8", STATUS_PAGE.encode()
    return 404, "text/plain; charset=utf-8", b"not found\n"


# ------------------------------------------------------------------------- the listener


class AdminServer:
    """The admin HTTP listener of one server."""

    def __init__(self, server: Server, host: str, port: int) -> None:
        self._server = server
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
        route = path.split("?", 1)[0]
        if route in ("/status", "/"):
            return answer(route, {})  # the page itself: no snapshot needed
        if route == "/readyz":
            ok, why = readiness(self._server)  # the cheapest probe: no snapshot
            return (200 if ok else 503), "text/plain; charset=utf-8", (why + "\n").encode()
        return answer(path, snapshot(self._server, detail=wants_detail(path)))


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
