"""Several processes' snapshots as one: the recent queue wait of all their requests."""

from __future__ import annotations

from poolserver.config import Config
from poolserver.demo import app as hello
from poolserver.pool import Distribution
from poolserver.server._server import Server
from poolserver.server._snapshot import empty_counters, merge, snapshot, summary


def _waits(*waits: float) -> Distribution:
    """The recent-wait distribution of a process whose requests waited `waits`."""
    empty = Server(hello, Config()).sampler.recent_queue_wait()
    buckets = tuple((bound, sum(1 for w in waits if w <= bound)) for bound, _ in empty.buckets)
    return Distribution(count=len(waits), sum=sum(waits), buckets=buckets)


def _process(recent: Distribution) -> dict[str, object]:
    data = snapshot(Server(hello, Config()), detail=False)
    data["recent_queue_wait"] = summary(recent)
    data["recent_queue_wait_p95"] = recent.quantile(0.95)
    return data


def test_the_merged_p95_counts_every_request_not_the_worst_process() -> None:
    busy = _waits(*[0.001] * 100)  # a process that answered 100 requests promptly
    stalled = _waits(*[2.0] * 3)  # and one whose three requests waited 2 s
    parts = [("p1", _process(busy)), ("p2", _process(stalled))]

    merged = merge(parts, empty_counters(), uptime=1.0, draining=False)

    assert merged["recent_queue_wait"]["count"] == 103
    # 95% of the 103 requests waited 1 ms at most; taking the worst process's p95 said 2 s.
    assert merged["recent_queue_wait_p95"] <= 0.001
    assert (stalled.quantile(0.95) or 0.0) > 1.0  # what the worst process alone says


def test_processes_with_no_recent_request_merge_to_no_p95() -> None:
    empty = Server(hello, Config()).sampler.recent_queue_wait()
    parts = [("p1", _process(empty)), ("p2", _process(empty))]

    merged = merge(parts, empty_counters(), uptime=1.0, draining=False)

    assert merged["recent_queue_wait"]["count"] == 0
    assert merged["recent_queue_wait_p95"] is None
    assert merge([], empty_counters(), uptime=1.0, draining=False)["recent_queue_wait_p95"] is None
