"""The status page: /status.json holds what the page draws, /status is one self-contained HTML
document, and in headless Chromium the page draws the live pool.

The Chromium tests read the DOM that Chromium dumps once a virtual-time budget is spent: the
page's once-a-second refresh runs a few times within the budget, against a real server under
steady load, or against a stub whose /status.json answers are scripted (failures, nulls).

The screenshot in docs/ comes from this module too:
`python -m tests.server.test_status_page docs/status-page.png`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from time import monotonic
from types import TracebackType
from typing import Any

import pytest

from poolserver.server import Server
from poolserver.server._status_page import STATUS_PAGE

from .helpers import TIMEOUT, running
from .system_programs import require_program

StartResponse = Callable[..., Any]

WORKERS = 4
WARM_UP = 2.2  # s of uptime: the sampler (a sample at most 1 s apart) has two samples by then
CHROMIUM_TIMEOUT = 15.0
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--mute-audio",
    "--hide-scrollbars",
)
DASH = "\u2013"  # what the page shows for a missing figure


# ------------------------------------------------------------------ the application and load


class WorkApp:
    """Each request is 20-50 ms of work (a sleep: the application's own); /hold runs until
    `release`, so that one request is in flight while a test looks. `warm` is set once the
    server has been up WARM_UP seconds (counted from `since`) and has served `warm_after`."""

    def __init__(self, warm_after: int = 20) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.warm = threading.Event()
        self.since = monotonic()
        self.served = 0
        self.warm_after = warm_after
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/hold":
            self.entered.set()
            self.release.wait(4 * TIMEOUT)
        else:
            time.sleep(0.02 + (self.served % 7) * 0.005)
        with self._lock:
            self.served += 1
            if self.served >= self.warm_after and monotonic() - self.since >= WARM_UP:
                self.warm.set()
        body = b"done\n"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
        return [body]


class Load:
    """`clients` threads sending GETs, each over one keep-alive connection, until the block
    ends (at most `each` requests and `seconds` each); and one GET /hold, held until the app's
    `release`, which leaving the block sets."""

    def __init__(
        self,
        address: tuple[str, int],
        release: threading.Event,
        clients: int,
        each: int = 2000,
        seconds: float = 20.0,
    ) -> None:
        self.address = address
        self.release = release
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.statuses: list[int] = []
        self._each = each
        self._seconds = seconds
        self._threads = [
            threading.Thread(target=self._run, args=(f"/work/{i}/", each), name=f"load-{i}")
            for i in range(clients)
        ]
        self._threads.append(threading.Thread(target=self._run, args=("/hold", 1), name="hold"))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self.release.set()
        for thread in self._threads:
            thread.join(2 * TIMEOUT)
        assert not [t.name for t in self._threads if t.is_alive()]

    def _run(self, path: str, count: int) -> None:
        deadline = monotonic() + self._seconds
        client = http.client.HTTPConnection(*self.address, timeout=4 * TIMEOUT)
        try:
            for k in range(count):
                if self.stop.is_set() or monotonic() > deadline:
                    break
                client.request("GET", path if path == "/hold" else f"{path}{k}")
                response = client.getresponse()
                response.read()
                self.statuses.append(response.status)
        except Exception as exc:
            self.errors.append(f"{path}: {exc!r}")
        finally:
            client.close()


@contextlib.contextmanager
def loaded_server(clients: int, **options: Any) -> Iterator[tuple[Server, WorkApp, Load]]:
    """A server with an admin listener, under steady load, warmed up, with /hold in flight."""
    app = WorkApp()
    with running(app, workers=WORKERS, admin_port=0, **options) as server:
        app.since = monotonic()
        with Load(server.address, app.release, clients) as load:
            assert app.entered.wait(TIMEOUT), "/hold never ran"
            assert app.warm.wait(WARM_UP + TIMEOUT), "the server never warmed up"
            yield server, app, load
    assert not load.errors, load.errors


def admin(server: Server) -> tuple[str, int]:
    assert server.admin is not None
    return server.admin.address


def get(address: tuple[str, int], path: str) -> tuple[int, str, bytes]:
    client = http.client.HTTPConnection(*address, timeout=TIMEOUT)
    try:
        client.request("GET", path)
        response = client.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        client.close()


# ------------------------------------------------------------------ /status.json


def field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """data[key], checked to be of `kind` (a bool is not taken for a number)."""
    assert key in data, f"{where}.{key} is missing"
    value = data[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))
    assert ok, f"{where}.{key} = {value!r}: not {kinds}"
    return value


NUMBER = (int, float)
MAYBE_NUMBER = (int, float, type(None))


def check_timing(summary: dict[str, Any], where: str) -> None:
    count = field(summary, "count", int, where)
    field(summary, "sum", NUMBER, where)
    for q in ("p50", "p95", "p99"):
        field(summary, q, NUMBER if count else MAYBE_NUMBER, where)
    buckets = field(summary, "buckets", list, where)
    assert buckets, f"{where}: no buckets"
    bounds = [b[0] for b in buckets]
    counts = [b[1] for b in buckets]
    assert all(isinstance(b, list) and len(b) == 2 for b in buckets), buckets
    assert bounds[-1] == "+Inf", bounds
    assert all(isinstance(b, NUMBER) for b in bounds[:-1]), bounds
    assert bounds[:-1] == sorted(bounds[:-1]), bounds
    assert all(isinstance(c, int) for c in counts), counts
    assert counts == sorted(counts), f"{where}: the counts are not cumulative: {counts}"
    assert counts[-1] == count


def test_status_json_has_what_the_page_draws() -> None:
    with loaded_server(clients=2) as (server, app, _):
        status, content_type, body = get(admin(server), "/status.json")
        served = app.served
    assert status == 200
    assert content_type == "application/json"
    data = json.loads(body)
    field(data, "version", str, "")
    now = field(data, "time", NUMBER, "")
    assert field(data, "uptime", NUMBER, "") >= WARM_UP
    assert field(data, "draining", bool, "") is False
    ready = field(data, "ready", dict, "")
    assert field(ready, "ready", bool, "ready") is True
    assert field(ready, "reason", str, "ready") == "ready"

    pool = field(data, "pool", dict, "")
    for key in ("max_workers", "running", "queued", "waiting", "idle", "stuck", "capacity"):
        field(pool, key, int, "pool")
    assert pool["max_workers"] == WORKERS
    assert 1 <= pool["running"] <= WORKERS  # /hold, at least
    assert pool["capacity"] == WORKERS + server.config.queue_size
    assert field(pool, "throughput", NUMBER, "pool") > 0
    connections = field(data, "connections", dict, "")
    for key in ("open", "idle", "active"):
        field(connections, key, int, "connections")
    assert connections["active"] == connections["open"] - connections["idle"]

    totals = field(data, "totals", dict, "")
    responses = field(totals, "responses", dict, "totals")
    assert set(responses) == {"1xx", "2xx", "3xx", "4xx", "5xx"}
    assert all(isinstance(v, int) for v in responses.values())
    assert responses["2xx"] >= app.warm_after
    refusals = field(totals, "refusals", dict, "totals")
    assert set(refusals) == {"queue_full", "queue_age", "draining", "client_gone"}
    assert all(isinstance(v, int) for v in refusals.values())
    field(totals, "bad_requests", dict, "totals")
    for key in ("timeouts", "slow", "stuck"):
        field(totals, key, int, "totals")

    timings = field(data, "timings", dict, "")
    for name in ("queue_wait", "service", "total"):
        check_timing(field(timings, name, dict, "timings"), f"timings.{name}")
    assert timings["service"]["count"] <= served
    check_timing(field(data, "recent_queue_wait", dict, ""), "recent_queue_wait")
    field(data, "recent_queue_wait_p95", MAYBE_NUMBER, "")

    history = field(data, "history", list, "")
    assert history, "no sample after the warm-up"
    for sample in history:
        assert field(sample, "time", NUMBER, "history[]") <= now
        field(sample, "running", int, "history[]")
        field(sample, "backlog", int, "history[]")
        rate = sample["rate"]  # None until two samples give a rate
        assert rate is None or isinstance(rate, NUMBER), f"history[].rate: {rate!r}"

    inflight = field(data, "inflight", list, "")
    for record in inflight:
        field(record, "number", int, "inflight[]")
        field(record, "method", str, "inflight[]")
        field(record, "path", str, "inflight[]")
        assert field(record, "age", NUMBER, "inflight[]") >= 0
        field(record, "worker", str, "inflight[]")
        field(record, "stuck", bool, "inflight[]")
    held = [r for r in inflight if r["path"] == "/hold"]
    assert len(held) == 1, inflight
    assert held[0]["method"] == "GET"
    assert held[0]["stuck"] is False

    timeline = field(data, "timeline", dict, "")
    window = field(timeline, "window", NUMBER, "timeline")
    assert window > 0
    workers = field(timeline, "workers", list, "timeline")
    open_spans: dict[int, tuple[str, str]] = {}
    closed = 0
    for worker in workers:
        name = field(worker, "name", str, "timeline.workers[]")
        for span in field(worker, "spans", list, "timeline.workers[]"):
            start = field(span, "start", NUMBER, name)
            end = field(span, "end", MAYBE_NUMBER, name)
            request = field(span, "request", int, name)
            assert -window <= start <= 0 if end is None else start <= end <= 0, span
            if end is None:
                open_spans[request] = (name, field(span, "state", str, name))
            else:
                assert end >= -window, span
                assert "state" not in span, span
                closed += 1
    assert closed > 0, "no finished request in the timeline"
    assert open_spans.get(held[0]["number"]) == (held[0]["worker"], "running"), open_spans
    assert {n for n, (_, state) in open_spans.items() if state == "stuck"} == {
        r["number"] for r in inflight if r["stuck"]
    }


# ------------------------------------------------------------------ /status, the page itself


def test_status_page_is_one_self_contained_document() -> None:
    with running(WorkApp(), workers=1, admin_port=0) as server:
        pages = [get(admin(server), path) for path in ("/status", "/")]
    for status, content_type, body in pages:
        assert status == 200
        assert content_type == "text/html; charset=utf-8"
        assert body == STATUS_PAGE.encode()
    page = STATUS_PAGE
    assert page.lstrip().lower().startswith("<!doctype html>")
    assert "http://" not in page
    assert "https://" not in page
    assert "<link" not in page.lower()
    assert not re.search(r"<script[^>]*\bsrc\b", page, re.IGNORECASE)
    assert not re.search(r"\b(src|href)\s*=", page, re.IGNORECASE), "the page loads nothing"
    assert "@import" not in page
    assert "url(" not in page
    assert re.findall(r"fetch\(([^,)]*)", page) == ['"/status.json"']
    assert page.count("<script>") == 1
    # The figures a reader (or a test) looks up by id, and a title for every chart.
    for name in ("running", "queued", "throughput", "inflight-count", "timeline", "ready"):
        assert f'id="{name}"' in page, name
    for match in re.finditer(r"<svg ([^>]*)>", page):
        labelled = re.search(r'aria-labelledby="([^"]+)"', match.group(1))
        assert labelled, match.group(0)
        assert f'id="{labelled.group(1)}"' in page
        assert 'role="img"' in match.group(1)


# ------------------------------------------------------------------ Chromium and its DOM


@pytest.fixture
def chromium() -> str:
    return require_program("chromium")


def run_chromium(chromium: str, args: Sequence[str]) -> str:
    """Run headless Chromium with a fresh profile; its stdout. Bounded: killed (with its
    helper processes, all in its own session) past CHROMIUM_TIMEOUT."""
    with tempfile.TemporaryDirectory(
        prefix="poolserver-chromium-", ignore_cleanup_errors=True
    ) as profile:
        command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            out, err = process.communicate(timeout=CHROMIUM_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            pytest.fail(f"chromium ran over {CHROMIUM_TIMEOUT} s: {command}")
    assert process.returncode == 0, f"chromium exited {process.returncode}: {err[-2000:]}"
    return out


def dump_dom(chromium: str, url: str, budget_ms: int) -> Dom:
    """The page at `url` as Chromium has it once `budget_ms` of virtual time has passed."""
    html = run_chromium(chromium, [f"--virtual-time-budget={budget_ms}", "--dump-dom", url])
    assert "</html>" in html, f"no DOM from chromium: {html[:500]!r}"
    return Dom(html)


VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
    | {"track", "wbr"}
)


class Node:
    """An element of the dumped DOM."""

    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag = tag
        self.attrs = attrs
        self.parent = parent
        self.content: list[Node | str] = []

    @property
    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text for c in self.content)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.content:
            if isinstance(child, Node):
                yield from child.walk()

    def find(self, tag: str, cls: str | None = None) -> list[Node]:
        return [n for n in self.walk() if n.tag == tag and (cls is None or cls in n.classes)]


class Dom(HTMLParser):
    """The elements of an HTML document, as a tree; enough for Chromium's serialisation."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = self._current = Node("#document", {}, None)
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self._current)
        self._current.content.append(node)
        if tag not in VOID:
            self._current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._current.content.append(Node(tag, {k: v or "" for k, v in attrs}, self._current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self._current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self._current = node.parent

    def handle_data(self, data: str) -> None:
        self._current.content.append(data)

    def by_id(self, id_: str) -> Node:
        found = [n for n in self.root.walk() if n.attrs.get("id") == id_]
        assert len(found) == 1, f"{len(found)} elements with id {id_!r}"
        return found[0]

    def text(self, id_: str) -> str:
        return self.by_id(id_).text.strip()

    def shown(self, id_: str) -> bool:
        return "hidden" not in self.by_id(id_).classes

    def table(self, id_: str) -> list[dict[str, str]]:
        """The rows of a table body, each {cell class: text}."""
        return [
            {cell.attrs.get("class", ""): cell.text for cell in row.find("td")}
            for row in self.by_id(id_).find("tr")
        ]


def assert_drew_cleanly(dom: Dom) -> None:
    assert not dom.shown("render-error"), dom.text("render-error")
    assert not dom.shown("conn-state"), dom.text("conn-state")
    assert "offline" not in dom.root.find("body")[0].classes


@pytest.mark.system
def test_page_draws_the_live_pool_in_chromium(chromium: str) -> None:
    with loaded_server(clients=6) as (server, _, _):
        host, port = admin(server)
        dom = dump_dom(chromium, f"http://{host}:{port}/status", budget_ms=2500)
    assert_drew_cleanly(dom)
    assert dom.text("ready") == "ready"
    assert not dom.shown("draining")
    assert 1 <= int(dom.text("running")) <= WORKERS
    assert dom.text("workers") == str(WORKERS)
    assert int(dom.text("queued")) >= 0
    assert float(dom.text("throughput")) > 0
    for name in ("conn-open", "conn-idle", "conn-active", "stuck"):
        assert int(dom.text(name)) >= 0, name
    # The in-flight table: the held request, and as many rows as the count says.
    rows = dom.table("inflight-rows")
    assert len(rows) == int(dom.text("inflight-count")) >= 1
    held = [row for row in rows if row["path"] == "/hold"]
    assert len(held) == 1, rows
    assert held[0]["method"] == "GET"
    assert held[0]["stuck"] == "no"
    assert held[0]["worker"].startswith("poolserver-worker-")
    # The timeline: a row per worker that ran something; finished spans, and the held
    # request as an open span on the worker the table names.
    timeline = dom.by_id("timeline")
    workers = {g.attrs["data-worker"]: g for g in timeline.find("g", "worker")}
    assert workers, "no worker row in the timeline"
    assert held[0]["worker"] in workers
    spans = timeline.find("rect", "span")
    assert any("done" in s.classes for s in spans), "no finished request drawn"
    running_now = workers[held[0]["worker"]].find("rect", "running")
    assert [s.attrs["data-request"] for s in running_now] == [held[0]["number"]]
    assert dom.text("timeline-window") == "10"
    # The charts: the occupancy and throughput lines, the bars of both distributions.
    assert dom.by_id("occupancy").find("polyline")
    assert dom.by_id("throughput-chart").find("polyline")
    for chart in ("queue-wait-chart", "service-chart"):
        assert dom.by_id(chart).find("rect", "bucket"), chart
        assert dom.text(f"{chart}-p50").endswith(("s", "ms", "\u00b5s")), chart
    assert dom.by_id("responses").find("tr")


# ------------------------------------------------------------------ a scripted server


class StubAdmin:
    """Serves the page at /status and scripted answers at /status.json: each fetch takes the
    next (status, body), and the last one repeats."""

    def __init__(self, answers: Sequence[tuple[int, bytes]]) -> None:
        assert answers
        self.answers = list(answers)
        self.fetches = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/status":
                    status, kind, body = 200, "text/html; charset=utf-8", STATUS_PAGE.encode()
                elif self.path == "/status.json":
                    status, body = stub.answers[min(stub.fetches, len(stub.answers) - 1)]
                    stub.fetches += 1
                    kind = "application/json"
                else:
                    status, kind, body = 404, "text/plain", b"not found\n"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = False  # closing joins them
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="stub-admin")

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/status"

    def __enter__(self) -> StubAdmin:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(TIMEOUT)


def payload(data: Any) -> tuple[int, bytes]:
    return 200, json.dumps(data).encode()


KEYS = (
    *("version", "time", "uptime", "draining", "ready", "config", "pool", "connections"),
    *("totals", "timings", "recent_queue_wait_p95", "history", "inflight", "timeline"),
)
ODD = {
    "time": 100.0,
    "ready": {"ready": None, "reason": 3},
    "pool": {"running": None, "queued": "many", "max_workers": True, "capacity": 0},
    "history": [
        None,
        {},
        {"time": "x"},
        {"time": 5, "running": None},
        {"time": 99, "rate": -1e308},
        7,
    ],
    "timings": {
        "queue_wait": {"count": None, "buckets": [None, [1], ["+Inf", None], ["x", 2]]},
        "service": None,
    },
    "totals": {"responses": None, "refusals": [], "bad_requests": {"400": None}},
    "inflight": [None, {"number": None}, 5],
    "timeline": {
        "window": -1,
        "workers": [None, {"name": None, "spans": [None, {"start": None}, {"start": -1}]}],
    },
}


@pytest.mark.system
@pytest.mark.parametrize(
    "data",
    [{}, None, [], dict.fromkeys(KEYS), ODD],
    ids=["empty", "null", "list", "null-fields", "odd-fields"],
)
def test_page_draws_missing_and_odd_data_without_failing(chromium: str, data: Any) -> None:
    with StubAdmin([payload(data)]) as stub:
        dom = dump_dom(chromium, stub.url, budget_ms=1500)
    assert stub.fetches >= 2
    assert_drew_cleanly(dom)
    assert dom.text("ready") == "readiness unknown"
    assert dom.text("running") == DASH
    assert dom.text("throughput") == DASH
    if not isinstance(data, dict) or not data.get("inflight"):
        assert dom.text("inflight-count") == "0"
    if not isinstance(data, dict) or not data.get("timeline"):
        assert "no worker has run a request yet" in dom.by_id("timeline").text


GOOD = {
    "version": "9.9",
    "time": 1_700_000_000.0,
    "uptime": 3725,
    "draining": True,
    "ready": {"ready": False, "reason": "draining"},
    "pool": {"max_workers": 4, "running": 3, "queued": 2, "waiting": 1, "capacity": 8},
    "inflight": [
        {
            "number": 7,
            "method": "GET",
            "path": "/<script>alert(1)</script>",
            "age": 0.5,
            "worker": "poolserver-worker-2",
            "stuck": True,
        }
    ],
    "timeline": {
        "window": 10,
        "workers": [
            {
                "name": "poolserver-worker-2",
                "spans": [
                    {"start": -3.0, "end": -1.0, "request": 6},
                    {"start": -0.5, "end": None, "request": 7, "state": "stuck"},
                ],
            }
        ],
    },
}


@pytest.mark.system
def test_page_recovers_when_the_server_answers_again(chromium: str) -> None:
    busy = (503, b"busy\n")
    with StubAdmin([busy, busy, payload(GOOD)]) as stub:
        dom = dump_dom(chromium, stub.url, budget_ms=3500)
    assert stub.fetches >= 3
    assert_drew_cleanly(dom)
    assert dom.text("version") == "9.9"
    assert dom.text("uptime") == "1 h 2 min"
    assert dom.text("ready") == "not ready: draining"
    assert dom.shown("draining")
    assert dom.text("running") == "3"
    assert dom.text("queued") == "3"  # in the queue, and in the admission line
    assert dom.text("inflight-count") == "1"
    # Text from the server is text: the path is shown as sent, and runs nothing.
    [row] = dom.table("inflight-rows")
    assert row["path"] == "/<script>alert(1)</script>"
    assert row["stuck"] == "stuck"
    assert len(dom.root.find("script")) == 1
    timeline = dom.by_id("timeline")
    assert [s.attrs["data-request"] for s in timeline.find("rect", "done")] == ["6"]
    assert [s.attrs["data-request"] for s in timeline.find("rect", "stuck")] == ["7"]


@pytest.mark.system
@pytest.mark.parametrize(
    ("failure", "why"),
    [((503, b"busy\n"), "HTTP 503"), ((200, b"<html>not json"), "")],
    ids=["503", "not-json"],
)
def test_page_says_when_it_cannot_reach_the_server(
    chromium: str, failure: tuple[int, bytes], why: str
) -> None:
    with StubAdmin([payload(GOOD), failure]) as stub:
        dom = dump_dom(chromium, stub.url, budget_ms=1500)
    assert stub.fetches >= 2
    assert dom.shown("conn-state")
    banner = dom.text("conn-state")
    assert banner.startswith("Cannot reach the server"), banner
    assert why in banner
    assert "Showing data from" in banner
    assert "offline" in dom.root.find("body")[0].classes
    assert dom.text("running") == "3", "the last data stays, dimmed"


# ------------------------------------------------------------------ the screenshot in docs/


def main(argv: Sequence[str]) -> None:
    """Take a screenshot of the page under load: a queue, and one request stuck."""
    target = Path(argv[0] if argv else "docs/status-page.png").resolve()
    chromium = require_program("chromium")
    app = WorkApp()
    options = {"workers": WORKERS, "admin_port": 0, "request_timeout": 4.0}
    with running(app, **options) as server, Load(server.address, app.release, 9) as load:
        time.sleep(11)  # a script, not a test: let the timeline fill
        host, port = admin(server)
        run_chromium(
            chromium,
            [
                "--window-size=1400,1400",
                "--virtual-time-budget=1500",
                f"--screenshot={target}",
                f"http://{host}:{port}/status",
            ],
        )
    print(f"wrote {target}; load errors: {load.errors or 'none'}")


if __name__ == "__main__":
    main(sys.argv[1:])
