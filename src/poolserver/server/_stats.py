"""The server's counters and histograms, bumped by many threads without a shared lock.

Each thread owns a shard (found through a thread-local) and only it writes there, so no
increment is ever lost, with or without the GIL, and no lock is taken per request. Readers
add the shards up; a total read while requests run may lag by the requests in progress.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from time import monotonic

from ..pool import DEFAULT_BUCKETS, Distribution


class Refusal(Enum):
    """Why a request was answered 503 without running the application."""

    QUEUE_FULL = "queue_full"  # no room in the pool within queue_timeout (or at once: reject)
    QUEUE_AGE = "queue_age"  # it had waited longer than max_queue_wait
    DRAINING = "draining"  # still queued when a drain ran out of time
    CLIENT_GONE = "client_gone"  # the client closed or reset while the request waited (no 503)


class Timing(Enum):
    """The per-request durations the server measures."""

    QUEUE_WAIT = "queue_wait"  # ready (or stamped by a trusted proxy) -> a worker starts it
    SERVICE = "service"  # the application's call and the response, in the worker
    TOTAL = "total"  # ready -> response written (or handed to the poller)


_TIMINGS = tuple(Timing)
_REFUSALS = tuple(Refusal)
RECENT_SPANS = 256


class Shard:
    """One thread's counters. Written only by its thread.

    The timings are plain attributes, not a dict by `Timing`, so that the worker's hot path
    books a request without a lookup: `counts_<x>[bisect_left(DEFAULT_BUCKETS, s)] += 1`.
    """

    __slots__ = (
        "bad_requests",
        "by_class",
        "counts_queue_wait",
        "counts_service",
        "counts_total",
        "created",
        "name",
        "recent",
        "refusals",
        "slow",
        "stuck",
        "sum_queue_wait",
        "sum_service",
        "sum_total",
        "timeouts",
    )

    def __init__(self) -> None:
        self.name = threading.current_thread().name
        self.created = monotonic()
        # The last requests this thread ran, (start, end, number), for the status timeline.
        self.recent: deque[tuple[float, float, int]] = deque(maxlen=RECENT_SPANS)
        self.by_class = [0] * 6  # index = status // 100 (1xx..5xx)
        self.refusals = dict.fromkeys(_REFUSALS, 0)
        self.bad_requests: dict[int, int] = {}
        self.timeouts = 0
        self.slow = 0
        self.stuck = 0
        buckets = len(DEFAULT_BUCKETS) + 1
        self.counts_queue_wait = [0] * buckets
        self.counts_service = [0] * buckets
        self.counts_total = [0] * buckets
        self.sum_queue_wait = self.sum_service = self.sum_total = 0.0

    def counts(self, timing: Timing) -> list[int]:
        """The bucket counts of one timing."""
        counts: list[int] = getattr(self, "counts_" + timing.value)
        return counts

    def sum(self, timing: Timing) -> float:
        """The sum of one timing's observations."""
        total: float = getattr(self, "sum_" + timing.value)
        return total


@dataclass(frozen=True, slots=True)
class Totals:
    """The shards added up, at one moment."""

    responses: dict[int, int]  # status class (1..5) -> responses sent
    refusals: dict[Refusal, int]
    bad_requests: dict[int, int]  # status -> requests refused for bad input
    timeouts: int
    slow: int
    stuck: int
    timings: dict[Timing, Distribution]

    @property
    def served(self) -> int:
        """Responses the application produced or the server sent, all classes."""
        return sum(self.responses.values())


class Stats:
    """The registry of shards."""

    def __init__(self) -> None:
        # `local.shard` is the calling thread's shard once `shard()` made it: the hot path
        # reads it directly and calls `shard()` only the first time.
        self.local = threading.local()
        self._shards: list[Shard] = []
        self._lock = threading.Lock()  # only to register a new thread's shard

    def shard(self) -> Shard:
        """The calling thread's shard."""
        try:
            shard: Shard = self.local.shard
        except AttributeError:
            shard = self.local.shard = Shard()
            with self._lock:
                self._shards.append(shard)
        return shard

    def _all(self) -> Iterator[Shard]:
        with self._lock:
            shards = list(self._shards)
        return iter(shards)

    def recent_spans(self) -> list[tuple[str, float, list[tuple[float, float, int]]]]:
        """Each thread's name, since when its spans are complete, and its last requests
        (start, end, number). Spans are kept up to RECENT_SPANS: a busy thread's record
        begins with its oldest kept span, not with the thread."""
        out = []
        for shard in self._all():
            spans = list(shard.recent)
            since = spans[0][0] if len(spans) == RECENT_SPANS else shard.created
            out.append((shard.name, since, spans))
        return out

    def totals(self) -> Totals:
        """Every shard added up."""
        responses = dict.fromkeys(range(1, 6), 0)
        refusals = dict.fromkeys(_REFUSALS, 0)
        bad: dict[int, int] = {}
        timeouts = slow = stuck = 0
        counts = {t: [0] * (len(DEFAULT_BUCKETS) + 1) for t in _TIMINGS}
        sums = dict.fromkeys(_TIMINGS, 0.0)
        for shard in self._all():
            for cls in range(1, 6):
                responses[cls] += shard.by_class[cls]
            for reason in _REFUSALS:
                refusals[reason] += shard.refusals[reason]
            for status, count in list(shard.bad_requests.items()):
                bad[status] = bad.get(status, 0) + count
            timeouts += shard.timeouts
            slow += shard.slow
            stuck += shard.stuck
            for timing in _TIMINGS:
                mine = shard.counts(timing)
                counts[timing] = [a + b for a, b in zip(counts[timing], mine, strict=True)]
                sums[timing] += shard.sum(timing)
        timings = {t: _distribution(counts[t], sums[t]) for t in _TIMINGS}
        return Totals(responses, refusals, bad, timeouts, slow, stuck, timings)


def empty_distribution() -> Distribution:
    """No observations, over the buckets every timing has (so that it adds up with them)."""
    return _distribution([0] * (len(DEFAULT_BUCKETS) + 1), 0.0)


def _distribution(counts: list[int], total: float) -> Distribution:
    cumulative, running = [], 0
    for bound, count in zip((*DEFAULT_BUCKETS, math.inf), counts, strict=True):
        running += count
        cumulative.append((bound, running))
    return Distribution(count=running, sum=total, buckets=tuple(cumulative))


class RateMeter:
    """Jobs completed per second over the last few seconds, from periodic samples.

    `sample` is called by one thread (the poller); `rate` may be read by any.
    """

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._rate = 0.0

    def sample(self, completed: int, now: float | None = None) -> None:
        """Record the running total of completions at `now`."""
        now = monotonic() if now is None else now
        samples = self._samples
        samples.append((now, completed))
        while len(samples) > 2 and now - samples[0][0] > self._window:
            samples.popleft()
        first_time, first_count = samples[0]
        elapsed = now - first_time
        self._rate = (completed - first_count) / elapsed if elapsed > 0 else 0.0

    @property
    def rate(self) -> float:
        """Completions per second; 0.0 before two samples (see `known`)."""
        return self._rate

    @property
    def known(self) -> bool:
        """True once two samples give a rate."""
        return len(self._samples) >= 2
