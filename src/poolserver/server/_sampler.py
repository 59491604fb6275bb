"""What the server looked like over the last seconds and minutes, sampled once a second.

The poller calls `tick` on each pass; a sample is taken at most once a second. From the
samples come the recent throughput (for Retry-After), the p95 queue wait of the last ten
seconds (for readiness), how busy the workers were (for the agent check), and five minutes of
pool occupancy (for the status page).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from time import monotonic
from typing import TYPE_CHECKING

from ..pool import Distribution
from ._stats import RateMeter, Timing, empty_distribution

if TYPE_CHECKING:
    from ._server import Server

HISTORY_SECONDS = 300
WAIT_WINDOW = 10.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One second of the pool: wall time, running jobs, jobs waiting (queued or in the
    admission line), and completions per second (None until two samples give a rate)."""

    time: float
    running: int
    backlog: int
    rate: float | None


class Sampler:
    """Takes a sample a second; answers questions about the recent past."""

    def __init__(self, server: Server) -> None:
        self._server = server
        self.rate = RateMeter()
        self.history: deque[Sample] = deque(maxlen=HISTORY_SECONDS)
        self._waits: deque[tuple[float, tuple[tuple[float, int], ...], float]] = deque()
        self.next_sample = 0.0  # when the next sample is due (monotonic)
        self.busy = 0.0  # workers busy on average over the last second (service time / time)
        self._service: tuple[float, float] | None = None  # (when, service seconds so far)

    def tick(self, now: float | None = None) -> None:
        """Take a sample if a second has passed since the last one (poller thread)."""
        now = monotonic() if now is None else now
        if now < self.next_sample:
            return
        self.next_sample = now + 1.0
        pool = self._server.pool.statistics()
        self.rate.sample(pool.completed, now)
        timings = self._server.stats.totals().timings
        service = timings[Timing.SERVICE].sum
        if self._service is not None and now > self._service[0]:
            self.busy = (service - self._service[1]) / (now - self._service[0])
        self._service = (now, service)
        waits = timings[Timing.QUEUE_WAIT]
        self._waits.append((now, waits.buckets, waits.sum))
        while len(self._waits) > 2 and now - self._waits[0][0] > WAIT_WINDOW:
            self._waits.popleft()
        rate = self.rate.rate if self.rate.known else None
        self.history.append(Sample(time.time(), pool.running, pool.queued + pool.waiting, rate))

    def recent_queue_wait(self) -> Distribution:
        """The queue waits of the last ten seconds (between the oldest and newest sample)."""
        waits = list(self._waits)
        if len(waits) < 2:
            # With the buckets of a full one: processes' windows add up bucket by bucket.
            return empty_distribution()
        _, old, old_sum = waits[0]
        _, new, new_sum = waits[-1]
        buckets = tuple(
            (bound, count - before) for (bound, count), (_, before) in zip(new, old, strict=True)
        )
        return Distribution(count=buckets[-1][1], sum=new_sum - old_sum, buckets=buckets)
