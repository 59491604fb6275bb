"""Statistics: a frozen record whose books balance, with queue wait and run time apart."""

from __future__ import annotations

import dataclasses
import math
import time

import pytest

from poolserver.pool import Distribution, PoolError, Task, WorkerPool

from .helpers import Gate


def count_at_most(distribution: Distribution, bound: float) -> int:
    return dict(distribution.buckets)[bound]


def test_queue_wait_and_run_time_are_measured_separately() -> None:
    def work() -> None:
        time.sleep(0.06)  # the job's own work, not a wait for ordering

    pool = WorkerPool(1, queue_size=1)
    gate = Gate()
    slow = pool.submit(work)
    behind = pool.submit(lambda: None)
    slow.result(5)
    behind.result(5)
    pool.close()
    stats = pool.statistics()
    assert stats.run_time.count == stats.queue_wait.count == 2
    # One job ran >= 50 ms, one ran briefly; one waited >= 50 ms behind it, one did not.
    assert count_at_most(stats.run_time, 0.05) == 1
    assert count_at_most(stats.queue_wait, 0.05) == 1
    assert stats.run_time.buckets[-1] == (math.inf, 2)
    assert stats.run_time.sum >= 0.06
    assert stats.queue_wait.sum >= 0.05
    del gate


def test_statistics_are_frozen_and_complete() -> None:
    pool = WorkerPool(3, queue_size=7)
    stats = pool.statistics()
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.running = 5  # type: ignore[misc]
    assert (stats.max_workers, stats.queue_size, stats.capacity) == (3, 7, 10)
    assert stats.submitted == stats.completed == stats.failed == 0
    pool.close()


def test_counts_after_a_known_sequence() -> None:
    pool = WorkerPool(1, queue_size=2, on_error=lambda exc, job: None)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(5)
    queued = pool.submit(lambda: None)
    failing = pool.submit(lambda: 1 / 0)
    with pytest.raises(Exception, match="full"):
        pool.submit_nowait(lambda: None)
    snapshot = pool.statistics()
    assert (snapshot.running, snapshot.queued, snapshot.idle, snapshot.workers) == (1, 2, 0, 1)
    gate.open()
    queued.result(5)
    failing.exception(5)
    pool.close()
    stats = pool.statistics()
    assert (stats.submitted, stats.completed, stats.failed, stats.rejected) == (3, 2, 1, 1)
    assert (stats.running, stats.queued) == (0, 0)


def test_distribution_quantile_interpolates_inside_buckets() -> None:
    dist = Distribution(count=4, sum=1.0, buckets=((0.1, 2), (1.0, 4), (math.inf, 4)))
    assert dist.quantile(0.5) == pytest.approx(0.1)
    assert dist.quantile(0.75) == pytest.approx(0.55)
    assert dist.mean == 0.25
    assert Distribution(count=0, sum=0.0, buckets=()).quantile(0.5) is None


class _Twice(Task):
    """A task that asks to be requeued once, then completes."""

    __slots__ = ("runs",)

    def __init__(self) -> None:
        self.runs = 0

    def run(self) -> bool:
        self.runs += 1
        return self.runs == 1

    def discard(self, reason: PoolError) -> None:
        raise AssertionError(f"discarded: {reason}")


def test_a_pool_without_timings_books_every_outcome_but_no_histogram() -> None:
    # An owner that times its jobs itself (the HTTP server) turns the pool's timings off.
    def fail() -> None:
        raise ValueError("expected")

    pool = WorkerPool(2, timings=False)
    done = [pool.submit(lambda: None) for _ in range(5)]
    failed = pool.submit(fail)
    twice = [_Twice() for _ in range(3)]
    for task in twice:
        pool.post(task, deadline=time.monotonic() + 30)
    for future in done:
        future.result(5)
    with pytest.raises(ValueError, match="expected"):
        failed.result(5)
    pool.close()
    stats = pool.statistics()
    assert [task.runs for task in twice] == [2, 2, 2]
    assert (stats.completed, stats.failed) == (8, 1)
    assert stats.queue_wait.count == stats.run_time.count == 0
