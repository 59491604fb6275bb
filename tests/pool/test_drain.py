"""Bounded drain, close and resize."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from poolserver.pool import PoolClosed, WorkerPool

from .helpers import Gate


def test_drain_lets_everything_finish_within_time_and_reports_clean() -> None:
    pool = WorkerPool(2, queue_size=10)
    results = [pool.submit(lambda n=n: n) for n in range(10)]
    report = pool.drain(timeout=10)
    assert report.clean
    assert 0 <= report.finished <= 10  # some may have ended before the drain began
    assert pool.statistics().completed == 10
    assert [f.result() for f in results] == list(range(10))


def test_drain_cancels_what_never_started_and_reports_what_still_runs() -> None:
    pool = WorkerPool(1, queue_size=5)
    gate = Gate()
    running = pool.submit(gate, "late")
    assert gate.started.wait(5)
    queued = [pool.submit(lambda: None) for _ in range(3)]
    report = pool.drain(timeout=0.05)
    assert (report.finished, report.cancelled, report.still_running) == (0, 3, 1)
    assert not report.clean
    assert all(f.cancelled() for f in queued)
    with pytest.raises(PoolClosed):
        pool.submit(lambda: None)
    gate.open()  # the abandoned job may still end; its result is kept
    assert running.result(5) == "late"
    stats = pool.statistics()
    assert stats.submitted == stats.completed + stats.cancelled


def test_resize_grows_at_once() -> None:
    pool = WorkerPool(1, queue_size=5)
    gates = [Gate() for _ in range(3)]
    for gate in gates:
        pool.submit(gate)
    assert gates[0].started.wait(5)
    assert not gates[1].started.is_set()
    pool.resize(3)
    assert gates[1].started.wait(5)
    assert gates[2].started.wait(5)
    assert pool.statistics().running == 3
    for gate in gates:
        gate.open()
    pool.close()


def test_resize_shrinks_as_busy_workers_finish() -> None:
    pool = WorkerPool(3, queue_size=5)
    gates = [Gate() for _ in range(3)]
    for gate in gates:
        pool.submit(gate)
    for gate in gates:
        assert gate.started.wait(5)
    pool.resize(1)
    assert pool.statistics().running == 3  # nobody is interrupted
    for gate in gates:
        gate.open()
    idents = {pool.submit(threading.get_ident).result(5) for _ in range(10)}
    assert len(idents) == 1
    assert pool.statistics().workers == 1
    pool.close()


def test_resize_rejects_nonsense() -> None:
    with WorkerPool(1) as pool, pytest.raises(ValueError, match="max_workers"):
        pool.resize(0)


@pytest.mark.parametrize(
    "kwargs", [{"max_workers": 0}, {"queue_size": -1}, {"max_workers": True}, {"max_waiting": -1}]
)
def test_constructor_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be an integer"):
        WorkerPool(**kwargs)


def test_close_is_idempotent_and_leaves_no_threads() -> None:
    pool = WorkerPool(4)
    for _ in range(20):
        pool.submit(lambda: None)
    pool.close()
    pool.close()
    assert pool.statistics().workers == 0
