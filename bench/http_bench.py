"""HTTP benchmark: poolserver beside waitress, gunicorn, cheroot, granian and uvicorn, in one run.

Each server in turn is started pinned to core 0 (`taskset -c 0`), waited for, checked
(GET / must answer 200 and the app's body), warmed up, measured with wrk pinned to core 1,
and stopped, so that only one server runs at a time. Servers are interleaved within each
workload, so that drift on the machine hits them alike, in an order that rotates with each
workload and round, so that none is always measured last. A server that does not start is
skipped, with the reason and its log. Absolute rates drift between runs (±50% on a shared
2-core machine); the ratios printed, all from one run, hold.

Servers: poolserver, waitress, gunicorn gthread, cheroot, granian and uvicorn, and
poolserver-metrics under hello-keepalive only: poolserver with its admin listener on
(`--admin-port`), which the harness scrapes while wrk measures (GET /metrics once a second,
as Prometheus would, and GET /readyz once a second, as a load balancer would; each request
bounded by a 2 s time-out, failures counted). Its rate over poolserver's is the metrics
overhead. The server counts every request whether or not the admin listener is on, so this
measures the exposition: the listener and the scrapes.

TIME_WAIT: every connection closed with `Connection: close` leaves a socket in TIME_WAIT for
60 s, and a machine full of them slows every new connection down. Before each measurement of
hello-close the harness waits (at most --time-wait-max s) until fewer than
--time-wait-threshold are left (bench/time_wait.py); each measurement records the count.

Workloads (all by default):
- hello-keepalive: the hello app, 50 keep-alive connections;
- hello-close:     the hello app, 50 connections, `Connection: close` on every request;
- sleep10:         an app that blocks 10 ms, 16 threads, 100 connections (bound 1,600/s);
                   uvicorn is left out: it has no thread pool, so a blocking app would stall
                   its event loop, and an `asyncio.sleep` app is bound by 100 connections,
                   not by 16 threads: neither would compare;
- slow-clients:    hello, 50 keep-alive connections, first alone, then beside 1,000 clients
                   that send their headers one byte per second (bench/slow_clients.py);
                   between the two, beside the same clients trickling into a socket that
                   nobody reads (`--sink`): the control, what the generator costs wrk's core
                   with no server doing anything for it.

Idle halts: on a KVM guest whose halt polling is off, waking wrk from an idle halt costs the
server's core a hypercall for every response that finds wrk asleep (bench/halt_poll.py). The
report records the setting; `--guest-halt-poll-ns` sets it for the run and restores it after.

Every rate counts 2xx/3xx responses only; socket errors and non-2xx responses are counted
and flagged. Other processes' CPU time is measured around each measurement
(bench/background_load.py): the harness waits for a quiet machine before each server,
measures again once if others took over 0.15 cores meanwhile, and flags what stays noisy.

Writes bench/results/http_bench.{md,json,png}. Run it with the bench venv (`make bench`
creates it), from anywhere; servers run from the repository's root with it on PYTHONPATH:

    .venv-bench/bin/python bench/http_bench.py [--quick] [--servers a,b] [--workloads x,y]
        [--duration 10] [--rounds 1] [--slow-clients 1000] [--time-wait-threshold 2000]
        [--guest-halt-poll-ns NS]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, TypeVar

import background_load
import halt_poll
import time_wait
from apps import HELLO_BODY, SLEEP_BODY, SLEEP_SECONDS
from http_report import (
    METRICS,
    METRICS_WORKLOAD,
    REFERENCE,
    Measurement,
    Report,
    ScrapeStats,
    SlowClientStats,
    chart,
    fill_cells,
    markdown,
    noisy,
    report_from_json,
    report_json,
)
from wrk_output import WrkOutputError, WrkResult, run_and_parse

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SLOW_CLIENTS = BENCH / "slow_clients.py"
THREADS = 16
SERVER_CORE = 0
LOAD_CORE = 1
START_TIMEOUT_S = 15.0
STOP_GRACE_S = 5.0
WRK_TIMEOUT = "2s"
# A server is started only once other processes use less than this many cores.
QUIET_CORES = 0.10
# poolserver-metrics: what the harness fetches from the admin listener, how often, how long
# it waits for each answer, and what /metrics must hold.
SCRAPE_PATHS = ("/metrics", "/readyz")
SCRAPE_PERIOD_S = 1.0
SCRAPE_TIMEOUT_S = 2.0
METRICS_MARK = b"poolserver_"


T = TypeVar("T")


class BenchError(RuntimeError):
    """A measurement that could not be made; the run goes on with the next one."""


class ServerStartError(BenchError):
    """The server exited, or did not accept connections in time: it is not tried again."""


# ----------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class Server:
    """How to run one server: its module (`python -m`), its arguments, the apps it serves."""

    name: str
    module: str
    args: Callable[[str, str], list[str]]  # (app target, port) -> command-line arguments
    apps: dict[str, str]  # workload app name -> import target
    distribution: str
    admin: bool = False  # run with --admin-port on a fresh port, and scrape it while measured
    only: tuple[str, ...] = ()  # the workloads it is measured under; empty: all

    def measured_under(self, workload: Workload) -> bool:
        """True if this server runs under `workload` (it serves its app, and is meant to)."""
        return workload.app in self.apps and (not self.only or workload.name in self.only)

    def skip_reason(self, workload: Workload) -> str:
        """Why measured_under(workload) is False."""
        if workload.app not in self.apps:
            return NOT_SERVED_REASON
        return f"measured under {', '.join(self.only)} only"

    def launcher(self) -> list[str] | None:
        """`python -m module` if the module is runnable, else its console script, else None."""
        spec = importlib.util.find_spec(self.module)
        if spec is None:
            return None
        locations = spec.submodule_search_locations
        if locations is None or any((Path(p) / "__main__.py").exists() for p in locations):
            return [sys.executable, "-m", self.module]  # a plain module, or a runnable package
        script = Path(sys.executable).parent / self.module
        return [str(script)] if script.exists() else None


WSGI_APPS = {"hello": "bench.apps:hello", "sleep10": "bench.apps:sleep10"}


def _poolserver_args(app: str, port: str) -> list[str]:
    return [
        app,
        *("--host", HOST, "--port", port),
        *("--workers", str(THREADS), "--log-level", "warning"),
    ]


SERVERS = [
    Server("poolserver", "poolserver", _poolserver_args, WSGI_APPS, "poolserver"),
    Server(
        METRICS,
        "poolserver",
        _poolserver_args,
        WSGI_APPS,
        "poolserver",
        admin=True,
        only=(METRICS_WORKLOAD,),
    ),
    Server(
        "waitress",
        "waitress",
        lambda app, port: [f"--threads={THREADS}", f"--listen={HOST}:{port}", app],
        WSGI_APPS,
        "waitress",
    ),
    Server(
        "gunicorn-gthread",
        "gunicorn",
        # No --access-logfile: gunicorn writes no access log unless given one.
        lambda app, port: [
            *("-k", "gthread", "--threads", str(THREADS), "-w", "1"),
            *("-b", f"{HOST}:{port}", "--log-level", "warning", app),
        ],
        WSGI_APPS,
        "gunicorn",
    ),
    Server(
        "cheroot",
        "cheroot",
        # cheroot's listen backlog defaults to 5, which drops the SYNs of 50 connections
        # opened at once; 1024 is what waitress and granian use.
        lambda app, port: [
            *("--bind", f"{HOST}:{port}", "--threads", str(THREADS)),
            *("--max-threads", str(THREADS), "--request-queue-size", "1024", app),
        ],
        WSGI_APPS,
        "cheroot",
    ),
    Server(
        "granian",
        "granian",
        # --http 1: HTTP/1.1 only, as the others, rather than sniffing for HTTP/2.
        lambda app, port: [
            *("--interface", "wsgi", "--host", HOST, "--port", port),
            *("--workers", "1", "--blocking-threads", str(THREADS), "--http", "1"),
            *("--log-level", "warning", app),
        ],
        WSGI_APPS,
        "granian",
    ),
    Server(
        "uvicorn",
        "uvicorn",
        lambda app, port: [
            *(app, "--host", HOST, "--port", port),
            *("--loop", "uvloop", "--http", "httptools"),
            *("--no-access-log", "--log-level", "warning"),
        ],
        {"hello": "bench.apps:hello_asgi"},
        "uvicorn",
    ),
]


# ----------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    """One kind of load: which app, how many wrk connections, and what else runs beside."""

    name: str
    app: str
    connections: int
    close: bool = False
    slow_clients: bool = False


WORKLOADS = [
    Workload("hello-keepalive", "hello", 50),
    Workload("hello-close", "hello", 50, close=True),
    Workload("sleep10", "sleep10", 100),
    Workload("slow-clients", "hello", 50, slow_clients=True),
]
EXPECTED_BODY = {"hello": HELLO_BODY, "sleep10": SLEEP_BODY}
NOT_SERVED_REASON = "no thread pool: a blocking app would not compare (see the docstring)"


@dataclass(frozen=True)
class Settings:
    """The knobs of one run, from the command line."""

    duration: int
    warmup: int
    settle: float
    rounds: int
    slow_clients: int
    pin: bool
    logs: Path
    quiet_wait: float
    noisy_retries: int
    time_wait_threshold: int = time_wait.THRESHOLD
    time_wait_max: float = time_wait.MAX_WAIT_S
    guest_halt_poll_ns: int | None = None  # None: as the machine has it


# ----------------------------------------------------------------------------- processes


def pinned(core: int, argv: Sequence[str], settings: Settings) -> list[str]:
    """The command that runs argv on one core (and its children too), if pinning is on."""
    return ["taskset", "-c", str(core), *argv] if settings.pin else list(argv)


def free_port() -> int:
    """A TCP port that was free a moment ago; each server start gets a fresh one."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one; children inherit it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def stop_group(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM the process group started for `process`, then SIGKILL it if it lingers."""
    # A process group, because gunicorn and granian fork workers that must go too.
    for sig, grace in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        if process.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # workers orphaned by a master that exited


def server_env() -> dict[str, str]:
    """The environment of a server: `bench.apps` importable from the repository's root."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def failure(summary: str, log: Path, lines: int = 15) -> str:
    """A one-line summary naming the log and quoting its last line, then the log's tail."""
    tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    last = tail[-1].strip() if tail else "(empty log)"
    indented = "\n".join("    " + line for line in tail[-lines:])
    return f"{summary}; last log line: {last!r} (log: {log})\n{indented}"


def wait_until_accepting(
    process: subprocess.Popen[bytes], port: int, log: Path, deadline: float | None = None
) -> None:
    """Connect until the server accepts; raise if it exits or the time is up."""
    deadline = time.monotonic() + START_TIMEOUT_S if deadline is None else deadline
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(failure(f"exited with code {process.returncode}", log))
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise ServerStartError(failure(f"not accepting after {START_TIMEOUT_S:.0f} s", log))


@dataclass(frozen=True)
class Running:
    """A server that accepts connections: where, and the process at the top of its tree."""

    port: int
    pid: int
    admin_port: int | None = None


@contextlib.contextmanager
def serving(server: Server, workload: Workload, settings: Settings) -> Iterator[Running]:
    """Run `server` with the workload's app on a fresh port, pinned, until the block ends."""
    launcher = server.launcher()
    if launcher is None:
        raise ServerStartError(f"no runnable module or script named {server.module!r}")
    port = free_port()
    admin_port = free_port() if server.admin else None
    log = settings.logs / f"{server.name}-{workload.name}.log"
    app = server.apps[workload.app]
    args = server.args(app, str(port))
    if admin_port is not None:
        args += ["--admin-port", str(admin_port)]
    argv = pinned(SERVER_CORE, [*launcher, *args], settings)
    process = start_logged(argv, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        wait_until_accepting(process, port, log, deadline)
        if admin_port is not None:
            wait_until_accepting(process, admin_port, log, deadline)
        yield Running(port, process.pid, admin_port)
        if process.poll() is not None:
            raise BenchError(failure("died while measured", log))
    finally:
        stop_group(process)


def start_logged(argv: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server from the repository's root in a session of its own (so that
    `stop_group` stops its children too), its output in `log`, nothing on its stdin."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            cwd=ROOT,
            env=server_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def check_response(port: int, expected: bytes) -> bool:
    """GET / twice on one connection: raise unless 200 and the body; True if kept alive."""
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        keepalive = True
        for _ in range(2):
            connection.request("GET", "/", headers={"Host": "x"})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200 or body != expected:
                raise BenchError(
                    f"GET / answered {response.status} {body[:80]!r}, expected 200 {expected!r}"
                )
            keepalive = keepalive and not response.will_close
        return keepalive
    except (OSError, http.client.HTTPException) as error:
        raise BenchError(f"GET / failed: {error!r}") from error
    finally:
        connection.close()


def closes_when_asked(port: int) -> bool:
    """True if the server closes the connection after a request with `Connection: close`."""
    # wrk reuses a connection that the server keeps open, whatever the request said: a server
    # ignoring `Connection: close` would be measured on keep-alive in hello-close.
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", "/", headers={"Host": "x", "Connection": "close"})
        response = connection.getresponse()
        response.read()
        if response.will_close:
            return True
        sock = connection.sock
        if sock is None:
            return True
        sock.settimeout(2.0)
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except (OSError, http.client.HTTPException) as error:
        raise BenchError(f"GET / with Connection: close failed: {error!r}") from error
    finally:
        connection.close()


# ----------------------------------------------------------------------------- admin scrapes


def admin_get(port: int, path: str) -> tuple[int, bytes]:
    """GET `path` from the admin listener on a new connection: (status, body)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=SCRAPE_TIMEOUT_S)
    try:
        connection.request("GET", path, headers={"Host": "x"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check_admin(port: int) -> None:
    """GET /metrics once: raise unless it answers 200 with the server's metrics."""
    try:
        status, body = admin_get(port, "/metrics")
    except (OSError, http.client.HTTPException) as error:
        raise BenchError(f"GET /metrics failed: {error!r}") from error
    if status != 200 or METRICS_MARK not in body:
        raise BenchError(f"GET /metrics answered {status} {body[:80]!r}")


class Scraper:
    """GET each of SCRAPE_PATHS once a period from a thread, until stopped or `limit_s` is up."""

    def __init__(self, port: int, limit_s: float) -> None:
        self.port = port
        self.stats = ScrapeStats()
        self._deadline = time.monotonic() + limit_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scraper", daemon=True)

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=len(SCRAPE_PATHS) * SCRAPE_TIMEOUT_S + 1.0)

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            for path in SCRAPE_PATHS:
                self._fetch(path)
            due += SCRAPE_PERIOD_S
            self._stop.wait(max(due - time.monotonic(), 0.0))

    def _fetch(self, path: str) -> None:
        stats = self.stats
        started = time.monotonic()
        try:
            status, body = admin_get(self.port, path)
        except (OSError, http.client.HTTPException):
            status, body = 0, b""
        stats.slowest_s = max(stats.slowest_s, time.monotonic() - started)
        if path == "/metrics" and status == 200 and METRICS_MARK in body:
            stats.metrics_ok += 1
            stats.metrics_bytes = len(body)
        elif path == "/readyz" and status == 200:
            stats.readyz_ready += 1
        elif path == "/readyz" and status == 503:
            stats.readyz_not_ready += 1
        else:
            stats.failed += 1


# ----------------------------------------------------------------------------- wrk


def run_wrk(port: int, workload: Workload, seconds: int, settings: Settings) -> WrkResult:
    """One wrk run on core 1 against the server; raises WrkOutputError if wrk failed."""
    argv = ["wrk", "-t1", f"-c{workload.connections}", f"-d{seconds}s"]
    argv += ["--timeout", WRK_TIMEOUT, "--latency"]
    if workload.close:
        argv += ["-H", "Connection: close"]
    argv.append(f"http://{HOST}:{port}/")
    return run_and_parse(pinned(LOAD_CORE, argv, settings), seconds)


# ----------------------------------------------------------------------------- slow clients


class SlowClients:
    """bench/slow_clients.py running on core 1, its status lines followed by a thread; aimed
    at `port`, or at a socket of its own that nobody reads if `port` is None (the control)."""

    def __init__(self, port: int | None, count: int, lifetime: float, settings: Settings) -> None:
        target = ["--sink"] if port is None else ["--port", str(port)]
        argv = [sys.executable, str(SLOW_CLIENTS), "--host", HOST, *target]
        argv += ["--connections", str(count), "--duration", f"{lifetime:.0f}"]
        self.count = count
        self.ready = threading.Event()
        self.ready_open: int | None = None
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.process = subprocess.Popen(
            pinned(LOAD_CORE, argv, settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self._reader = threading.Thread(target=self._follow, args=(self.process.stdout,))
        self._reader.daemon = True
        self._reader.start()

    def _follow(self, stream: IO[str]) -> None:
        for line in stream:
            kind, _, rest = line.strip().partition(" ")
            numbers: dict[str, int] = {}
            for item in rest.split():
                key, _, value = item.partition("=")
                if value.isdigit():
                    numbers[key] = int(value)
            if kind == "READY":
                self.ready_open = numbers.get("open")
                self.ready.set()
            elif kind == "STATUS":
                self.samples.append((time.monotonic(), numbers))

    def stats_between(self, start: float, end: float) -> SlowClientStats:
        """How many slow connections were open, and how many the server closed, in a window."""
        window = [n for t, n in self.samples if start <= t <= end + 1.0]
        opens = [n["open"] for n in window if "open" in n]
        closed = [n["closed"] for n in window if "closed" in n]
        return SlowClientStats(
            clients=self.count,
            ready_open=self.ready_open,
            open_min=min(opens, default=None),
            open_max=max(opens, default=None),
            closed_by_server=(closed[-1] - closed[0]) if closed else None,
        )

    def stop(self) -> None:
        """End the generator and its connections."""
        stop_group(self.process)
        self._reader.join(timeout=5)


def run_wrk_watched(
    server: Running, workload: Workload, settings: Settings, measurement: Measurement
) -> WrkResult:
    """A measuring wrk run; also records the CPU the server and other processes used."""
    measurement.time_wait_at_start = time_wait.count()
    before = background_load.read()
    started = time.monotonic()
    if server.admin_port is None:
        result = run_wrk(server.port, workload, settings.duration, settings)
    else:
        with Scraper(server.admin_port, settings.duration + 5.0) as scraper:
            result = run_wrk(server.port, workload, settings.duration, settings)
        measurement.scrapes = scraper.stats
    after = background_load.read()
    seconds = time.monotonic() - started
    foreign = background_load.foreign_cores(before, after, seconds)
    measurement.foreign_cores = max(foreign, measurement.foreign_cores or 0.0)
    server_cores = background_load.tree_cores(before, after, seconds, server.pid)
    everything_ours = background_load.tree_cores(before, after, seconds, os.getpid())
    measurement.server_cores = server_cores
    measurement.load_cores = max(everything_ours - server_cores, 0.0)  # wrk, slow clients, us
    return result


def add_quiet_arguments(parser: argparse.ArgumentParser, *, quiet_wait: float) -> None:
    """--quiet-wait and --noisy-retries: how a harness keeps other processes out of a run."""
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=quiet_wait,
        help="seconds to wait, before each server, for other processes to quiet down",
    )
    parser.add_argument(
        "--noisy-retries",
        type=int,
        default=1,
        help="measure again when other processes took over 0.15 cores meanwhile",
    )


def wait_for_quiet(settings: Settings) -> None:
    """Wait (bounded) until other processes leave most of the machine idle."""
    started = time.monotonic()
    peak = 0.0
    while True:
        before = background_load.read()
        time.sleep(1.0)
        cores = background_load.foreign_cores(before, background_load.read(), 1.0)
        waited = time.monotonic() - started
        if cores <= QUIET_CORES or waited >= settings.quiet_wait:
            break
        peak = max(peak, cores)
    if peak:
        outcome = "quiet" if cores <= QUIET_CORES else f"still {cores:.2f}"
        print(f"(waited {waited:.0f} s: others used up to {peak:.2f} cores, {outcome}) ", end="")


def measure_with_slow_clients(
    server: Running, workload: Workload, settings: Settings, measurement: Measurement
) -> None:
    """wrk alone; beside the slow clients trickling into a sink (the control); beside the
    slow clients trickling into the server, once they are all connected and trickling."""
    measurement.alone = run_wrk_watched(server, workload, settings, measurement)
    measurement.control, _ = _beside_slow_clients(None, server, workload, settings, measurement)
    measurement.wrk, measurement.slow = _beside_slow_clients(
        server.port, server, workload, settings, measurement
    )


def _beside_slow_clients(
    port: int | None,
    server: Running,
    workload: Workload,
    settings: Settings,
    measurement: Measurement,
) -> tuple[WrkResult, SlowClientStats]:
    lifetime = 30 + settings.settle + settings.duration + 30  # bounded, ends by itself
    slow = SlowClients(port, settings.slow_clients, lifetime, settings)
    try:
        if not slow.ready.wait(timeout=30):
            raise BenchError("the slow clients did not report READY within 30 s")
        time.sleep(settings.settle)  # every client has sent a few bytes by now
        started = time.monotonic()
        result = run_wrk_watched(server, workload, settings, measurement)
        return result, slow.stats_between(started, time.monotonic())
    finally:
        slow.stop()


# ----------------------------------------------------------------------------- one cell


def wait_for_time_wait(workload: Workload, settings: Settings, measurement: Measurement) -> None:
    """Before a workload that closes its connections: wait (bounded) for TIME_WAIT to drain."""
    if not workload.close:
        return
    waited = time_wait.wait_below(settings.time_wait_threshold, settings.time_wait_max)
    measurement.time_wait_found = waited.before
    measurement.time_wait_waited_s = waited.seconds
    print(waited.describe(settings.time_wait_threshold), end="", flush=True)


def measure(server: Server, workload: Workload, settings: Settings, round_: int) -> Measurement:
    """Wait for the machine, start, check, warm up, measure and stop one server."""
    measurement = Measurement(server.name, workload.name, round_, status="ok")
    wait_for_time_wait(workload, settings, measurement)
    wait_for_quiet(settings)
    with serving(server, workload, settings) as running:
        measurement.keepalive = check_response(running.port, EXPECTED_BODY[workload.app])
        if running.admin_port is not None:
            check_admin(running.admin_port)
        if workload.close:
            measurement.closes = closes_when_asked(running.port)
        run_wrk(running.port, workload, settings.warmup, settings)
        if workload.slow_clients:
            measure_with_slow_clients(running, workload, settings, measurement)
        else:
            measurement.wrk = run_wrk_watched(running, workload, settings, measurement)
    return measurement


def describe(m: Measurement) -> str:
    """One progress line for a finished measurement."""
    if m.wrk is None:
        return f"{m.status}: {m.reason.splitlines()[0] if m.reason else ''}"
    text = f"{m.wrk.good_per_s:,.0f} req/s"
    if m.alone is not None:
        control = "" if m.control is None else f"control {m.control.good_per_s:,.0f} req/s, "
        text = f"alone {m.alone.good_per_s:,.0f} req/s, {control}with slow clients {text}"
    if m.slow is not None:
        text += f" ({m.slow.open_min}-{m.slow.open_max} slow connections open)"
    if m.scrapes is not None:
        text += f" ({m.scrapes.answered} scrapes answered, {m.scrapes.failed} failed)"
    if m.time_wait_at_start:
        text += f", TIME_WAIT {m.time_wait_at_start:,} at start"
    errors = m.wrk.socket_errors + m.wrk.non_2xx
    text += f", {errors:,} errors/non-2xx" if errors else ""
    return text + (f", others used {m.foreign_cores:.2f} cores" if noisy(m) else "")


def run_all(
    servers: Sequence[Server], workloads: Sequence[Workload], settings: Settings
) -> list[Measurement]:
    """Every server under every workload, workload by workload, for each round.

    The order of the servers rotates from one workload and round to the next, so that none is
    always measured last (when the machine has been loaded longest); poolserver-metrics goes
    beside poolserver, after it in odd rounds and before it in even ones.
    """
    results: list[Measurement] = []
    broken: dict[str, str] = {}  # server -> why it did not start: not tried again
    for round_ in range(1, settings.rounds + 1):
        for index, workload in enumerate(workloads):
            shift = (round_ - 1) * len(workloads) + index
            for server in rotated(servers, workload, shift, variant_first=round_ % 2 == 0):
                print(f"[{round_}] {workload.name:<16} {server.name:<17} ", end="", flush=True)
                m = _measure_or_skip(server, workload, settings, round_, broken)
                results.append(m)
                print(describe(m), flush=True)
                if m.status == "failed" and "\n" in m.reason:
                    print(m.reason.split("\n", 1)[1], flush=True)
    return results


def rotated(
    servers: Sequence[Server], workload: Workload, shift: int, variant_first: bool = False
) -> list[Server]:
    """The servers measured under `workload`, rotated by `shift`, then those skipped.

    poolserver-metrics is measured right beside poolserver (after it, or before it if
    `variant_first`), so that the drift between the two, whose ratio is the metrics
    overhead, is as small as it can be.
    """
    measured = [s for s in servers if s.measured_under(workload)]
    skipped = [s for s in servers if not s.measured_under(workload)]
    if not measured:
        return skipped
    shift %= len(measured)
    order = [*measured[shift:], *measured[:shift]]
    names = [s.name for s in order]
    if METRICS in names and REFERENCE in names:
        variant = order.pop(names.index(METRICS))
        reference = [s.name for s in order].index(REFERENCE)
        order.insert(reference if variant_first else reference + 1, variant)
    return [*order, *skipped]


def _measure_or_skip(
    server: Server, workload: Workload, settings: Settings, round_: int, broken: dict[str, str]
) -> Measurement:
    if not server.measured_under(workload):
        reason = server.skip_reason(workload)
        return Measurement(server.name, workload.name, round_, "skipped", reason)
    if server.name in broken:
        return Measurement(server.name, workload.name, round_, "skipped", broken[server.name])
    try:
        measurement = measure(server, workload, settings, round_)
    except ServerStartError as error:
        broken[server.name] = f"did not start: {str(error).splitlines()[0]}"
        return Measurement(server.name, workload.name, round_, "failed", f"{error}")
    except BenchError as error:
        return Measurement(server.name, workload.name, round_, "failed", f"{error}")
    except WrkOutputError as error:
        return Measurement(server.name, workload.name, round_, "failed", f"wrk: {error}")
    return _remeasure_if_noisy(measurement, server, workload, settings)


def _remeasure_if_noisy(
    measurement: Measurement, server: Server, workload: Workload, settings: Settings
) -> Measurement:
    """Measure again while others took CPU meanwhile; keep the quietest measurement."""
    for _ in range(settings.noisy_retries):
        if not noisy(measurement):
            break
        print(f"(noisy: {describe(measurement)}; again) ", end="", flush=True)
        try:
            again = measure(server, workload, settings, measurement.round)
        except (BenchError, WrkOutputError) as error:
            print(f"(failed again: {str(error).splitlines()[0]}) ", end="")
            break
        measurement = min(measurement, again, key=lambda m: m.foreign_cores or 0.0)
    return measurement


# ----------------------------------------------------------------------------- output


def installed_version(distribution: str) -> str:
    """The installed version of a Python distribution, or "not installed"."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def wrk_version() -> str:
    """wrk's version, as it prints it."""
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (wrk.stdout or wrk.stderr).split(" [")[0].removeprefix("wrk ").strip()


def versions(servers: Sequence[Server]) -> dict[str, str]:
    """Installed versions of the servers measured, and of wrk."""
    found = {server.name: installed_version(server.distribution) for server in servers}
    found["wrk"] = wrk_version()
    return found


def commands(
    servers: Sequence[Server], workloads: Sequence[Workload], settings: Settings
) -> dict[str, str]:
    """Each server's command line for each app the run's workloads use, with PORT for the
    port, as the report shows it: keyed by the server's name, and the app's after a comma
    when the run uses more than one."""
    apps = list(dict.fromkeys(workload.app for workload in workloads))
    shown: dict[str, str] = {}
    for server in servers:
        launcher = server.launcher() or [server.module]
        launcher = ["python", *launcher[1:]] if launcher[0] == sys.executable else launcher
        for app in apps:
            if not any(server.measured_under(w) for w in workloads if w.app == app):
                continue
            args = server.args(server.apps[app], "PORT")
            if server.admin:
                args += ["--admin-port", "ADMIN_PORT"]
            name = server.name if len(apps) == 1 else f"{server.name}, {app}"
            shown[name] = shlex.join(pinned(SERVER_CORE, [*launcher, *args], settings))
    return shown


def build_report(
    results: Sequence[Measurement],
    servers: Sequence[Server],
    workloads: Sequence[Workload],
    settings: Settings,
) -> Report:
    """The median measurement of each (workload, server), and the facts around them."""
    report = Report(
        date=date.today().isoformat(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        duration_s=settings.duration,
        rounds=settings.rounds,
        servers=[s.name for s in servers],
        workloads=[w.name for w in workloads],
        sleep_bound=THREADS / SLEEP_SECONDS,
        slow_clients=settings.slow_clients,
        versions=versions(servers),
        commands=commands(servers, workloads, settings),
        time_wait_threshold=settings.time_wait_threshold,
        time_wait_max_s=settings.time_wait_max,
        halt_poll=halt_poll.describe(settings.guest_halt_poll_ns),
    )
    fill_cells(report, results)
    return report


def write_atomically(path: Path, data: str | bytes) -> None:
    """Write through a .tmp file, so that an interrupted run leaves the old file whole."""
    temporary = path.with_name(path.name + ".tmp")
    if isinstance(data, str):
        temporary.write_text(data)
    else:
        temporary.write_bytes(data)
    temporary.replace(path)


def write_outputs(report: Report, out: Path, results: Sequence[Measurement] | None) -> None:
    """The Markdown table to stdout and out/http_bench.md, the JSON (unless None), the chart."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    print("\n" + text)
    written = [out / "http_bench.md"]
    write_atomically(written[0], text)
    if results is not None:
        raw = report_json(report, results, platform.platform())
        written.append(out / "http_bench.json")
        write_atomically(written[-1], json.dumps(raw, indent=2) + "\n")
    png = out / "http_bench.png"
    if chart(report, png):
        written.append(png)
    else:
        print("matplotlib is not installed: no chart (use the bench venv)", file=sys.stderr)
    print("wrote " + ", ".join(str(path) for path in written))


# ----------------------------------------------------------------------------- command line


def _choose(names: str | None, known: Sequence[T], name_of: Callable[[T], str]) -> list[T]:
    if names is None:
        return list(known)
    by_name = {name_of(item): item for item in known}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown: {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in wanted]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; --quick sets shorter durations that explicit flags still override."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", help="comma-separated; default: all")
    parser.add_argument("--workloads", help="comma-separated; default: all")
    parser.add_argument(
        "--quick", action="store_true", help="3 s measurements, 1 s warm-ups, 3 s settle"
    )
    parser.add_argument("--duration", type=int, help="seconds per measurement (default 10)")
    parser.add_argument("--warmup", type=int, help="seconds of warm-up (default 2)")
    parser.add_argument("--settle", type=float, help="seconds given to slow clients (default 5)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat; report the median")
    parser.add_argument("--slow-clients", type=int, default=1000)
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    add_quiet_arguments(parser, quiet_wait=30.0)
    time_wait.add_arguments(parser, before="before a close workload")
    halt_poll.add_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        help="where the report goes (default: bench/results; with --replot, beside the JSON)",
    )
    parser.add_argument("--logs", type=Path, help="where server logs go (default: a temp dir)")
    parser.add_argument(
        "--replot",
        type=Path,
        metavar="JSON",
        help="measure nothing: redraw the table and chart from a saved http_bench.json",
    )
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the parsed command line, checking what pinning needs."""
    quick = args.quick
    pin = not args.no_pin
    if pin and ((os.cpu_count() or 1) < 2 or shutil.which("taskset") is None):
        print("fewer than 2 cores or no taskset: running unpinned", file=sys.stderr)
        pin = False
    logs = args.logs or Path(tempfile.mkdtemp(prefix="http_bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    return Settings(
        duration=args.duration or (3 if quick else 10),
        warmup=args.warmup or (1 if quick else 2),
        settle=args.settle if args.settle is not None else (3.0 if quick else 5.0),
        rounds=max(args.rounds, 1),
        slow_clients=args.slow_clients,
        pin=pin,
        logs=logs,
        quiet_wait=max(args.quiet_wait, 0.0),
        noisy_retries=max(args.noisy_retries, 0),
        time_wait_threshold=max(args.time_wait_threshold, 0),
        time_wait_max=max(args.time_wait_max, 0.0),
        guest_halt_poll_ns=args.guest_halt_poll_ns,
    )


def main(argv: list[str] | None = None) -> int:
    """Measure every chosen server under every chosen workload; write the report."""
    args = parse_args(argv)
    if args.replot is not None:
        out = args.out or args.replot.parent
        write_outputs(report_from_json(json.loads(args.replot.read_text())), out, None)
        return 0
    servers = _choose(args.servers, SERVERS, lambda s: s.name)
    workloads = _choose(args.workloads, WORKLOADS, lambda w: w.name)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    settings = settings_from(args)
    limit = raise_fd_limit()
    if settings.pin:
        # The harness itself waits on the load side, off the server's core.
        os.sched_setaffinity(0, {LOAD_CORE})
    print(f"open files limit {limit}; server logs in {settings.logs}", flush=True)
    with halt_poll.set_to(settings.guest_halt_poll_ns):
        results = run_all(servers, workloads, settings)
        report = build_report(results, servers, workloads, settings)
    write_outputs(report, args.out or BENCH / "results", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
