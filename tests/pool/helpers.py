"""Helpers for pool tests: jobs that block on events, so tests control ordering exactly."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from poolserver.pool import PoolError, WorkerPool


class Gate:
    """A job that announces it started, then blocks until opened."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.opened = threading.Event()

    def __call__(self, value: object = None) -> object:
        self.started.set()
        if not self.opened.wait(10):
            raise TimeoutError("gate never opened")
        return value

    def open(self) -> None:
        self.opened.set()


@dataclass
class RecordingJob:
    """A `post()`-able job that records whether it ran or why it was discarded."""

    requeue_times: int = 0
    runs: int = 0
    discarded: list[PoolError] = field(default_factory=list)
    ran: threading.Event = field(default_factory=threading.Event)
    gone: threading.Event = field(default_factory=threading.Event)
    gate: Gate | None = None

    def run(self) -> bool:
        self.runs += 1
        if self.gate is not None:
            self.gate()
        self.ran.set()
        return self.runs <= self.requeue_times

    def discard(self, reason: PoolError) -> None:
        self.discarded.append(reason)
        self.gone.set()


def warm_up(pool: WorkerPool, workers: int, timeout: float = 10.0) -> None:
    """Start `workers` threads in `pool` and let them all go idle."""
    barrier = threading.Barrier(workers + 1, timeout=timeout)
    futures = [pool.submit(barrier.wait) for _ in range(workers)]
    barrier.wait()
    for future in futures:
        future.result(timeout)
