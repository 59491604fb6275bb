"""Frozen statistics records, and the fixed-bucket histogram that feeds them.

Bucket bounds are fixed so that a distribution maps one to one onto a Prometheus histogram:
`buckets` holds cumulative `(upper_bound, count)` pairs ending with `(inf, count)`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

#: Upper bounds (seconds) of the queue-wait and run-time histograms; an `inf` bucket follows.
DEFAULT_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


@dataclass(frozen=True, slots=True)
class Distribution:
    """A snapshot of a histogram of durations in seconds.

    Attributes:
        count: how many observations.
        sum: their total.
        buckets: cumulative `(upper_bound, count)` pairs, the last bound being `inf`.
    """

    count: int
    sum: float
    buckets: tuple[tuple[float, int], ...]

    @property
    def mean(self) -> float | None:
        """The mean observation, or None when there is none."""
        return self.sum / self.count if self.count else None

    def quantile(self, q: float) -> float | None:
        """Estimate the `q` quantile (0..1) the way Prometheus' `histogram_quantile` does.

        Interpolates linearly inside the bucket that holds the quantile; None when empty.
        """
        if not self.count:
            return None
        rank = q * self.count
        lower, below = 0.0, 0
        for bound, cumulative in self.buckets:
            if cumulative >= rank:
                if math.isinf(bound):
                    return lower
                inside = cumulative - below
                fraction = (rank - below) / inside if inside else 1.0
                return lower + (bound - lower) * fraction
            lower, below = bound, cumulative
        return lower


class Histogram:
    """A mutable fixed-bucket histogram. Not thread-safe: its owner holds a lock around it.

    The sum of the observations is kept by the owner too, so that a hot path can bump
    `counts[bisect_left(bounds, value)]` inline instead of calling `observe`.
    """

    __slots__ = ("bounds", "counts")

    def __init__(self, bounds: tuple[float, ...] = DEFAULT_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)

    def observe(self, value: float) -> None:
        """Count one observation; `le` semantics, as Prometheus buckets are inclusive."""
        self.counts[bisect_left(self.bounds, value)] += 1

    def snapshot(self, total: float) -> Distribution:
        """A frozen copy of the current state, with `total` the sum of the observations."""
        cumulative, running = [], 0
        for bound, count in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return Distribution(count=running, sum=total, buckets=tuple(cumulative))


@dataclass(frozen=True, slots=True)
class PoolStatistics:
    """What a pool is doing and has done, read at one instant under the pool's lock.

    The books always balance:
    `submitted == completed + failed + cancelled + expired + abandoned + running + queued`.
    `stuck` counts abandoned jobs whose threads have not returned yet (not in `workers`).
    Jobs waiting for admission (`waiting`) are not yet submitted; `rejected` counts jobs that
    never got in.
    """

    max_workers: int
    queue_size: int
    workers: int
    running: int
    queued: int
    idle: int
    waiting: int
    submitted: int
    completed: int
    failed: int
    rejected: int
    cancelled: int
    expired: int
    abandoned: int
    stuck: int
    queue_wait: Distribution
    run_time: Distribution

    @property
    def capacity(self) -> int:
        """How many jobs the pool holds at most: `max_workers + queue_size`."""
        return self.max_workers + self.queue_size


@dataclass(frozen=True, slots=True)
class DrainReport:
    """What a bounded drain achieved.

    Attributes:
        finished: jobs that ended (completed or failed) while the drain ran.
        cancelled: jobs that never started: still queued or waiting when time ran out.
        still_running: jobs still running when the drain returned; their threads are abandoned.
    """

    finished: int
    cancelled: int
    still_running: int

    @property
    def clean(self) -> bool:
        """True when every job ended and none had to be cancelled."""
        return self.cancelled == 0 and self.still_running == 0
