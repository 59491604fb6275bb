"""The results of bench/overload_bench.py: per-server figures, poolserver's targets, the report.

Every figure comes from the generator's per-request records (bench/open_loop.py), and every
latency is counted from the request's scheduled send time. Goodput counts the 200s completed
while requests were arriving, per second of arrivals: a server that works through a backlog
after the arrivals stop does not get credit for more than it served meanwhile (the 200s it
finished later are in the "200s" count and in the latency figures).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from open_loop import Load, Outcome

REFERENCE = "poolserver"
BASELINE = "nginx-baseline"
GOODPUT_SHARE = 0.95  # poolserver's target: goodput at least this share of capacity
P99_SLACK_S = 0.05  # ... and p99 of its 200s at most max_queue_wait plus this
NOISE_FLAG_CORES = 0.15  # other processes' use that may have come out of either side
# The generator is flagged when it sent this much below the offered rate, or this late.
ACHIEVED_SHARE_FLAG = 0.99
LATENESS_FLAG_S = 0.010
PROMPT_S = 1.0  # a 200 later than this is counted, but few users would still be waiting


# ----------------------------------------------------------------------------- figures


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile of sorted `values` (share in 0..1); None if empty."""
    if not values:
        return None
    return values[min(len(values) - 1, max(0, math.ceil(share * len(values)) - 1))]


@dataclass
class Second:
    """One second of the schedule: what was offered then, and what became of it."""

    second: int
    sent: int = 0
    ok: int = 0  # 200s among the requests due in this second
    ok_done: int = 0  # 200s completed in this second, whenever they were due
    rejected: int = 0
    timeouts: int = 0
    other: int = 0
    ok_p99_s: float | None = None


@dataclass
class Summary:
    """What one server did with one load, from the generator's records."""

    scheduled: int
    sent: int
    offered_rate: float
    achieved_rate: float
    lateness_p50_s: float | None
    lateness_p99_s: float | None
    lateness_max_s: float | None
    ok: int
    ok_in_window: int
    ok_prompt: int  # 200s within PROMPT_S of their scheduled time
    goodput: float
    ok_p50_s: float | None
    ok_p99_s: float | None
    ok_max_s: float | None
    rejected: int  # 503s
    rejected_retry_after: int
    rejected_p50_s: float | None
    rejected_p99_s: float | None
    other_statuses: dict[str, int]
    timeouts_connecting: int
    timeouts_waiting: int
    resets: int
    refused: int
    closed: int  # closed by the server before a complete response
    errors: int
    not_sent: int
    connect_p50_s: float | None
    connect_p99_s: float | None
    connect_max_s: float | None
    generator_processes: int
    generator_cpu_s: float
    generator_errors: list[str] = field(default_factory=list)
    timeline: list[Second] = field(default_factory=list)

    @property
    def timeouts(self) -> int:
        """Client time-outs, connecting or waiting for the response."""
        return self.timeouts_connecting + self.timeouts_waiting

    @property
    def not_answered_503_retry_after(self) -> int:
        """Requests sent that got neither a 200 nor a 503 with Retry-After."""
        return self.sent - self.ok - self.rejected_retry_after

    def generator_lagged(self) -> bool:
        """True if the generator did not offer the rate it was asked to, on time."""
        late = self.lateness_p99_s or 0.0
        return (
            self.achieved_rate < ACHIEVED_SHARE_FLAG * self.offered_rate
            or late > LATENESS_FLAG_S
            or self.not_sent > 0
        )


def summarize(load: Load) -> Summary:
    """Count and rank every request of a load."""
    r = load.records
    answered = [i for i, o in enumerate(r.outcome) if o == Outcome.ANSWERED]
    ok = [i for i in answered if r.status[i] == 200]
    rejected = [i for i in answered if r.status[i] == 503]
    window_end = load.duration
    ok_in_window = sum(1 for i in ok if _due(load, i) + r.latency[i] <= window_end)
    outcomes = _count_outcomes(load)
    sent = load.total - outcomes.get(Outcome.NOT_SENT, 0)
    ok_latency = sorted(r.latency[i] for i in ok)
    rejected_latency = sorted(r.latency[i] for i in rejected)
    connected = sorted(v for v in r.connected if not math.isnan(v))
    lateness = sorted(r.lateness[i] for i in range(load.total) if r.outcome[i] != Outcome.NOT_SENT)
    span = (load.sent_last - load.start_at) if load.sent_last is not None else 0.0
    return Summary(
        scheduled=load.total,
        sent=sent,
        offered_rate=load.rate,
        # The schedule spans (total - 1) / rate: add one interval for the last request.
        achieved_rate=sent / (span + 1 / load.rate) if sent else 0.0,
        lateness_p50_s=percentile(lateness, 0.5),
        lateness_p99_s=percentile(lateness, 0.99),
        lateness_max_s=lateness[-1] if lateness else None,
        ok=len(ok),
        ok_in_window=ok_in_window,
        ok_prompt=sum(1 for v in ok_latency if v <= PROMPT_S),
        goodput=ok_in_window / load.duration,
        ok_p50_s=percentile(ok_latency, 0.5),
        ok_p99_s=percentile(ok_latency, 0.99),
        ok_max_s=ok_latency[-1] if ok_latency else None,
        rejected=len(rejected),
        rejected_retry_after=sum(1 for i in rejected if r.retry_after[i]),
        rejected_p50_s=percentile(rejected_latency, 0.5),
        rejected_p99_s=percentile(rejected_latency, 0.99),
        other_statuses=_other_statuses(load, answered),
        timeouts_connecting=outcomes.get(Outcome.TIMEOUT_CONNECTING, 0),
        timeouts_waiting=outcomes.get(Outcome.TIMEOUT_WAITING, 0),
        resets=outcomes.get(Outcome.RESET, 0),
        refused=outcomes.get(Outcome.REFUSED, 0),
        closed=outcomes.get(Outcome.CLOSED, 0),
        errors=outcomes.get(Outcome.ERROR, 0),
        not_sent=outcomes.get(Outcome.NOT_SENT, 0),
        connect_p50_s=percentile(connected, 0.5),
        connect_p99_s=percentile(connected, 0.99),
        connect_max_s=connected[-1] if connected else None,
        generator_processes=load.processes,
        generator_cpu_s=load.cpu_s,
        generator_errors=list(load.generator_errors),
        timeline=timeline(load),
    )


def _due(load: Load, index: int) -> float:
    """Seconds from the start of the schedule to request `index`'s send time."""
    return index / load.rate


def _count_outcomes(load: Load) -> dict[Outcome, int]:
    counts: dict[Outcome, int] = {}
    for outcome in load.records.outcome:
        counts[Outcome(outcome)] = counts.get(Outcome(outcome), 0) + 1
    return counts


def _other_statuses(load: Load, answered: Sequence[int]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in answered:
        status = load.records.status[i]
        if status not in (200, 503):
            counts[str(status)] = counts.get(str(status), 0) + 1
    return counts


def timeline(load: Load) -> list[Second]:
    """Per second of the schedule: sent, 200s (by due and by completion time), 503s, failures."""
    r = load.records
    seconds = [Second(s) for s in range(math.ceil(load.duration))]
    ok_latency: list[list[float]] = [[] for _ in seconds]
    for i in range(load.total):
        outcome = r.outcome[i]
        if outcome == Outcome.NOT_SENT:
            continue
        second = seconds[min(int(_due(load, i)), len(seconds) - 1)]
        second.sent += 1
        if outcome == Outcome.ANSWERED and r.status[i] == 200:
            second.ok += 1
            ok_latency[second.second].append(r.latency[i])
            done = int(_due(load, i) + r.latency[i])
            if done < len(seconds):
                seconds[done].ok_done += 1
        elif outcome == Outcome.ANSWERED and r.status[i] == 503:
            second.rejected += 1
        elif outcome in (Outcome.TIMEOUT_CONNECTING, Outcome.TIMEOUT_WAITING):
            second.timeouts += 1
        else:
            second.other += 1
    for second, latencies in zip(seconds, ok_latency, strict=True):
        second.ok_p99_s = percentile(sorted(latencies), 0.99)
    return seconds


# ----------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One of poolserver's acceptance criteria, and how a run fared against it."""

    name: str
    passed: bool
    detail: str


def targets(s: Summary, capacity: float, max_queue_wait: float) -> list[Target]:
    """poolserver's four targets under this load, each with the figure and its margin."""
    need = GOODPUT_SHARE * capacity
    goodput = f"{s.goodput:,.0f}/s = {s.goodput / capacity:.0%} of capacity"
    if s.goodput < need:
        goodput += f", {need - s.goodput:,.0f}/s short"
    bound = max_queue_wait + P99_SLACK_S
    p99 = _ms(s.ok_p99_s)
    if s.ok_p99_s is not None and s.ok_p99_s > bound:
        p99 += f", {(s.ok_p99_s - bound) * 1000:,.0f} ms over"
    unanswered = s.not_answered_503_retry_after
    return [
        Target(
            f"goodput ≥ {need:,.0f}/s ({GOODPUT_SHARE:.0%} of capacity)", s.goodput >= need, goodput
        ),
        Target(
            f"p99 of 200s ≤ {bound * 1000:,.0f} ms (max_queue_wait + {P99_SLACK_S * 1000:.0f} ms)",
            s.ok_p99_s is not None and s.ok_p99_s <= bound,
            p99,
        ),
        Target(
            "every other request answered 503 with Retry-After",
            unanswered == 0,
            f"{unanswered:,} not" + (f" ({_unanswered_parts(s)})" if unanswered else ""),
        ),
        Target(
            "no time-outs, no resets",
            s.timeouts + s.resets == 0,
            f"{s.timeouts:,} time-outs, {s.resets:,} resets",
        ),
    ]


def _unanswered_parts(s: Summary) -> str:
    parts = {
        "503 without Retry-After": s.rejected - s.rejected_retry_after,
        "other statuses": sum(s.other_statuses.values()),
        "time-outs": s.timeouts,
        "resets": s.resets,
        "refused": s.refused,
        "closed unanswered": s.closed,
        "other errors": s.errors,
    }
    return ", ".join(f"{name} {count:,}" for name, count in parts.items() if count)


# ----------------------------------------------------------------------------- the report


@dataclass
class Row:
    """One server's measurement (or why there is none), with the CPU each side used."""

    server: str
    status: str  # "ok", "failed" or "skipped"
    reason: str = ""
    summary: Summary | None = None
    server_cores: float | None = None
    generator_cores: float | None = None
    foreign_cores: float | None = None
    kernel: dict[str, int] = field(default_factory=dict)  # TCP counters' growth (tcp_counters)
    # Sockets in TIME_WAIT: when the harness began to wait for them to go, how long it
    # waited, and how many there were as the arrivals began (bench/time_wait.py).
    time_wait_found: int | None = None
    time_wait_waited_s: float | None = None
    time_wait_at_start: int | None = None

    def noisy(self) -> bool:
        """True if other processes used a noticeable share of the machine meanwhile."""
        return (self.foreign_cores or 0.0) > NOISE_FLAG_CORES

    def to_json(self) -> dict[str, Any]:
        """JSON-ready fields (the summary expanded, its timeline included)."""
        data = asdict(self)
        if self.summary is not None:
            data["summary"]["timeouts"] = self.summary.timeouts
        return data


@dataclass
class Report:
    """The facts of the run and one row per server."""

    date: str
    cpu_count: int | None
    python: str
    platform: str
    rate: float
    duration_s: float
    timeout_s: float
    workers: int
    capacity: float
    max_queue_wait_s: float
    uvicorn_limit: int
    pinned: bool
    command: str  # how this report was made
    versions: dict[str, str]
    commands: dict[str, str]
    rows: list[Row] = field(default_factory=list)
    time_wait_threshold: int | None = None
    time_wait_max_s: float | None = None
    halt_poll: str | None = None  # halt_poll.describe(): what waking an idle core cost

    def to_json(self) -> dict[str, Any]:
        """Everything, JSON-ready, with each poolserver row's targets."""
        data = asdict(self)
        data["rows"] = [row.to_json() for row in self.rows]
        data["targets"] = {
            row.server: [
                asdict(t) for t in targets(row.summary, self.capacity, self.max_queue_wait_s)
            ]
            for row in self.rows
            if row.server.startswith(REFERENCE) and row.summary is not None
        }
        return data


def report_from_json(data: dict[str, Any]) -> Report:
    """The inverse of Report.to_json: to draw a saved run again without measuring."""
    rows = [_row_from_json(row) for row in data["rows"]]
    known = {f.name for f in fields(Report)} - {"rows"}
    return Report(**{k: v for k, v in data.items() if k in known}, rows=rows)


def _row_from_json(data: dict[str, Any]) -> Row:
    summary = data.get("summary")
    if summary is not None:
        known = {f.name for f in fields(Summary)}
        values = {k: v for k, v in summary.items() if k in known}
        values["timeline"] = [Second(**second) for second in summary.get("timeline", [])]
        summary = Summary(**values)
    known_row = {f.name for f in fields(Row)} - {"summary"}
    return Row(**{k: v for k, v in data.items() if k in known_row}, summary=summary)


def _ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds * 1000:,.1f} ms" if seconds < 1 else f"{seconds:,.2f} s"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


MAIN_HEADER = [
    "server",
    "offered → achieved req/s (send lateness p99)",
    "goodput 200/s (of capacity)",
    "p50 of 200s",
    "p99 of 200s",
    "200s",
    "503s (with Retry-After)",
    "other statuses",
    "client time-outs (connecting / waiting)",
    "resets",
    "refused",
    "other errors",
    "CPU cores: server / generator / others",
]


def _main_row(row: Row, capacity: float) -> list[str]:
    s = row.summary
    if s is None:
        return [row.server, f"{row.status}: {row.reason.splitlines()[0] if row.reason else ''}"] + [
            "—"
        ] * (len(MAIN_HEADER) - 2)
    lag = " ⚠" if s.generator_lagged() else ""
    others = ", ".join(f"{k}: {v:,}" for k, v in sorted(s.other_statuses.items())) or "0"
    cores = (row.server_cores, row.generator_cores, row.foreign_cores)
    cpu = " / ".join("—" if c is None else f"{c:.2f}" for c in cores) + (
        " †" if row.noisy() else ""
    )
    return [
        row.server,
        f"{s.offered_rate:,.0f} → {s.achieved_rate:,.0f} ({_ms(s.lateness_p99_s)}){lag}",
        f"{s.goodput:,.0f} ({s.goodput / capacity:.0%})",
        _ms(s.ok_p50_s),
        _ms(s.ok_p99_s),
        f"{s.ok:,}",
        f"{s.rejected:,} ({s.rejected_retry_after:,})",
        others,
        f"{s.timeouts:,} ({s.timeouts_connecting:,} / {s.timeouts_waiting:,})",
        f"{s.resets:,}",
        f"{s.refused:,}",
        f"{s.closed + s.errors + s.not_sent:,}",
        cpu,
    ]


def _where_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for row in report.rows:
        s = row.summary
        if s is None:
            continue
        rows.append(
            [
                row.server,
                " / ".join(_ms(v) for v in (s.connect_p50_s, s.connect_p99_s, s.connect_max_s)),
                " / ".join(_ms(v) for v in (s.ok_p50_s, s.ok_p99_s, s.ok_max_s)),
                " / ".join(_ms(v) for v in (s.rejected_p50_s, s.rejected_p99_s)),
                f"{s.ok_prompt:,}",
                f"{s.ok - s.ok_in_window:,}",
                " / ".join(
                    f"{row.kernel[k]:,}" if k in row.kernel else "—"
                    for k in ("listen_overflows", "syn_retransmits", "softnet_drops")
                ),
                _time_wait(row),
            ]
        )
    return rows


def _time_wait(row: Row) -> str:
    if row.time_wait_at_start is None:
        return "—"
    text = f"{row.time_wait_at_start:,}"
    if row.time_wait_waited_s is not None and row.time_wait_waited_s >= 1.0:
        text += f" (waited {row.time_wait_waited_s:.0f} s, from {row.time_wait_found or 0:,})"
    return text


def _timeline_tables(report: Report) -> list[str]:
    rows = [r for r in report.rows if r.summary is not None and r.summary.timeline]
    if not rows:
        return []
    seconds = max(len(r.summary.timeline) for r in rows if r.summary is not None)
    header = ["server", *(f"{n}-{n + 1} s" for n in range(seconds))]
    done: list[list[str]] = []
    p99: list[list[str]] = []
    for row in rows:
        if row.summary is None:
            continue
        line = row.summary.timeline
        done.append([row.server, *(f"{t.ok_done:,}" for t in line)])
        p99.append([row.server, *(_ms(t.ok_p99_s) for t in line)])
    return [
        "",
        "## Second by second",
        "",
        "200s completed in each second of the arrivals (a steady server shows a flat row):",
        "",
        *_table(header, done),
        "",
        "p99 latency of the 200s, by the second in which they were due:",
        "",
        *_table(header, p99),
    ]


def _target_table(report: Report) -> list[str]:
    ours = [r for r in report.rows if r.server.startswith(REFERENCE) and r.summary is not None]
    if not ours:
        return []
    results = {
        r.server: targets(r.summary, report.capacity, report.max_queue_wait_s)
        for r in ours
        if r.summary is not None
    }
    names = [t.name for t in next(iter(results.values()))]
    rows = [[name, *(_verdict(results[r.server][i]) for r in ours)] for i, name in enumerate(names)]
    return [
        "",
        f"## {REFERENCE}'s targets",
        "",
        *_table(["target", *(r.server for r in ours)], rows),
    ]


def _verdict(target: Target) -> str:
    return f"**{'PASS' if target.passed else 'FAIL'}**: {target.detail}"


def _notes(report: Report) -> list[str]:
    notes: list[str] = []
    for row in report.rows:
        if row.status != "ok":
            notes.append(f"- {row.server}: {row.status}: {row.reason.splitlines()[0]}")
            continue
        s = row.summary
        if s is not None and s.generator_lagged():
            notes.append(
                f"- {row.server}: ⚠ the generator fell short: {s.achieved_rate:,.0f}/s achieved, "
                f"send lateness p99 {_ms(s.lateness_p99_s)}, max {_ms(s.lateness_max_s)}, "
                f"{s.not_sent:,} not sent (generator-side socket errors)"
            )
        if s is not None and s.generator_errors:
            notes.append(f"- {row.server}: ⚠ " + "; ".join(s.generator_errors))
        if row.kernel.get("softnet_drops"):
            notes.append(
                f"- {row.server}: ⚠ the kernel dropped {row.kernel['softnet_drops']:,} packets "
                "from a full CPU input queue (netdev_max_backlog): when an accept queue "
                "overflows, the SYNs sent again come in bursts larger than that queue, and "
                "those dropped wait for the next retransmission: clients spread over many "
                "machines would connect somewhat sooner"
            )
        if row.noisy():
            notes.append(
                f"- {row.server}: † other processes used {row.foreign_cores:.2f} cores meanwhile"
            )
    return notes


def markdown(report: Report) -> str:
    """The whole report as Markdown: header, the table, the targets, latency sources, notes."""
    capacity = report.capacity
    versions = ", ".join(f"{k} {v}" for k, v in report.versions.items())
    pinning = (
        "servers pinned to core 0, the generator to core 1"
        if report.pinned
        else "unpinned (fewer than 2 cores or no taskset)"
    )
    lines = [
        f"# Overload benchmark: open-loop arrivals at {report.rate / capacity:.1f}x capacity",
        "",
        f"{report.date} · os.cpu_count() = {report.cpu_count} · Python {report.python} · "
        f"{pinning}"
        + (f" · {report.halt_poll}" if report.halt_poll else "")
        + f". Made by `{report.command}`.",
        "",
        f"Workload: `bench.apps:sleep10` (blocks 10 ms) on {report.workers} worker threads: "
        f"capacity {capacity:,.0f}/s. Offered {report.rate:,.0f} requests/s for "
        f"{report.duration_s:g} s, open loop (bench/open_loop.py): each request on a new "
        f"connection with `Connection: close`, sent at its scheduled time whatever the server "
        f"does; client time-out {report.timeout_s:g} s; latencies counted from each request's "
        "scheduled send time. Achieved offered rate and send lateness are in the second column "
        "(⚠: below 99% of the rate, p99 lateness over 10 ms, or requests not sent).",
        "",
        f"Goodput: 200s completed during the {report.duration_s:g} s of arrivals, per second "
        '(those completed later count in "200s" and in the latencies). Time-outs '
        '"connecting": the connection was never established (SYNs dropped: the server\'s '
        'accept backlog was full); "waiting": connected, no complete response in time. '
        "CPU: cores' worth used during the arrivals (†: others over "
        f"{NOISE_FLAG_CORES} cores).",
        "",
        f"uvicorn serves ASGI only: its app (`bench.apps:sleep10_asgi`) awaits a 10 ms "
        f"`asyncio.sleep`, bounded by `--limit-concurrency {report.uvicorn_limit}`; uvicorn "
        "counts open connections toward that limit, those it is refusing included, so the "
        "limit that gives it ~1,600/s is above 16 (see bench/overload_bench.py).",
        "",
        f"Versions: {versions}.",
        "",
        *_table(MAIN_HEADER, [_main_row(r, capacity) for r in report.rows]),
        *_target_table(report),
        "",
        "## Where the latency comes from",
        "",
        "Connect: from the scheduled time to the connection's establishment (the kernel "
        "completes the handshake while the connection waits in the accept backlog, so a full "
        "backlog shows here as SYN retransmits at 1 s, 3 s, 7 s; a long wait *in* the backlog "
        "shows only in the response times). Kernel counters, machine-wide, over the run: SYNs "
        "dropped because the server's accept queue was full, SYNs sent again, and packets "
        "dropped because a CPU's input queue was full (the machine's doing, not the server's). "
        "TIME_WAIT: sockets in TIME_WAIT as the arrivals began (each closed connection leaves "
        "one for 60 s; a machine full of them slows new connections down)"
        + (
            f"; before each server the harness waited, at most {report.time_wait_max_s or 0:.0f}"
            f" s, until fewer than {report.time_wait_threshold:,} were left"
            if report.time_wait_threshold is not None
            else ""
        )
        + ".",
        "",
        *_table(
            [
                "server",
                "connect p50 / p99 / max",
                "200s p50 / p99 / max",
                "503s p50 / p99",
                f"200s within {PROMPT_S:g} s",
                "200s completed after the arrivals",
                "kernel: listen overflows / SYN retransmits / input drops",
                "TIME_WAIT at start",
            ],
            _where_rows(report),
        ),
        *_timeline_tables(report),
    ]
    notes = _notes(report)
    if notes:
        lines += ["", "## Notes", "", *notes]
    lines += ["", "## Commands", ""]
    lines += [f"- {name}: `{command}`" for name, command in report.commands.items()]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- chart

HIGHLIGHT = "#d62728"
PEER = "#5b7a99"
BASE = "#999999"


def _color(server: str) -> str:
    if server.startswith(REFERENCE):
        return HIGHLIGHT
    return BASE if server == BASELINE else PEER


def _bars(
    axis: Any,
    names: Sequence[str],
    values: Sequence[float],
    labels: Sequence[str],
    *,
    inside: bool = False,
) -> None:
    """One bar per server, labelled above it, or inside it (clear of a reference line)."""
    xs = list(range(len(names)))
    bars = axis.bar(xs, values, 0.7, color=[_color(n) for n in names])
    room = 0.15 * max(values, default=0.0)  # a shorter bar has its label above it
    for bar, label, value in zip(bars, labels, values, strict=True):
        within = inside and value > room
        axis.annotate(
            label,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="top" if within else "bottom",
            color="white" if within else "black",
            fontsize=8,
            textcoords="offset points",
            xytext=(0, -3 if within else 2),
        )
    axis.set_xticks(xs)
    axis.set_xticklabels(names, rotation=30, ha="right", fontsize=9)


def _line(axis: Any, value: float, text: str) -> None:
    axis.axhline(value, color="black", linestyle="--", linewidth=1)
    axis.text(
        0.99,
        value,
        text,
        transform=axis.get_yaxis_transform(),
        ha="right",
        va="bottom",
        fontsize=8,
    )


def chart(report: Report, path: Path) -> bool:
    """Goodput and p99 of the 200s per server, as a PNG; False if matplotlib is missing."""
    try:
        # Loaded by name: matplotlib lives only in the bench venv.
        matplotlib = importlib.import_module("matplotlib")
    except ImportError:
        return False
    matplotlib.use("Agg")
    pyplot = importlib.import_module("matplotlib.pyplot")
    rows = [r for r in report.rows if r.summary is not None and r.server != BASELINE]
    names = [r.server for r in rows]
    summaries = [r.summary for r in rows if r.summary is not None]
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(13, 4.8))
    goodput = [s.goodput for s in summaries]
    flags = [" †" if r.noisy() else "" for r in rows]
    _bars(
        left,
        names,
        goodput,
        [f"{g:,.0f}{f}" for g, f in zip(goodput, flags, strict=True)],
        inside=True,
    )
    _line(left, report.capacity, f"capacity {report.capacity:,.0f}/s")
    left.set_title(f"goodput (200s/s) at {report.rate:,.0f} req/s offered (†: noisy)")
    left.margins(y=0.15)
    p99 = [(s.ok_p99_s or 0.0) * 1000 for s in summaries]
    _bars(
        right, names, p99, [f"{_ms(s.ok_p99_s)}{f}" for s, f in zip(summaries, flags, strict=True)]
    )
    _line(right, (report.max_queue_wait_s + P99_SLACK_S) * 1000, "poolserver's target")
    right.set_yscale("log")
    right.set_title("p99 latency of the 200s (ms, log scale)")
    figure.suptitle(
        f"Overload, open loop, {report.rate / report.capacity:.1f}x capacity — {report.date}",
        fontweight="bold",
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return True
