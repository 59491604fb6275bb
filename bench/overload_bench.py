"""Overload benchmark: poolserver and its peers at 3x capacity, under open-loop arrivals.

wrk is closed-loop: each connection sends its next request only once the last one is
answered, so a server that slows down also slows the arrivals, and overload never shows.
Here requests arrive at a fixed rate whatever the server does (bench/open_loop.py), as real
users do: 4,800 requests/s, each on a new connection, for 10 s, at an app that blocks 10 ms
(`bench.apps:sleep10`) on 16 worker threads: capacity 1,600/s. Each client waits at most
10 s; latencies count from the scheduled send time.

Each server in turn is started pinned to core 0 (`taskset -c 0`), waited for, checked (GET /
answers 200 and the body), warmed up for 1 s at half capacity, loaded, and stopped; the
generator's processes run on core 1. First comes nginx (if installed) answering at once: it
shows what the generator itself sustains with all its bookkeeping. Then poolserver (with
`--max-queue-wait 0.5`, under its default `wait` overload policy and under `reject`),
waitress, gunicorn gthread, cheroot and granian, all with 16 threads, and uvicorn, which
serves ASGI only: its app awaits `asyncio.sleep(0.01)`, and `--limit-concurrency` bounds it.
uvicorn counts open connections toward that limit, including those it is about to refuse, so
a limit of 16 gives it fewer than 16 requests at once: measured at 4,800/s offered on a quiet
machine, limits of 16, 17, 18, 20 and 24 gave ~1,450, ~1,565, ~1,650, ~1,810 and ~2,140
200s/s. 17 is the limit whose capacity is closest to 1,600/s without going over
(--uvicorn-limit to change it).

For every server: goodput (200s/s), p50/p99 of the 200s, 503s and how many carried
Retry-After, client time-outs, resets, refusals, other errors, the achieved offered rate, and
for poolserver PASS/FAIL against its targets, and the kernel's TCP counters (bench/
tcp_counters.py), which tell a full accept queue from a full machine.

TIME_WAIT: every request's connection leaves a socket in TIME_WAIT for 60 s, up to ~50,000 a
server, and a machine full of them slows every new connection down. Before each server the
harness waits (at most --time-wait-max s) until fewer than --time-wait-threshold are left
(bench/time_wait.py), and records the count as the arrivals begin. The servers' order can be
turned with --rotate N (start at the Nth), so that successive runs do not measure the same
server last.

Idle halts: the report records the KVM guest's halt polling, which sets what waking an idle
core costs (bench/halt_poll.py); `--guest-halt-poll-ns` sets it for the run and restores it.

Other processes' CPU time is measured during the arrivals (bench/background_load.py): the
harness waits (up to --quiet-wait) for a quiet machine before each server, measures a server
again once if others took over 0.15 cores meanwhile (until --retry-budget seconds into the
run), keeps the quieter measurement, and flags what stays noisy: on two cores, a busy
neighbour makes the generator late and the servers slow.

Writes bench/results/overload_bench.{md,json,png}. Run it with the bench venv, from anywhere:
about 3.5 minutes on a quiet machine plus up to a minute per server for TIME_WAIT to drain,
more with every retry:

    .venv-bench/bin/python bench/overload_bench.py [--servers a,b] [--no-baseline]
        [--rate 4800] [--duration 10] [--timeout 10] [--uvicorn-limit 17] [--noisy-retries 1]
        [--guest-halt-poll-ns NS]
    .venv-bench/bin/python bench/overload_bench.py --replot bench/results/overload_bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import background_load
import halt_poll
import http_bench
import tcp_counters
import time_wait
from apps import SLEEP_BODY, SLEEP_SECONDS
from http_bench import (
    HOST,
    LOAD_CORE,
    SERVER_CORE,
    THREADS,
    BenchError,
    Running,
    Server,
    ServerStartError,
)
from open_loop import processes_needed, run_load, start_load
from overload_report import (
    BASELINE,
    Report,
    Row,
    chart,
    markdown,
    report_from_json,
    summarize,
)

BENCH = Path(__file__).resolve().parent
CAPACITY = THREADS / SLEEP_SECONDS
MAX_QUEUE_WAIT_S = 0.5
UVICORN_LIMIT = 17
WARMUP_TIMEOUT_S = 2.0
BASELINE_BODY = b"ok\n"
NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server {{
        listen {host}:{port} backlog=4096;
        location / {{ return 200 "ok\\n"; }}
    }}
}}
"""
# Starts a server when entered, stops it on leaving.
Serve = Callable[[], AbstractContextManager[Running]]
# The workload that http_bench.serving needs: which app, and the name of the server's log.
WORKLOAD = http_bench.Workload("overload", "sleep10", 0)


# ----------------------------------------------------------------------------- servers


def _peer(name: str) -> Server:
    return next(server for server in http_bench.SERVERS if server.name == name)


def _with_args(base: Server, name: str, extra: Sequence[str], app: str) -> Server:
    """http_bench's command line for `base`, with more arguments and the sleep10 app."""
    return dataclasses.replace(
        base,
        name=name,
        args=lambda target, port: [*base.args(target, port), *extra],
        apps={"sleep10": app},
    )


def servers(uvicorn_limit: int) -> list[Server]:
    """The servers measured, in order: the command lines of http_bench.py, plus overload knobs."""
    wsgi = "bench.apps:sleep10"
    pool = ["--max-queue-wait", f"{MAX_QUEUE_WAIT_S:g}"]
    return [
        _with_args(_peer("poolserver"), "poolserver", pool, wsgi),
        _with_args(
            _peer("poolserver"), "poolserver-reject", [*pool, "--overload-policy", "reject"], wsgi
        ),
        *(_with_args(_peer(n), n, [], wsgi) for n in ("waitress", "gunicorn-gthread", "cheroot")),
        _with_args(_peer("granian"), "granian", [], wsgi),
        _with_args(
            _peer("uvicorn"),
            "uvicorn",
            ["--limit-concurrency", str(uvicorn_limit)],
            "bench.apps:sleep10_asgi",
        ),
    ]


@dataclass(frozen=True)
class Options:
    """The knobs of one run, from the command line."""

    rate: float
    duration: float
    timeout: float
    warmup: float
    processes: int | None
    uvicorn_limit: int
    pin: bool
    logs: Path
    quiet_wait: float
    noisy_retries: int
    retry_budget: float  # seconds from the start after which no measurement is repeated
    time_wait_threshold: int = time_wait.THRESHOLD
    time_wait_max: float = time_wait.MAX_WAIT_S
    guest_halt_poll_ns: int | None = None  # None: as the machine has it

    def http_settings(self) -> http_bench.Settings:
        """What http_bench's helpers (serving, wait_for_quiet) read of a run's settings."""
        return http_bench.Settings(
            duration=round(self.duration),
            warmup=0,
            settle=0.0,
            rounds=1,
            slow_clients=0,
            pin=self.pin,
            logs=self.logs,
            quiet_wait=self.quiet_wait,
            noisy_retries=0,
        )


@contextlib.contextmanager
def nginx_serving(options: Options) -> Iterator[Running]:
    """nginx answering 200 at once, on core 0: what the generator sustains at best."""
    nginx = shutil.which("nginx")
    if nginx is None:
        raise ServerStartError("nginx is not installed: the generator is not calibrated")
    port = http_bench.free_port()
    conf = options.logs / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=options.logs, host=HOST, port=port))
    log = options.logs / f"{BASELINE}.log"
    argv = [nginx, "-p", str(options.logs), "-c", str(conf), "-e", "stderr"]
    argv = http_bench.pinned(SERVER_CORE, argv, options.http_settings())
    process = http_bench.start_logged(argv, log)
    try:
        http_bench.wait_until_accepting(process, port, log)
        yield Running(port, process.pid)
    finally:
        http_bench.stop_group(process)


# ----------------------------------------------------------------------------- measuring


def warm_up(port: int, options: Options) -> None:
    """Half the capacity for a moment: threads started, code paths warm, nothing queued."""
    if options.warmup > 0:
        run_load(
            HOST,
            port,
            CAPACITY / 2,
            options.warmup,
            WARMUP_TIMEOUT_S,
            processes=1,
            core=_load_core(options),
        )


def _load_core(options: Options) -> int | None:
    return LOAD_CORE if options.pin else None


def _sleep_until(moment: float) -> None:
    time.sleep(max(moment - time.monotonic(), 0.0))


def loaded(name: str, running: Running, options: Options) -> Row:
    """The measured load on a running server, with the CPU used during the arrivals."""
    counted = tcp_counters.read()
    waiting = time_wait.count()
    run = start_load(
        HOST,
        running.port,
        options.rate,
        options.duration,
        options.timeout,
        processes=options.processes,
        core=_load_core(options),
    )
    _sleep_until(run.start_at)
    before = background_load.read()
    _sleep_until(run.end_at)
    after = background_load.read()
    load = run.wait()
    kernel = tcp_counters.difference(counted, tcp_counters.read())
    seconds = run.end_at - run.start_at
    server = background_load.tree_cores(before, after, seconds, running.pid)
    everything_ours = background_load.tree_cores(before, after, seconds, os.getpid())
    return Row(
        name,
        "ok",
        summary=summarize(load),
        server_cores=server,
        generator_cores=max(everything_ours - server, 0.0),  # the generator, and us
        foreign_cores=background_load.foreign_cores(before, after, seconds),
        kernel=kernel,
        time_wait_at_start=waiting,
    )


def measure(name: str, serve: Serve, body: bytes, options: Options) -> Row:
    """Start a server, check it, warm it up, load it, stop it; a failed row if any step fails."""
    waited = time_wait.wait_below(options.time_wait_threshold, options.time_wait_max)
    print(waited.describe(options.time_wait_threshold), end="", flush=True)
    try:
        http_bench.wait_for_quiet(options.http_settings())
        with serve() as running:
            http_bench.check_response(running.port, body)
            warm_up(running.port, options)
            row = loaded(name, running, options)
    except BenchError as error:
        row = Row(name, "failed", reason=str(error))
    row.time_wait_found = waited.before
    row.time_wait_waited_s = waited.seconds
    return row


def measure_quietest(
    name: str, serve: Serve, body: bytes, options: Options, retry_until: float
) -> Row:
    """Measure; again while other processes took CPU meanwhile (and time is left): the quietest."""
    row = measure(name, serve, body, options)
    for _ in range(options.noisy_retries):
        if not row.noisy() or time.monotonic() > retry_until:
            break
        print(f"(others used {row.foreign_cores or 0:.2f} cores; again) ", end="", flush=True)
        again = measure(name, serve, body, options)
        if again.summary is not None and (again.foreign_cores or 0) < (row.foreign_cores or 0):
            row = again
    return row


def describe(row: Row) -> str:
    """One progress line for a finished server."""
    s = row.summary
    if s is None:
        return f"{row.status}: {row.reason.splitlines()[0] if row.reason else ''}"
    return (
        f"offered {s.achieved_rate:,.0f}/s, goodput {s.goodput:,.0f}/s, "
        f"p99 {(s.ok_p99_s or 0) * 1000:,.0f} ms, 503 {s.rejected:,} "
        f"({s.rejected_retry_after:,} Retry-After), time-outs {s.timeouts:,}, "
        f"server {row.server_cores or 0:.2f} cores, TIME_WAIT {row.time_wait_at_start or 0:,} "
        "at start"
    )


def run_all(
    chosen: Sequence[Server], baseline: bool, options: Options, rotate: int = 0
) -> list[Row]:
    """The baseline (if asked), then every chosen server, one at a time, from the `rotate`th."""
    settings = options.http_settings()
    plan: list[tuple[str, Serve, bytes]] = []
    if baseline:
        plan.append((BASELINE, lambda: nginx_serving(options), BASELINE_BODY))
    shift = rotate % len(chosen) if chosen else 0
    order = [*chosen[shift:], *chosen[:shift]]
    plan.extend((s.name, _server_context(s, settings), SLEEP_BODY) for s in order)
    rows: list[Row] = []
    retry_until = time.monotonic() + options.retry_budget
    for name, serve, body in plan:
        print(f"{name:<18} ", end="", flush=True)
        row = measure_quietest(name, serve, body, options, retry_until)
        print(describe(row), flush=True)
        rows.append(row)
    return rows


def _server_context(server: Server, settings: http_bench.Settings) -> Serve:
    return lambda: http_bench.serving(server, WORKLOAD, settings)


# ----------------------------------------------------------------------------- output


def versions(chosen: Sequence[Server], baseline: bool) -> dict[str, str]:
    """Installed versions of the servers measured (and of nginx)."""
    found = {server.name: http_bench.installed_version(server.distribution) for server in chosen}
    nginx = shutil.which("nginx")
    if baseline and nginx is not None:
        done = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        found[BASELINE] = (done.stderr or done.stdout).strip().rpartition("/")[2]
    return found


def commands(chosen: Sequence[Server], options: Options) -> dict[str, str]:
    """Each server's command line, with PORT for the port, as the report shows it."""
    shown: dict[str, str] = {}
    for server in chosen:
        launcher = server.launcher() or [server.module]
        launcher = ["python", *launcher[1:]] if launcher[0] == sys.executable else launcher
        argv = [*launcher, *server.args(server.apps["sleep10"], "PORT")]
        shown[server.name] = shlex.join(
            http_bench.pinned(SERVER_CORE, argv, options.http_settings())
        )
    generator = ["python", "bench/open_loop.py", "--port", "PORT", "--rate", f"{options.rate:g}"]
    generator += ["--duration", f"{options.duration:g}", "--timeout", f"{options.timeout:g}"]
    processes = max(options.processes or 0, processes_needed(options.rate, options.timeout))
    generator += ["--processes", str(processes)]
    shown["generator"] = shlex.join(generator + (["--core", str(LOAD_CORE)] if options.pin else []))
    return shown


def build_report(
    rows: Sequence[Row], chosen: Sequence[Server], baseline: bool, options: Options, command: str
) -> Report:
    """The run's facts around its rows."""
    return Report(
        date=date.today().isoformat(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        platform=platform.platform(),
        rate=options.rate,
        duration_s=options.duration,
        timeout_s=options.timeout,
        workers=THREADS,
        capacity=CAPACITY,
        max_queue_wait_s=MAX_QUEUE_WAIT_S,
        uvicorn_limit=options.uvicorn_limit,
        pinned=options.pin,
        time_wait_threshold=options.time_wait_threshold,
        time_wait_max_s=options.time_wait_max,
        halt_poll=halt_poll.describe(options.guest_halt_poll_ns),
        command=command,
        versions=versions(chosen, baseline),
        commands=commands(chosen, options),
        rows=list(rows),
    )


def write_outputs(report: Report, out: Path) -> None:
    """The Markdown to stdout and out/overload_bench.md, the JSON, and the chart."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    print("\n" + text)
    written = [out / "overload_bench.md", out / "overload_bench.json"]
    http_bench.write_atomically(written[0], text)
    http_bench.write_atomically(written[1], json.dumps(report.to_json(), indent=1) + "\n")
    png = out / "overload_bench.png"
    if chart(report, png):
        written.append(png)
    else:
        print("matplotlib is not installed: no chart (use the bench venv)", file=sys.stderr)
    print("wrote " + ", ".join(str(path) for path in written))


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", help="comma-separated; default: all")
    parser.add_argument("--no-baseline", action="store_true", help="skip the nginx baseline")
    parser.add_argument("--rate", type=float, default=3 * CAPACITY, help="requests/s offered")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals")
    parser.add_argument("--timeout", type=float, default=10.0, help="client time-out, seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds at half capacity")
    parser.add_argument("--processes", type=int, help="generator processes (default: enough)")
    parser.add_argument("--uvicorn-limit", type=int, default=UVICORN_LIMIT)
    parser.add_argument("--no-pin", action="store_true", help="do not pin with taskset")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="seconds to wait, before each server, for other processes to quiet down",
    )
    parser.add_argument(
        "--noisy-retries",
        type=int,
        default=1,
        help="measure a server again when other processes took over 0.15 cores meanwhile",
    )
    parser.add_argument(
        "--retry-budget",
        type=float,
        default=200.0,
        help="seconds into the run after which no server is measured again",
    )
    time_wait.add_arguments(parser, before="before each server")
    halt_poll.add_arguments(parser)
    parser.add_argument(
        "--rotate",
        type=int,
        default=0,
        help="start with the Nth server (after the baseline), then go round",
    )
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
        help="measure nothing: write the table and chart again from a saved overload_bench.json",
    )
    return parser.parse_args(argv)


def _choose(names: str | None, known: Sequence[Server]) -> list[Server]:
    if names is None:
        return list(known)
    by_name = {server.name: server for server in known}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown: {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in wanted]


def options_from(args: argparse.Namespace) -> Options:
    """Options from the parsed command line, checking what pinning needs."""
    pin = not args.no_pin
    if pin and ((os.cpu_count() or 1) < 2 or shutil.which("taskset") is None):
        print("fewer than 2 cores or no taskset: running unpinned", file=sys.stderr)
        pin = False
    logs = args.logs or Path(tempfile.mkdtemp(prefix="overload_bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    return Options(
        rate=args.rate,
        duration=args.duration,
        timeout=args.timeout,
        warmup=max(args.warmup, 0.0),
        processes=args.processes,
        uvicorn_limit=args.uvicorn_limit,
        pin=pin,
        logs=logs.resolve(),
        quiet_wait=max(args.quiet_wait, 0.0),
        noisy_retries=max(args.noisy_retries, 0),
        retry_budget=args.retry_budget,
        time_wait_threshold=max(args.time_wait_threshold, 0),
        time_wait_max=max(args.time_wait_max, 0.0),
        guest_halt_poll_ns=args.guest_halt_poll_ns,
    )


def main(argv: list[str] | None = None) -> int:
    """Load every chosen server in turn; write the report."""
    args = parse_args(argv)
    if args.replot is not None:
        out = args.out or args.replot.parent
        write_outputs(report_from_json(json.loads(args.replot.read_text())), out)
        return 0
    options = options_from(args)
    chosen = _choose(args.servers, servers(options.uvicorn_limit))
    baseline = not args.no_baseline
    limit = http_bench.raise_fd_limit()
    if options.pin:
        # The harness waits on the generator's side, off the server's core.
        os.sched_setaffinity(0, {LOAD_CORE})
    print(f"open files limit {limit}; server logs in {options.logs}", flush=True)
    command = shlex.join(
        ["python", "bench/overload_bench.py", *(sys.argv[1:] if argv is None else argv)]
    )
    with halt_poll.set_to(options.guest_halt_poll_ns):
        rows = run_all(chosen, baseline, options, args.rotate)
        report = build_report(rows, chosen, baseline, options, command)
    write_outputs(report, args.out or BENCH / "results")
    return 0


if __name__ == "__main__":
    sys.exit(main())
