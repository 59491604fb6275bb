"""The results of bench/http_bench.py: what one measurement holds, the Markdown tables, the chart.

Every figure shown is a rate of good (2xx/3xx) responses, so a server answering errors fast
does not look fast; errors are counted in a table of their own and flagged beside the rate.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wrk_output import WrkResult

REFERENCE = "poolserver"
# poolserver with its admin listener on and scraped while measured: compared with REFERENCE on
# one workload only, as the metrics overhead, and left out of the peer ratios.
METRICS = "poolserver-metrics"
METRICS_WORKLOAD = "hello-keepalive"
METRICS_TOLERANCE = 0.05  # the target: metrics on within 5% of metrics off
VARIANTS = frozenset({METRICS})
# A cell is flagged when more than this share of its requests failed or came back non-2xx.
ERROR_FLAG_SHARE = 0.001
# ... or when other processes used more than this many cores while it was measured: on two
# cores, any of it may have been taken from the server's.
NOISE_FLAG_CORES = 0.15


@dataclass
class SlowClientStats:
    """What the slow-client generator reported while wrk was measuring beside it."""

    clients: int
    ready_open: int | None = None
    open_min: int | None = None
    open_max: int | None = None
    closed_by_server: int | None = None


@dataclass
class ScrapeStats:
    """What the harness's scraper got from the admin listener while wrk was measuring."""

    metrics_ok: int = 0  # GET /metrics answered 200
    readyz_ready: int = 0  # GET /readyz answered 200
    readyz_not_ready: int = 0  # GET /readyz answered 503: a balancer would have held traffic
    failed: int = 0  # no answer in time, a refused or reset connection, or another status
    slowest_s: float = 0.0
    metrics_bytes: int = 0  # the size of the last /metrics page

    @property
    def answered(self) -> int:
        """Scrapes that got an expected answer."""
        return self.metrics_ok + self.readyz_ready + self.readyz_not_ready


@dataclass
class Measurement:
    """One server under one workload in one round; `wrk` is None unless status is "ok"."""

    server: str
    workload: str
    round: int
    status: str  # "ok", "skipped" (not run) or "failed" (run, but no usable figure)
    reason: str = ""
    wrk: WrkResult | None = None
    alone: WrkResult | None = None  # slow-clients: the same server, before the slow clients
    # slow-clients: the same server, beside the slow clients trickling into a socket nobody
    # reads: what their generator costs wrk's core, the server doing nothing for them.
    control: WrkResult | None = None
    slow: SlowClientStats | None = None
    keepalive: bool | None = None
    closes: bool | None = None  # hello-close: did the server close on `Connection: close`?
    # Cores' worth of CPU that other processes used while wrk measured (the worst window),
    # and that the server used (the last window).
    foreign_cores: float | None = None
    server_cores: float | None = None
    load_cores: float | None = None  # wrk, the slow clients and the harness
    scrapes: ScrapeStats | None = None  # poolserver-metrics: the admin scrapes meanwhile
    # Sockets in TIME_WAIT: when the harness began to wait for them to go (close workloads
    # only), how long it waited, and how many there were as the measuring wrk run began.
    time_wait_found: int | None = None
    time_wait_waited_s: float | None = None
    time_wait_at_start: int | None = None

    @property
    def rate(self) -> float | None:
        """Good responses per second, or None when there is no figure."""
        return None if self.wrk is None else self.wrk.good_per_s

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields, with wrk's results expanded."""
        return {
            "server": self.server,
            "workload": self.workload,
            "round": self.round,
            "status": self.status,
            "reason": self.reason,
            "keepalive": self.keepalive,
            "closes_on_connection_close": self.closes,
            "foreign_cores": self.foreign_cores,
            "server_cores": self.server_cores,
            "load_cores": self.load_cores,
            "wrk": None if self.wrk is None else self.wrk.to_json(),
            "alone": None if self.alone is None else self.alone.to_json(),
            "control": None if self.control is None else self.control.to_json(),
            "slow_clients": None if self.slow is None else vars(self.slow),
            "scrapes": None if self.scrapes is None else vars(self.scrapes),
            "time_wait_found": self.time_wait_found,
            "time_wait_waited_s": self.time_wait_waited_s,
            "time_wait_at_start": self.time_wait_at_start,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Measurement:
        """The inverse of to_json."""

        def wrk(key: str) -> WrkResult | None:
            return None if data.get(key) is None else WrkResult.from_json(data[key])

        slow = data.get("slow_clients")
        scrapes = data.get("scrapes")
        return cls(
            server=data["server"],
            workload=data["workload"],
            round=data["round"],
            status=data["status"],
            reason=data.get("reason", ""),
            wrk=wrk("wrk"),
            alone=wrk("alone"),
            control=wrk("control"),
            slow=None if slow is None else SlowClientStats(**slow),
            keepalive=data.get("keepalive"),
            closes=data.get("closes_on_connection_close"),
            foreign_cores=data.get("foreign_cores"),
            server_cores=data.get("server_cores"),
            load_cores=data.get("load_cores"),
            scrapes=None if scrapes is None else ScrapeStats(**scrapes),
            time_wait_found=data.get("time_wait_found"),
            time_wait_waited_s=data.get("time_wait_waited_s"),
            time_wait_at_start=data.get("time_wait_at_start"),
        )


@dataclass
class Report:
    """Everything a report needs: the header facts, the grid, and the median measurements."""

    date: str
    cpu_count: int | None
    python: str
    duration_s: int
    rounds: int
    servers: list[str]
    workloads: list[str]
    sleep_bound: float
    slow_clients: int
    versions: dict[str, str] = field(default_factory=dict)
    commands: dict[str, str] = field(default_factory=dict)
    cells: dict[tuple[str, str], Measurement] = field(default_factory=dict)
    # METRICS / REFERENCE under METRICS_WORKLOAD, round by round (rounds with both figures).
    metrics_ratios: list[tuple[int, float]] = field(default_factory=list)
    time_wait_threshold: int | None = None
    time_wait_max_s: float | None = None
    halt_poll: str | None = None  # halt_poll.describe(): what waking an idle core cost

    def cell(self, workload: str, server: str) -> Measurement | None:
        """The (median) measurement of `server` under `workload`, if any."""
        return self.cells.get((workload, server))


def fill_cells(report: Report, results: Sequence[Measurement]) -> None:
    """Put the median measurement of each (workload, server) of `results` into the report."""
    for workload in report.workloads:
        for server in report.servers:
            samples = [m for m in results if (m.workload, m.server) == (workload, server)]
            if samples:
                report.cells[(workload, server)] = median_measurement(samples)
    report.metrics_ratios = paired_ratios(results, METRICS_WORKLOAD, METRICS, REFERENCE)


def paired_ratios(
    results: Sequence[Measurement], workload: str, ours: str, theirs: str
) -> list[tuple[int, float]]:
    """(round, rate of `ours` / rate of `theirs`) for each round in which both have a rate."""
    rates: dict[tuple[str, int], float] = {
        (m.server, m.round): m.rate
        for m in results
        if m.workload == workload and m.rate is not None
    }
    rounds = sorted({r for (_, r) in rates})
    return [
        (r, rates[(ours, r)] / rates[(theirs, r)])
        for r in rounds
        if (ours, r) in rates and rates.get((theirs, r))
    ]


def report_json(report: Report, results: Sequence[Measurement], platform: str) -> dict[str, Any]:
    """The raw results: the run's facts and every measurement of every round."""
    return {
        "date": report.date,
        "cpu_count": report.cpu_count,
        "python": report.python,
        "platform": platform,
        "duration_s": report.duration_s,
        "rounds": report.rounds,
        "servers": report.servers,
        "workloads": report.workloads,
        "slow_clients": report.slow_clients,
        "sleep_bound_per_s": report.sleep_bound,
        "time_wait_threshold": report.time_wait_threshold,
        "time_wait_max_s": report.time_wait_max_s,
        "halt_poll": report.halt_poll,
        "versions": report.versions,
        "commands": report.commands,
        "measurements": [m.to_json() for m in results],
    }


def report_from_json(raw: dict[str, Any]) -> Report:
    """Rebuild the report that report_json saved, to draw it again without measuring."""
    results = [Measurement.from_json(m) for m in raw["measurements"]]
    report = Report(
        date=raw["date"],
        cpu_count=raw["cpu_count"],
        python=raw["python"],
        duration_s=raw["duration_s"],
        rounds=raw["rounds"],
        # Older files lack the two lists: the order of first appearance is the run's order.
        servers=raw.get("servers") or list(dict.fromkeys(m.server for m in results)),
        workloads=raw.get("workloads") or list(dict.fromkeys(m.workload for m in results)),
        sleep_bound=raw["sleep_bound_per_s"],
        slow_clients=raw["slow_clients"],
        versions=raw["versions"],
        commands=raw["commands"],
        time_wait_threshold=raw.get("time_wait_threshold"),
        time_wait_max_s=raw.get("time_wait_max_s"),
        halt_poll=raw.get("halt_poll"),
    )
    fill_cells(report, results)
    return report


def median_measurement(samples: Sequence[Measurement]) -> Measurement:
    """The sample with the median rate (the lower one of an even count); a failure if no rate."""
    rated = sorted((m for m in samples if m.rate is not None), key=lambda m: m.rate or 0.0)
    if not rated:
        return samples[-1]
    return rated[(len(rated) - 1) // 2]


# ----------------------------------------------------------------------------- formatting


def _main(m: Measurement | None) -> WrkResult | None:
    return None if m is None else m.wrk


def _alone(m: Measurement | None) -> WrkResult | None:
    return None if m is None else m.alone


def _control(m: Measurement | None) -> WrkResult | None:
    return None if m is None else m.control


# The three wrk runs of slow-clients, in the order measured: (row label, the run).
SLOW_RUNS: list[tuple[str, Callable[[Measurement | None], WrkResult | None]]] = [
    ("slow-clients: wrk alone", _alone),
    ("slow-clients: control (the clients trickle into a sink)", _control),
    ("slow-clients: with slow clients", _main),
]


def _good(result: WrkResult | None) -> float:
    return 0.0 if result is None else result.good_per_s


def _rate_of(m: Measurement | None) -> float | None:
    return None if m is None else m.rate


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.0f} s"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None:
        return "—"
    if theirs == 0:
        return "∞ (peer 0/s)" if ours > 0 else "— (both 0/s)"
    return f"{ours / theirs:.2f}x"


def noisy(m: Measurement | None) -> bool:
    """True if other processes used a noticeable share of the machine during `m`."""
    return m is not None and (m.foreign_cores or 0.0) > NOISE_FLAG_CORES


def _troubled(result: WrkResult | None) -> bool:
    if result is None:
        return False
    bad = result.socket_errors + result.non_2xx
    return bad > 0 and (result.requests == 0 or bad / result.requests > ERROR_FLAG_SHARE)


def _errors(m: Measurement | None, result: WrkResult | None) -> str:
    if m is None or result is None:
        return _missing(m)
    parts = [
        f"{label} {count:,}"
        for label, count in (
            ("connect", result.connect_errors),
            ("read", result.read_errors),
            ("write", result.write_errors),
            ("timeout", result.timeouts),
            ("non-2xx", result.non_2xx),
        )
        if count
    ]
    return ", ".join(parts) if parts else "0"


def _missing(m: Measurement | None) -> str:
    if m is None:
        return "—"
    return "n/a" if m.status == "skipped" else "failed"


def _rate_cell(m: Measurement | None, result: WrkResult | None) -> str:
    if m is None or result is None:
        return _missing(m)
    flag = " ⚠" if _troubled(result) or m.closes is False else ""
    flag += " †" if noisy(m) else ""
    return f"{_rate(result.good_per_s)}{flag}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


# ----------------------------------------------------------------------------- tables


def _rate_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for workload in report.workloads:
        cells = [report.cell(workload, s) for s in report.servers]
        if workload == "sleep10":
            row = [f"sleep10 (bound {report.sleep_bound:,.0f}/s)"]
            for m in cells:
                text = _rate_cell(m, _main(m))
                if m is not None and m.rate is not None:
                    text += f" ({m.rate / report.sleep_bound:.0%})"
                row.append(text)
            rows.append(row)
        elif workload == "slow-clients":
            rows += [[label, *(_rate_cell(m, run(m)) for m in cells)] for label, run in SLOW_RUNS]
            label = f"slow-clients: kept (with / alone; {REFERENCE}'s target ≥ 90%)"
            rows.append([label, *(_kept(m, _alone(m)) for m in cells)])
            label = "slow-clients: kept of the control (with / control)"
            rows.append([label, *(_kept(m, _control(m)) for m in cells)])
        else:
            rows.append([workload, *(_rate_cell(m, _main(m)) for m in cells)])
    return rows


def _kept(m: Measurement | None, before: WrkResult | None) -> str:
    if m is None or m.wrk is None or before is None or before.good_per_s == 0:
        return _missing(m) if m is None or m.wrk is None else "—"
    return f"{m.wrk.good_per_s / before.good_per_s:.0%}"


def _ratio_rows(report: Report, peers: Sequence[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    for workload in report.workloads:
        ours = report.cell(workload, REFERENCE)
        label = workload
        if workload == "slow-clients":
            label = f"slow-clients (with {report.slow_clients:,} slow clients)"
        row = [label]
        for peer in peers:
            theirs = report.cell(workload, peer)
            row.append(_ratio(_rate_of(ours), _rate_of(theirs)))
        rows.append(row)
    return rows


def _p99_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for workload in report.workloads:
        cells = [report.cell(workload, s) for s in report.servers]
        if workload == "slow-clients":
            rows += [[label, *(_p99(m, run(m)) for m in cells)] for label, run in SLOW_RUNS]
        else:
            rows.append([workload, *(_p99(m, _main(m)) for m in cells)])
    return rows


def _p99(m: Measurement | None, result: WrkResult | None) -> str:
    if m is None or result is None:
        return _missing(m)
    return _ms(result.p99_s())


def _cpu_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for workload in report.workloads:
        row = [workload if workload != "slow-clients" else "slow-clients (with slow clients)"]
        for server in report.servers:
            m = report.cell(workload, server)
            if m is None or m.wrk is None:
                row.append(_missing(m))
            else:
                figures = (m.server_cores, m.load_cores, m.foreign_cores)
                row.append(" / ".join("—" if f is None else f"{f:.2f}" for f in figures))
        rows.append(row)
    return rows


def _error_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for workload in report.workloads:
        cells = [report.cell(workload, s) for s in report.servers]
        if workload == "slow-clients":
            rows += [[label, *(_errors(m, run(m)) for m in cells)] for label, run in SLOW_RUNS]
        else:
            rows.append([workload, *(_errors(m, _main(m)) for m in cells)])
    return rows


def metrics_overhead(report: Report) -> float | None:
    """METRICS / REFERENCE under METRICS_WORKLOAD, from the median cells; None if either lacks."""
    ours = _rate_of(report.cell(METRICS_WORKLOAD, METRICS))
    theirs = _rate_of(report.cell(METRICS_WORKLOAD, REFERENCE))
    return None if ours is None or not theirs else ours / theirs


def _metrics_section(report: Report) -> list[str]:
    if METRICS not in report.servers or REFERENCE not in report.servers:
        return []
    off, on = report.cell(METRICS_WORKLOAD, REFERENCE), report.cell(METRICS_WORKLOAD, METRICS)
    ratio = metrics_overhead(report)
    floor = 1 - METRICS_TOLERANCE
    if ratio is None:
        verdict = "no figure"
    else:
        verdict = f"{ratio:.3f}x: {'met' if ratio >= floor else 'not met'}"
        if ratio < floor:
            verdict += f", {(floor - ratio) * 100:.1f} points short"
    lines = [
        "",
        f"## Metrics overhead ({METRICS_WORKLOAD})",
        "",
        f"{METRICS} is {REFERENCE} with its admin listener on (`--admin-port`); while wrk "
        "measured, the harness (on the load core) fetched `/metrics` once a second, as "
        "Prometheus would, and `/readyz` once a second, as a load balancer would. The server "
        "counts every request whether or not the admin listener is on (the counts feed "
        "Retry-After, readiness and the drain report), so what this measures is the "
        "exposition: the admin listener and the scrapes.",
        "",
        *_table(
            ["", "good req/s", "p99"],
            [
                [f"{REFERENCE} (metrics off)", _rate_cell_of(off), _p99(off, _main(off))],
                [f"{METRICS} (metrics on, scraped)", _rate_cell_of(on), _p99(on, _main(on))],
            ],
        ),
        "",
        f"**Metrics overhead: {METRICS} / {REFERENCE} = {verdict}** (target: within "
        f"{METRICS_TOLERANCE:.0%}, i.e. at least {floor:.2f}x).",
    ]
    if len(report.metrics_ratios) > 1:
        lines += [
            "",
            "Round by round: "
            + ", ".join(f"{ratio:.3f}x (round {r})" for r, ratio in report.metrics_ratios)
            + ".",
        ]
    scrapes = None if on is None else on.scrapes
    if scrapes is not None:
        lines += [
            "",
            f"Scrapes while measured: `/metrics` {scrapes.metrics_ok:,} answered 200 "
            f"({scrapes.metrics_bytes:,} bytes each), `/readyz` {scrapes.readyz_ready:,} ready "
            f"and {scrapes.readyz_not_ready:,} not ready (503), {scrapes.failed:,} failed; "
            f"the slowest took {_ms(scrapes.slowest_s)}.",
        ]
    return lines


def _rate_cell_of(m: Measurement | None) -> str:
    return _rate_cell(m, _main(m))


def _time_wait_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for workload in report.workloads:
        row = [workload]
        for server in report.servers:
            m = report.cell(workload, server)
            if m is None or m.wrk is None or m.time_wait_at_start is None:
                row.append(_missing(m) if m is None or m.wrk is None else "—")
                continue
            text = f"{m.time_wait_at_start:,}"
            if m.time_wait_waited_s is not None and m.time_wait_waited_s >= 1.0:
                text += f" (waited {m.time_wait_waited_s:.0f} s, from {m.time_wait_found or 0:,})"
            row.append(text)
        rows.append(row)
    return rows


def _time_wait_section(report: Report) -> list[str]:
    rows = _time_wait_rows(report)
    if not any(cell[:1].isdigit() for row in rows for cell in row[1:]):
        return []  # a run from before these counts were kept
    threshold = report.time_wait_threshold
    waits = (
        f"Before each measurement of a workload that closes its connections, the harness waited "
        f"(at most {report.time_wait_max_s or 0:.0f} s) until fewer than {threshold:,} were "
        "left; (waited N s, from M) says when it had to. "
        if threshold is not None
        else ""
    )
    return [
        "",
        "## Sockets in TIME_WAIT when each measurement began",
        "",
        "A connection closed by the server leaves a socket in TIME_WAIT for 60 s, and a machine "
        "full of them makes every new connection slower. " + waits + "The count is taken as "
        "the measuring wrk run starts, so it includes the warm-up's connections. Servers are "
        "measured in an order that rotates with each workload and round, so that none is "
        "always last.",
        "",
        *_table(["workload", *report.servers], rows),
    ]


def _notes(report: Report) -> list[str]:
    notes: list[str] = []
    for (workload, server), m in report.cells.items():
        if m.status == "skipped" and server in VARIANTS:
            continue  # measured under one workload only, by design
        if m.status != "ok":
            notes.append(f"- {server}, {workload}: {m.status}: {m.reason.splitlines()[0]}")
        elif m.keepalive is False and workload != "hello-close":
            notes.append(
                f"- {server}, {workload}: the server closed the connection after a response"
            )
        if m.closes is False:
            notes.append(
                f"- {server}, {workload}: ⚠ kept the connection open after `Connection: close`: "
                "wrk reused it, so this rate is a keep-alive rate"
            )
        if noisy(m):
            notes.append(
                f"- {server}, {workload}: † other processes used {m.foreign_cores:.2f} cores "
                "while it was measured"
            )
    return notes


def _slow_rows(report: Report) -> list[list[str]]:
    cells = [report.cell("slow-clients", s) for s in report.servers]
    stats = [None if m is None else m.slow for m in cells]
    return [
        [
            "open once all had connected",
            *(_count(None if s is None else s.ready_open) for s in stats),
        ],
        ["open while wrk measured (min to max)", *(_open_range(s) for s in stats)],
        [
            "closed by the server while wrk measured",
            *(_count(None if s is None else s.closed_by_server) for s in stats),
        ],
    ]


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _open_range(stats: SlowClientStats | None) -> str:
    if stats is None or stats.open_min is None:
        return "—"
    return f"{stats.open_min:,} to {stats.open_max:,}"


def markdown(report: Report) -> str:
    """The whole report as Markdown: header, rates, ratios, p99, errors, notes, commands."""
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    rounds = f", median of {report.rounds} rounds" if report.rounds > 1 else ""
    lines = [
        "# HTTP benchmark: poolserver beside its peers",
        "",
        f"{report.date} · os.cpu_count() = {report.cpu_count} · Python {report.python} · "
        f"server pinned to core 0, wrk and the slow clients to core 1 · "
        f"{report.duration_s} s per measurement{rounds}"
        + (f" · {report.halt_poll}." if report.halt_poll else "."),
        "",
        f"Versions: {versions}.",
        "",
        "Absolute rates drift between runs on this machine; the ratios within one run hold.",
        "",
        "## Good responses per second",
        "",
        "2xx/3xx responses only. ⚠: errors above 0.1% of requests (see Errors); †: other "
        f"processes used over {NOISE_FLAG_CORES} cores meanwhile (see Notes).",
        "",
        *_table(["workload", *report.servers], _rate_rows(report)),
    ]
    peers = [s for s in report.servers if s != REFERENCE and s not in VARIANTS]
    if REFERENCE in report.servers and peers:
        lines += [
            "",
            f"## {REFERENCE} / peer (req/s ratio; above 1 means {REFERENCE} is faster)",
            "",
            *_table(
                ["workload", *(f"{REFERENCE} / {p}" for p in peers)], _ratio_rows(report, peers)
            ),
        ]
    lines += _metrics_section(report)
    lines += [
        "",
        "## p99 latency (wrk --latency, completed requests only)",
        "",
        *_table(["workload", *report.servers], _p99_rows(report)),
        "",
        "## CPU while measured, in cores: server / load generator / other processes",
        "",
        "Each side is pinned to one core. A server near 1.00 was CPU-bound; a load generator "
        "near 1.00 was the bottleneck, and the server's rate is then a lower bound; other "
        "processes' time may have come out of either.",
        "",
        *_table(["workload", *report.servers], _cpu_rows(report)),
        "",
        "## Errors (wrk socket errors and non-2xx responses)",
        "",
        *_table(["workload", *report.servers], _error_rows(report)),
    ]
    if "slow-clients" in report.workloads:
        lines += [
            "",
            f"## Slow clients ({report.slow_clients:,} connections, 1 byte/s each, as their "
            "side sees them)",
            "",
            *_table(["", *report.servers], _slow_rows(report)),
        ]
    lines += _time_wait_section(report)
    notes = _notes(report)
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", "## Commands", ""]
    lines += [f"- {name}: `{command}`" for name, command in report.commands.items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- chart

HIGHLIGHT = "#d62728"
VARIANT = "#f0a0a0"
PEER = "#5b7a99"


def _short(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 10_000 else f"{value:,.0f}"


def _color(server: str) -> str:
    if server == REFERENCE:
        return HIGHLIGHT
    return VARIANT if server in VARIANTS else PEER


def _panel_servers(report: Report, workload: str) -> list[str]:
    """The servers drawn in one panel: a variant only where it was measured."""
    shown: list[str] = []
    for server in report.servers:
        m = report.cell(workload, server)
        if server not in VARIANTS or (m is not None and m.status != "skipped"):
            shown.append(server)
    return shown


def _bar_panel(axis: Any, report: Report, workload: str) -> None:
    servers = _panel_servers(report, workload)
    xs = range(len(servers))
    colors = [_color(s) for s in servers]
    cells = [report.cell(workload, s) for s in servers]
    rates = [_good(_main(m)) for m in cells]
    if workload == "slow-clients":
        width = 0.28
        for offset, run, alpha, label in (
            (-width, _alone, 0.25, "alone"),
            (0.0, _control, 0.55, "control: clients into a sink"),
        ):
            shifted = [x + offset for x in xs]
            runs = [_good(run(m)) for m in cells]
            axis.bar(shifted, runs, width, color=colors, alpha=alpha, label=label)
        bars = axis.bar(
            [x + width for x in xs], rates, width, color=colors, label="with slow clients"
        )
        axis.legend(fontsize=8, loc="upper right")
        axis.set_title(f"slow-clients: wrk beside {report.slow_clients:,} slow clients")
    else:
        bars = axis.bar(list(xs), rates, 0.7, color=colors)
        axis.set_title(workload)
    if workload == "sleep10":
        axis.axhline(report.sleep_bound, color="black", linestyle="--", linewidth=1)
        # Right-aligned in axes coordinates, clear of the value labels on the first bars.
        axis.text(
            0.99,
            report.sleep_bound,
            f"bound {report.sleep_bound:,.0f}/s",
            transform=axis.get_yaxis_transform(),
            ha="right",
            va="bottom",
            fontsize=8,
        )
    for bar, m, rate in zip(bars, cells, rates, strict=True):
        label = _short(rate) if m is not None and m.rate is not None else _missing(m)
        if m is not None and _troubled(m.wrk):
            label += " ⚠"
        if noisy(m):
            label += " †"
        # Inside the bar where a reference line runs just above the bars (sleep10's bound).
        inside = workload == "sleep10" and rate > report.sleep_bound / 4
        axis.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="top" if inside else "bottom",
            color="white" if inside else "black",
            fontsize=8,
            textcoords="offset points",
            xytext=(0, -3 if inside else 2),
        )
    axis.set_xticks(list(xs))
    axis.set_xticklabels(servers, rotation=30, ha="right", fontsize=9)
    for tick in axis.get_xticklabels():
        if tick.get_text() == REFERENCE or tick.get_text() in VARIANTS:
            tick.set_fontweight("bold")
            tick.set_color(HIGHLIGHT)
    if workload == METRICS_WORKLOAD and (ratio := metrics_overhead(report)) is not None:
        axis.text(
            0.01,
            0.98,
            f"metrics overhead: {METRICS} / {REFERENCE} = {ratio:.3f}x "
            f"(target ≥ {1 - METRICS_TOLERANCE:.2f}x)",
            transform=axis.transAxes,
            ha="left",
            va="top",
            fontsize=8,
        )
    axis.set_ylabel("good responses / s")
    axis.yaxis.set_major_formatter(
        importlib.import_module("matplotlib.ticker").StrMethodFormatter("{x:,.0f}")
    )
    axis.margins(y=0.15)


def chart(report: Report, path: Path) -> bool:
    """Draw one bar panel per workload into a PNG; False if matplotlib is not installed."""
    try:
        # Loaded by name: matplotlib lives only in the bench venv, and the project's type
        # check runs where it is absent.
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return False
    matplotlib.use("Agg")
    pyplot = importlib.import_module("matplotlib.pyplot")
    count = len(report.workloads)
    columns = min(count, 2) if count > 1 else 1
    rows = math.ceil(count / columns)
    figure, axes = pyplot.subplots(
        rows, columns, figsize=(6.5 * columns, 4.6 * rows), squeeze=False
    )
    for index, workload in enumerate(report.workloads):
        _bar_panel(axes[index // columns][index % columns], report, workload)
    for index in range(count, rows * columns):
        axes[index // columns][index % columns].set_visible(False)
    figure.suptitle(
        f"HTTP good responses/s, {REFERENCE} vs peers — {report.date} — "
        f"{report.cpu_count} cores, server pinned to 1 core",
        fontsize=12,
        fontweight="bold",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return True
