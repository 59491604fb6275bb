"""Several processes: poolserver --processes 2 against --processes 1, beside gunicorn -w 2.

The handler is CPU-bound: the built-in demo app's `/cpu?ms=1` (`poolserver.demo:app`, what
`python -m poolserver` serves when no app is named) computes for 1 ms holding the GIL, so one
Python process serves at most one core's worth of it, however many worker threads it has.
On this 2-core machine `--processes 2` should then reach at least 1.8x the rate of
`--processes 1`, with the same 16 workers in each process. gunicorn with 2 gthread workers of
16 threads serves the same app beside them, for comparison.

Unlike the other HTTP benchmarks, nothing is pinned: the servers use both cores, and the load
generator, wrk, shares them with the servers. Its share is kept low (1 wrk thread, 32
keep-alive connections) and measured: the report gives the CPU the servers, wrk and other
processes used during each measurement. Every figure is therefore a little below what the
servers would do with both cores to themselves, alike for all of them. The server's CPU is
also split by serving process: wrk's connections, opened once, stay with the process that
accepted them, and a measurement in which one process did nearly all the work is listed.

Each server in turn is started, waited for (poolserver: its "listening on" line, with the port
it chose for `--port 0`, and with several processes each process's "serving" line; gunicorn:
each worker's "Booting worker" line), checked (GET /cpu?ms=1 answers 200 and "computed 1 ms"),
warmed up with wrk, measured with wrk, then sent SIGTERM and waited for until it exits
(SIGKILL only past --stop-timeout). Rounds are interleaved, in an order that rotates with each
round, and each figure is the median over the rounds. Before each server the harness waits (at
most --quiet-wait s) for a quiet machine, and measures again once if other processes took over
0.15 cores meanwhile, keeping the quieter measurement.

Writes bench/results/processes_bench.{md,json}. Run it with the bench venv (`make
bench-processes`), from anywhere; about 4 minutes on a quiet machine:

    .venv-bench/bin/python bench/processes_bench.py [--rounds 5] [--duration 10]
        [--connections 32] [--ms 1] [--servers a,b]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import background_load
import http_bench
from http_bench import HOST, BenchError, ServerStartError, failure, free_port
from wrk_output import WrkOutputError, WrkResult, run_and_parse

BENCH = Path(__file__).resolve().parent
WORKERS = 16  # threads per process, for every server
PROCESSES = 2  # one per core
REFERENCE = "poolserver-1"  # the one every rate is divided by
TARGET_SERVER = f"poolserver-{PROCESSES}"
TARGET_RATIO = 1.8
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 40.0  # poolserver drains for up to drain_timeout (30 s) after SIGTERM
WRK_TIMEOUT = "2s"
NOISE_CORES = 0.15  # others used more than this during a measurement: measure again once
LOPSIDED_SHARE = 0.9  # one serving process did more than this share of the server's work
LISTENING = re.compile(r"listening on http://[^\s:]+:(\d+)")


@dataclass(frozen=True)
class Server:
    """How to run one server, and how to tell from its log that it is ready."""

    name: str
    label: str  # as the table shows it
    distribution: str
    argv: list[str]  # PORT stands for the port
    ready: str  # a regular expression matched against the log's lines
    ready_count: int  # how many lines must match
    port_from_log: bool  # the server picks its port (--port 0) and logs it

    def command(self, port: int | str) -> list[str]:
        """The command line, with the port filled in."""
        return [part.replace("PORT", str(port)) for part in self.argv]


def servers(processes: int) -> list[Server]:
    """poolserver with one process and with `processes`, and gunicorn with as many workers."""
    python = sys.executable

    def poolserver(count: int) -> Server:
        return Server(
            name=f"poolserver-{count}",
            label=f"poolserver --processes {count}",
            distribution="poolserver",
            argv=[
                *(python, "-m", "poolserver", "--host", HOST, "--port", "0"),
                *("--processes", str(count), "--workers", str(WORKERS), "--log-level", "info"),
            ],
            # One process logs "listening on"; a supervisor logs it, then each process's
            # "serving" line once that process can take connections.
            ready=r"poolserver listening on" if count == 1 else r"process p\d+ \(pid \d+\) serving",
            ready_count=1 if count == 1 else count,
            port_from_log=True,
        )

    return [
        poolserver(1),
        poolserver(processes),
        Server(
            name=f"gunicorn-gthread-{processes}",
            label=f"gunicorn -w {processes} -k gthread --threads {WORKERS}",
            distribution="gunicorn",
            argv=[
                *(python, "-m", "gunicorn", "-w", str(processes), "-k", "gthread"),
                *("--threads", str(WORKERS), "-b", f"{HOST}:PORT", "--log-level", "info"),
                "poolserver.demo:app",
            ],
            ready=r"Booting worker with pid",
            ready_count=processes,
            port_from_log=False,
        ),
    ]


@dataclass(frozen=True)
class Settings:
    """The knobs of one run, from the command line."""

    rounds: int
    duration: int
    warmup: int
    connections: int
    ms: float
    quiet_wait: float
    noisy_retries: int
    stop_timeout: float
    logs: Path

    @property
    def path(self) -> str:
        """The URL path every request asks for."""
        return f"/cpu?ms={self.ms:g}"

    def http_settings(self) -> http_bench.Settings:
        """What http_bench.wait_for_quiet reads of a run's settings."""
        return http_bench.Settings(
            duration=self.duration,
            warmup=self.warmup,
            settle=0.0,
            rounds=self.rounds,
            slow_clients=0,
            pin=False,
            logs=self.logs,
            quiet_wait=self.quiet_wait,
            noisy_retries=0,
        )


@dataclass
class Sample:
    """One server measured once; `wrk` is None unless status is "ok"."""

    server: str
    round: int
    status: str  # "ok" or "failed"
    reason: str = ""
    wrk: WrkResult | None = None
    server_cores: float | None = None  # the server's whole process tree
    process_cores: list[float] = field(default_factory=list)  # each serving process, busiest first
    load_cores: float | None = None  # wrk and this harness
    foreign_cores: float | None = None  # everything else on the machine
    exit_code: int | None = None  # after SIGTERM
    stop_s: float | None = None  # from SIGTERM to exit
    killed: bool = False  # it had not exited by --stop-timeout

    @property
    def rate(self) -> float | None:
        """Good (2xx/3xx) responses per second, if measured."""
        return None if self.wrk is None else self.wrk.good_per_s

    def lopsided(self) -> bool:
        """True if one of several serving processes did nearly all the work."""
        total = sum(self.process_cores)
        return (
            len(self.process_cores) > 1
            and total > 0
            and self.process_cores[0] / total > (LOPSIDED_SHARE)
        )

    def noisy(self) -> bool:
        """True if other processes used a noticeable share of the machine meanwhile."""
        return (self.foreign_cores or 0.0) > NOISE_CORES

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields."""
        data = {k: v for k, v in vars(self).items() if k != "wrk"}
        data["wrk"] = None if self.wrk is None else self.wrk.to_json()
        return data


# ----------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Running:
    """A server that is ready: its port, and the process at the top of its tree."""

    port: int
    process: subprocess.Popen[bytes]


def _matches(log: Path, pattern: str | re.Pattern[str]) -> list[re.Match[str]]:
    text = log.read_text(errors="replace")
    return [m for line in text.splitlines() if (m := re.search(pattern, line)) is not None]


def wait_until_ready(server: Server, process: subprocess.Popen[bytes], log: Path, port: int) -> int:
    """Wait for the ready lines (and the logged port): the port; raise if it exits or is late."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerStartError(failure(f"exited with code {process.returncode}", log))
        if server.port_from_log and port == 0 and (found := _matches(log, LISTENING)):
            port = int(found[0].group(1))
        if port and len(_matches(log, server.ready)) >= server.ready_count:
            http_bench.wait_until_accepting(process, port, log, deadline)
            return port
        time.sleep(0.1)
    raise ServerStartError(failure(f"not ready after {START_TIMEOUT_S:.0f} s", log))


def stop(process: subprocess.Popen[bytes], timeout: float, sample: Sample) -> None:
    """SIGTERM the server and wait for it to exit; SIGKILL its group only if it is late."""
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        sample.exit_code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        sample.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        sample.exit_code = process.wait(5.0)
    sample.stop_s = time.monotonic() - started
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # any worker its parent left behind


@contextlib.contextmanager
def serving(server: Server, settings: Settings, sample: Sample) -> Iterator[Running]:
    """Run `server` (unpinned) until the block ends, then stop it with SIGTERM."""
    port = 0 if server.port_from_log else free_port()
    log = settings.logs / f"{server.name}-{sample.round}.log"
    process = http_bench.start_logged(server.command(port), log)
    try:
        port = wait_until_ready(server, process, log, port)
        yield Running(port, process)
        if process.poll() is not None:
            raise BenchError(failure("died while measured", log))
    finally:
        stop(process, settings.stop_timeout, sample)


def check_response(port: int, path: str, ms: float) -> None:
    """GET the CPU-bound path once: raise unless 200 and the demo app's body."""
    expected = b"computed %g ms\n" % ms
    connection = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": "x"})
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:
        raise BenchError(f"GET {path} failed: {error!r}") from error
    finally:
        connection.close()
    if response.status != 200 or body != expected:
        raise BenchError(f"GET {path} answered {response.status} {body[:80]!r}")


def run_wrk(port: int, seconds: int, settings: Settings) -> WrkResult:
    """One wrk run, unpinned, 1 thread; raises WrkOutputError if wrk failed."""
    argv = ["wrk", "-t1", f"-c{settings.connections}", f"-d{seconds}s"]
    argv += ["--timeout", WRK_TIMEOUT, "--latency", f"http://{HOST}:{port}{settings.path}"]
    return run_and_parse(argv, seconds)


# ----------------------------------------------------------------------------- measuring


def measure(server: Server, settings: Settings, round_: int) -> Sample:
    """Wait for a quiet machine, start, check, warm up, measure and stop one server."""
    sample = Sample(server.name, round_, "ok")
    http_bench.wait_for_quiet(settings.http_settings())
    try:
        with serving(server, settings, sample) as running:
            check_response(running.port, settings.path, settings.ms)
            run_wrk(running.port, settings.warmup, settings)
            before = background_load.read()
            started = time.monotonic()
            sample.wrk = run_wrk(running.port, settings.duration, settings)
            after = background_load.read()
            seconds = time.monotonic() - started
            pid = running.process.pid
            sample.server_cores = background_load.tree_cores(before, after, seconds, pid)
            sample.process_cores = serving_process_cores(before, after, seconds, pid)
            ours = background_load.tree_cores(before, after, seconds, os.getpid())
            sample.load_cores = max(ours - sample.server_cores, 0.0)
            sample.foreign_cores = background_load.foreign_cores(before, after, seconds)
    except ServerStartError as error:
        sample.status, sample.reason, sample.wrk = "failed", f"did not start: {error}", None
    except (BenchError, WrkOutputError) as error:
        sample.status, sample.reason, sample.wrk = "failed", str(error), None
    return sample


def serving_process_cores(
    before: background_load.Reading, after: background_load.Reading, seconds: float, pid: int
) -> list[float]:
    """The CPU each serving process used, busiest first: the children of a supervisor (or of
    gunicorn's master), or the server itself when it has none."""
    children = [child for child, p in after.processes.items() if p.ppid == pid]
    tops = children or [pid]
    return sorted(
        (background_load.tree_cores(before, after, seconds, top) for top in tops), reverse=True
    )


def measure_quietest(server: Server, settings: Settings, round_: int) -> Sample:
    """Measure; again while others took CPU meanwhile; keep the quietest measurement."""
    sample = measure(server, settings, round_)
    for _ in range(settings.noisy_retries):
        if sample.status != "ok" or not sample.noisy():
            break
        print(f"(others used {sample.foreign_cores or 0:.2f} cores; again) ", end="", flush=True)
        again = measure(server, settings, round_)
        if again.status == "ok" and (again.foreign_cores or 0) < (sample.foreign_cores or 0):
            sample = again
    return sample


def describe(sample: Sample) -> str:
    """One progress line for a finished measurement."""
    if sample.wrk is None:
        return f"{sample.status}: {sample.reason.splitlines()[0] if sample.reason else ''}"
    errors = sample.wrk.socket_errors + sample.wrk.non_2xx
    stopped = "killed" if sample.killed else f"exit {sample.exit_code} in {sample.stop_s:.1f} s"
    return (
        f"{sample.wrk.good_per_s:,.0f} req/s, p99 {_ms(sample.wrk.p99_s())}, "
        f"cores: server {sample.server_cores or 0:.2f} ({_split(sample.process_cores)}), "
        f"wrk {sample.load_cores or 0:.2f}, "
        f"others {sample.foreign_cores or 0:.2f}"
        + (f", {errors:,} errors/non-2xx" if errors else "")
        + f"; SIGTERM: {stopped}"
    )


def run_all(chosen: Sequence[Server], settings: Settings) -> list[Sample]:
    """Every server in every round; the order rotates by one server each round."""
    samples: list[Sample] = []
    broken: dict[str, str] = {}
    for round_ in range(1, settings.rounds + 1):
        shift = (round_ - 1) % len(chosen)
        for server in [*chosen[shift:], *chosen[:shift]]:
            print(f"[{round_}] {server.name:<20} ", end="", flush=True)
            if server.name in broken:
                sample = Sample(server.name, round_, "failed", broken[server.name])
            else:
                sample = measure_quietest(server, settings, round_)
                if sample.reason.startswith("did not start"):
                    broken[server.name] = sample.reason.splitlines()[0]
            samples.append(sample)
            print(describe(sample), flush=True)
    return samples


# ----------------------------------------------------------------------------- the report


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.1f} ms"


def _split(cores: Sequence[float]) -> str:
    return " + ".join(f"{c:.2f}" for c in cores) or "—"


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


@dataclass
class Row:
    """One server's medians over the rounds it was measured in."""

    server: str
    label: str
    rate: float | None
    rates: list[str]  # each round's rate, † where others used over NOISE_CORES meanwhile
    p99_s: float | None
    server_cores: float | None
    process_cores: list[float]  # the median for the busiest serving process, the next...
    load_cores: float | None
    foreign_cores: float | None
    errors: int
    clean_exits: int
    exits: int
    ratio: float | None = None  # rate / the reference's rate


@dataclass
class Report:
    """The facts of the run, a row per server and the paired ratios of the target."""

    date: str
    cpu_count: int | None
    python: str
    platform: str
    settings: dict[str, Any]
    versions: dict[str, str]
    commands: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    paired: list[tuple[int, float]] = field(default_factory=list)  # (round, target ratio)
    lopsided: list[str] = field(default_factory=list)  # rounds where one process did it all

    @property
    def target_ratio(self) -> float | None:
        """TARGET_SERVER's median rate over REFERENCE's."""
        return next((r.ratio for r in self.rows if r.server == TARGET_SERVER), None)


def build_report(samples: Sequence[Sample], chosen: Sequence[Server], settings: Settings) -> Report:
    """Medians per server, ratios to REFERENCE, and the target ratio round by round."""
    report = Report(
        date=date.today().isoformat(),
        cpu_count=os.cpu_count(),
        python=platform.python_version(),
        platform=platform.platform(),
        settings={
            "rounds": settings.rounds,
            "duration_s": settings.duration,
            "warmup_s": settings.warmup,
            "connections": settings.connections,
            "wrk_threads": 1,
            "path": settings.path,
            "workers_per_process": WORKERS,
            "pinned": False,
        },
        versions=versions(chosen),
        commands={s.name: shlex.join(["python", *s.command("PORT")[1:]]) for s in chosen},
    )
    for server in chosen:
        ok = [s for s in samples if s.server == server.name and s.wrk is not None]
        mine = [s for s in samples if s.server == server.name]
        report.rows.append(
            Row(
                server=server.name,
                label=server.label,
                rate=_median([s.rate for s in ok if s.rate is not None]),
                rates=[f"{s.rate:,.0f}{' †' if s.noisy() else ''}" for s in ok if s.rate],
                p99_s=_median([p for s in ok if s.wrk and (p := s.wrk.p99_s()) is not None]),
                server_cores=_median([s.server_cores for s in ok if s.server_cores is not None]),
                process_cores=[
                    statistics.median(column)
                    for column in zip(*(s.process_cores for s in ok), strict=False)
                ],
                load_cores=_median([s.load_cores for s in ok if s.load_cores is not None]),
                foreign_cores=_median([s.foreign_cores for s in ok if s.foreign_cores is not None]),
                errors=sum(s.wrk.socket_errors + s.wrk.non_2xx for s in ok if s.wrk),
                clean_exits=sum(1 for s in mine if s.exit_code == 0 and not s.killed),
                exits=sum(1 for s in mine if s.exit_code is not None),
            )
        )
    reference = next((r.rate for r in report.rows if r.server == REFERENCE), None)
    for row in report.rows:
        row.ratio = row.rate / reference if row.rate is not None and reference else None
    rates = {(s.server, s.round): s.rate for s in samples if s.rate is not None}
    labels = {server.name: server.label for server in chosen}
    report.lopsided = [
        f"{labels.get(s.server, s.server)}, round {s.round}: {s.rate or 0:,.0f} req/s, "
        f"one process used {s.process_cores[0]:.2f} cores, the other "
        f"{_split(s.process_cores[1:])}"
        for s in samples
        if s.lopsided()
    ]
    report.paired = [
        (r, rates[(TARGET_SERVER, r)] / rates[(REFERENCE, r)])
        for r in range(1, settings.rounds + 1)
        if (TARGET_SERVER, r) in rates and rates.get((REFERENCE, r))
    ]
    return report


def versions(chosen: Sequence[Server]) -> dict[str, str]:
    """Installed versions of the servers measured, and of wrk."""
    found = {s.distribution: http_bench.installed_version(s.distribution) for s in chosen}
    found["wrk"] = http_bench.wrk_version()
    return found


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _cores(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def verdict(report: Report) -> str:
    """The target line: TARGET_SERVER / REFERENCE against TARGET_RATIO."""
    ratio = report.target_ratio
    if ratio is None:
        return f"**{TARGET_SERVER} / {REFERENCE}: no figure** (target ≥ {TARGET_RATIO:g}x)."
    met = "met" if ratio >= TARGET_RATIO else "not met"
    return f"**{TARGET_SERVER} / {REFERENCE} = {ratio:.2f}x: {met}** (target ≥ {TARGET_RATIO:g}x)."


def markdown(report: Report) -> str:
    """The report as Markdown."""
    s = report.settings
    reference = next((r.label for r in report.rows if r.server == REFERENCE), REFERENCE)
    rows = [
        [
            f"{row.label}",
            "—" if row.rate is None else f"{row.rate:,.0f}",
            "—" if row.ratio is None else f"{row.ratio:.2f}x",
            _ms(row.p99_s),
            f"{_cores(row.server_cores)} ({_split(row.process_cores)})",
            _cores(row.load_cores),
            _cores(row.foreign_cores),
            f"{row.errors:,}",
            f"{row.clean_exits} / {row.exits}",
            ", ".join(row.rates) or "—",
        ]
        for row in report.rows
    ]
    lines = [
        "# Several processes: a CPU-bound handler on both cores",
        "",
        f"{report.date} · os.cpu_count() = {report.cpu_count} · Python {report.python} · "
        f"GET {s['path']} (the demo app computes {s['path'].split('=')[-1]} ms holding the GIL) "
        f"· {s['workers_per_process']} worker threads per process · median of {s['rounds']} "
        f"interleaved rounds of {s['duration_s']} s.",
        "",
        "**Nothing is pinned: the servers use both cores, and wrk (1 thread, "
        f"{s['connections']} keep-alive connections) shares them.** The CPU columns say what "
        "each side used while measured (cores, medians); the server's is also split by serving "
        "process, busiest first. †: other processes used over "
        f"{NOISE_CORES:g} cores during that round's measurement (measured again once; the "
        "quieter kept).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in report.versions.items()) + ".",
        "",
        *_table(
            [
                "server",
                "req/s",
                f"ratio to {reference}",
                "p99",
                "CPU: server (by process)",
                "CPU: wrk",
                "CPU: others",
                "errors",
                "exit 0 after SIGTERM",
                "req/s by round",
            ],
            rows,
        ),
        "",
        verdict(report),
    ]
    if report.paired:
        lines += [
            "",
            f"{TARGET_SERVER} / {REFERENCE} round by round: "
            + ", ".join(f"{ratio:.2f}x (round {r})" for r, ratio in report.paired)
            + ".",
        ]
    if report.lopsided:
        lines += [
            "",
            "One process did nearly all the work (over "
            f"{LOPSIDED_SHARE:.0%} of the server's CPU) in these measurements: wrk opens its "
            "keep-alive connections once, at the start, and each stays with the process that "
            "accepted it.",
            "",
            *(f"- {note}" for note in report.lopsided),
        ]
    lines += [
        "",
        "## Commands",
        "",
        *(f"- {name}: `{command}`" for name, command in report.commands.items()),
        "- load: `wrk -t1 "
        f"-c{s['connections']} -d{s['duration_s']}s --timeout {WRK_TIMEOUT} --latency "
        f"http://127.0.0.1:PORT{s['path']}` (after a {s['warmup_s']} s warm-up run)",
    ]
    return "\n".join(lines) + "\n"


def report_json(report: Report, samples: Sequence[Sample]) -> dict[str, Any]:
    """Everything, JSON-ready: the facts, the rows, and every sample."""
    data = {k: v for k, v in vars(report).items() if k != "rows"}
    data["rows"] = [vars(row) for row in report.rows]
    data["target"] = {
        "server": TARGET_SERVER,
        "reference": REFERENCE,
        "ratio": report.target_ratio,
        "at_least": TARGET_RATIO,
        "met": report.target_ratio is not None and report.target_ratio >= TARGET_RATIO,
    }
    data["samples"] = [sample.to_json() for sample in samples]
    return data


def write_outputs(report: Report, samples: Sequence[Sample], out: Path) -> None:
    """The Markdown to stdout and out/processes_bench.md, and the JSON."""
    out.mkdir(parents=True, exist_ok=True)
    text = markdown(report)
    print("\n" + text)
    md, raw = out / "processes_bench.md", out / "processes_bench.json"
    http_bench.write_atomically(md, text)
    http_bench.write_atomically(raw, json.dumps(report_json(report, samples), indent=2) + "\n")
    print(f"wrote {md}, {raw}")


# ----------------------------------------------------------------------------- command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", help="comma-separated names; default: all")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved; report the median")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--ms", type=float, default=1.0, help="milliseconds per request")
    http_bench.add_quiet_arguments(parser, quiet_wait=60.0)
    parser.add_argument(
        "--stop-timeout",
        type=float,
        default=STOP_TIMEOUT_S,
        help="seconds a server may take to exit after SIGTERM before it is killed",
    )
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--logs", type=Path, help="where server logs go (default: a temp dir)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure each server in each round; write the report."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    known = servers(PROCESSES)
    chosen = known
    if args.servers is not None:
        by_name = {s.name: s for s in known}
        wanted = [n.strip() for n in args.servers.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in by_name]
        if unknown:
            raise SystemExit(f"unknown: {', '.join(unknown)}; known: {', '.join(by_name)}")
        chosen = [by_name[n] for n in wanted]
    logs = args.logs or Path(tempfile.mkdtemp(prefix="processes_bench-"))
    logs.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        rounds=max(args.rounds, 1),
        duration=max(args.duration, 1),
        warmup=max(args.warmup, 1),
        connections=max(args.connections, 1),
        ms=max(args.ms, 0.0),
        quiet_wait=max(args.quiet_wait, 0.0),
        noisy_retries=max(args.noisy_retries, 0),
        stop_timeout=max(args.stop_timeout, 1.0),
        logs=logs,
    )
    limit = http_bench.raise_fd_limit()
    print(
        f"open files limit {limit}; server logs in {logs}\n"
        "not pinned: the servers use both cores and wrk (1 thread) shares them",
        flush=True,
    )
    samples = run_all(chosen, settings)
    write_outputs(build_report(samples, chosen, settings), samples, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
