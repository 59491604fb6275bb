"""What a server looks like now, as JSON-ready data: the source of /metrics, /readyz, /livez,
/status.json and the agent check, for one process or, merged, for many.

A snapshot is plain data (dicts, lists, numbers, strings) so that a serving process can send it
to its supervisor, which adds up its processes' snapshots with `merge` and answers for all of
them from the same code that answers for one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from time import monotonic
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..pool import Distribution
from ._stats import Timing, empty_distribution

if TYPE_CHECKING:
    from ._server import Server

Snapshot = dict[str, Any]

TIMELINE_SECONDS = 10.0


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


def snapshot(server: Server, *, detail: bool = True) -> Snapshot:
    """The server's state and counters now; with `detail`, also what the status page draws
    (the last minutes of occupancy, the requests in flight, the per-worker timeline)."""
    pool = server.pool.statistics()
    totals = server.stats.totals()
    now = monotonic()
    ready, why = readiness(server)
    live, how = liveness(server)
    open_, idle = server.connection_count, server.poller.idle_count()
    sampler = server.sampler
    data: Snapshot = {
        "version": __version__,
        "pid": os.getpid(),
        "time": time.time(),
        "uptime": now - server.started_at,
        "draining": server.draining,
        "ready": {"ready": ready, "reason": why},
        "live": {"live": live, "reason": how},
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
            "throughput": round(sampler.rate.rate, 1) if sampler.rate.known else None,
            "busy": round(sampler.busy, 3),
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
        "timings": {t.value: summary(totals.timings[t]) for t in Timing},
    }
    recent = sampler.recent_queue_wait()
    # The window's distribution travels with its p95, so that several processes' can be added
    # up into the p95 of all their requests (`merge`).
    data["recent_queue_wait"] = summary(recent)
    data["recent_queue_wait_p95"] = recent.quantile(0.95)
    if detail:
        data["history"] = [
            {
                "time": s.time,
                "running": s.running,
                "backlog": s.backlog,
                "rate": None if s.rate is None else round(s.rate, 1),
            }
            for s in list(sampler.history)
        ]
        data["inflight"] = [
            {
                "number": r.number,
                "method": r.method,
                "path": r.path,
                "age": round(now - r.started, 3),
                "worker": r.worker,
                "stuck": r.timed_out,
            }
            for r in sorted(server.inflight.values(), key=lambda r: r.started)
        ]
        data["timeline"] = _timeline(server, now)
    return data


def summary(dist: Distribution) -> dict[str, Any]:
    """A distribution as JSON-ready data, with its estimated quantiles."""
    return {
        "count": dist.count,
        "sum": dist.sum,
        "p50": dist.quantile(0.5),
        "p95": dist.quantile(0.95),
        "p99": dist.quantile(0.99),
        "buckets": [["+Inf" if b == math.inf else b, c] for b, c in dist.buckets],
    }


def distribution(data: dict[str, Any]) -> Distribution:
    """The inverse of `summary`."""
    buckets = tuple(
        (math.inf if bound == "+Inf" else float(bound), int(count))
        for bound, count in data["buckets"]
    )
    return Distribution(count=int(data["count"]), sum=float(data["sum"]), buckets=buckets)


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


# ------------------------------------------------------------------------- several processes


def free_capacity(data: Snapshot) -> float:
    """The share of the workers free for more work (0..1), from the last second's busy
    time, the requests running now and those waiting: what a load balancer should weigh."""
    pool = data["pool"]
    load = max(pool["busy"], pool["running"]) + pool["queued"] + pool["waiting"]
    workers = pool["max_workers"]
    return max(0.0, 1.0 - load / workers) if workers else 0.0


def add_counters(into: Snapshot, data: Snapshot) -> None:
    """Add the counters of `data` (totals and timings) to those of `into`, in place."""
    totals, more = into["totals"], data["totals"]
    for key in ("responses", "refusals", "bad_requests"):
        for name, count in more[key].items():
            totals[key][name] = totals[key].get(name, 0) + count
    for key in ("timeouts", "slow", "stuck"):
        totals[key] += more[key]
    for name, theirs in data["timings"].items():
        mine = into["timings"].get(name)
        if mine is None:
            into["timings"][name] = summary(distribution(theirs))
            continue
        into["timings"][name] = summary(_added(distribution(mine), distribution(theirs)))


def _added(a: Distribution, b: Distribution) -> Distribution:
    """Two distributions over the same buckets as one."""
    return Distribution(
        count=a.count + b.count,
        sum=a.sum + b.sum,
        buckets=tuple(
            (bound, x + y) for (bound, x), (_, y) in zip(a.buckets, b.buckets, strict=True)
        ),
    )


def empty_counters() -> Snapshot:
    """Counters at zero, in the shape `add_counters` takes."""
    return {
        "totals": {
            "responses": {},
            "refusals": {},
            "bad_requests": {},
            "timeouts": 0,
            "slow": 0,
            "stuck": 0,
        },
        "timings": {},
    }


def merge(
    parts: Iterable[tuple[str, Snapshot]],
    retired: Snapshot,
    *,
    uptime: float,
    draining: bool,
) -> Snapshot:
    """One snapshot for several processes, each labelled (`p1`, `p2`...).

    Gauges are summed; counters are summed with `retired` (what processes that are gone had
    counted), so they never go back when a process is replaced. The server is ready when it
    is not draining and one of its processes is ready: a process that is free takes the
    next connection. Workers in the timeline are named `label/worker`.
    """
    parts = list(parts)
    merged: Snapshot = {
        "version": __version__,
        "time": time.time(),
        "uptime": uptime,
        "draining": draining,
        "processes": [
            {
                "label": label,
                "pid": data.get("pid"),
                "ready": data["ready"]["ready"],
                "live": data["live"]["live"],
                "draining": data["draining"],
                "uptime": data["uptime"],
            }
            for label, data in parts
        ],
    }
    merged.update(empty_counters())
    add_counters(merged, retired)
    for _, data in parts:
        add_counters(merged, data)
    merged["ready"] = _merged_readiness(parts, draining)
    live = [label for label, data in parts if data["live"]["live"]]
    merged["live"] = {
        "live": bool(live),
        "reason": f"{len(live)} of {len(parts)} processes alive",
    }
    # With no process serving (all starting, say), zeros: the answers keep their shape.
    merged["config"] = _sum_fields(
        [_NO_CONFIG, *(d["config"] for _, d in parts)], keep=("max_queue_wait",)
    )
    merged["config"]["request_timeout"] = parts[0][1]["config"]["request_timeout"] if parts else 0
    merged["pool"] = _sum_fields([_NO_POOL, *(d["pool"] for _, d in parts)])
    merged["connections"] = _sum_fields([_NO_CONNECTIONS, *(d["connections"] for _, d in parts)])
    recent = empty_distribution()
    for _, data in parts:
        recent = _added(recent, distribution(data["recent_queue_wait"]))
    merged["recent_queue_wait"] = summary(recent)
    merged["recent_queue_wait_p95"] = recent.quantile(0.95)  # of every process's requests
    if all("timeline" in d for _, d in parts):
        merged["history"] = _merge_history(d["history"] for _, d in parts)
        merged["inflight"] = [
            {**record, "worker": f"{label}/{record['worker']}"}
            for label, d in parts
            for record in d["inflight"]
        ]
        merged["timeline"] = {
            "window": TIMELINE_SECONDS,
            "workers": [
                {**row, "name": f"{label}/{row['name']}"}
                for label, d in parts
                for row in d["timeline"]["workers"]
            ],
        }
    return merged


_NO_CONFIG = {"workers": 0, "queue_size": 0, "request_timeout": 0}
_NO_POOL: dict[str, float | None] = dict.fromkeys(
    ("max_workers", "running", "queued", "waiting", "idle", "stuck", "capacity", "busy"), 0
)
_NO_POOL["throughput"] = None
_NO_CONNECTIONS = {"open": 0, "idle": 0, "active": 0}


def _merged_readiness(parts: list[tuple[str, Snapshot]], draining: bool) -> dict[str, Any]:
    if draining:
        return {"ready": False, "reason": "draining"}
    ready = [label for label, data in parts if data["ready"]["ready"]]
    if ready:
        return {"ready": True, "reason": f"ready ({len(ready)} of {len(parts)} processes)"}
    reasons = "; ".join(f"{label}: {data['ready']['reason']}" for label, data in parts)
    return {"ready": False, "reason": reasons or "no process is serving"}


def _sum_fields(records: list[dict[str, Any]], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Numbers summed field by field (None where every record has None); `keep` fields are
    taken from the first record."""
    out: dict[str, Any] = {}
    for record in records:
        for key, value in record.items():
            if key in keep:
                out.setdefault(key, value)
            elif value is not None:
                out[key] = (out.get(key) or 0) + value
            else:
                out.setdefault(key, None)
    return out


def _merge_history(histories: Iterable[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per-process samples added up second by second (processes sample at their own times)."""
    seconds: dict[int, dict[str, Any]] = {}
    for history in histories:
        for sample in history:
            key = int(sample["time"])
            into = seconds.setdefault(
                key, {"time": float(key), "running": 0, "backlog": 0, "rate": None}
            )
            into["running"] += sample["running"]
            into["backlog"] += sample["backlog"]
            if sample["rate"] is not None:
                into["rate"] = round((into["rate"] or 0.0) + sample["rate"], 1)
    return [seconds[key] for key in sorted(seconds)]
