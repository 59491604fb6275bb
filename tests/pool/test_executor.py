"""`WorkerPool` as a drop-in `concurrent.futures.Executor`."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest

from poolserver.pool import PoolClosed, PoolFuture, WorkerPool

from .helpers import Gate


def test_submit_returns_a_future_with_the_result() -> None:
    with WorkerPool(2) as pool:
        future = pool.submit(pow, 2, 10)
        assert isinstance(future, cf.Future)
        assert isinstance(future, PoolFuture)
        assert future.result(5) == 1024


def test_keyword_arguments_reach_the_job() -> None:
    with WorkerPool(2) as pool:
        assert pool.submit(int, "ff", base=16).result(5) == 255


def test_map_keeps_order_and_applies_backpressure() -> None:
    with WorkerPool(2, queue_size=1) as pool:
        assert list(pool.map(lambda x: x * x, range(50))) == [x * x for x in range(50)]


def test_usable_with_concurrent_futures_helpers() -> None:
    with WorkerPool(4) as pool:
        futures = [pool.submit(abs, -n) for n in range(20)]
        _done, not_done = cf.wait(futures, timeout=5)
        assert not not_done
        assert sorted(f.result() for f in cf.as_completed(futures)) == list(range(20))


def test_shutdown_cancel_futures_cancels_what_is_queued() -> None:
    pool = WorkerPool(1, queue_size=5)
    gate = Gate()
    running = pool.submit(gate, "ran")
    assert gate.started.wait(5)
    queued = [pool.submit(lambda: None) for _ in range(3)]
    pool.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    gate.open()
    assert running.result(5) == "ran"
    pool.shutdown(wait=True)
    assert pool.statistics().cancelled == 3


def test_shutdown_without_wait_still_finishes_queued_jobs() -> None:
    pool = WorkerPool(1, queue_size=5)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(5)
    rest = [pool.submit(lambda n=n: n) for n in range(3)]
    pool.shutdown(wait=False)
    with pytest.raises(PoolClosed):
        pool.submit(lambda: None)
    with pytest.raises(RuntimeError):  # what ThreadPoolExecutor raises, for drop-in callers
        pool.submit(lambda: None)
    gate.open()
    assert [f.result(5) for f in rest] == [0, 1, 2]
    pool.shutdown(wait=True)


def test_initializer_runs_once_in_each_worker_thread() -> None:
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()

    def init(tag: str) -> None:
        with lock:
            seen.append((tag, threading.get_ident()))

    with WorkerPool(3, initializer=init, initargs=("ready",)) as pool:
        idents = {f.result(5) for f in [pool.submit(threading.get_ident) for _ in range(30)]}
    assert all(tag == "ready" for tag, _ in seen)
    assert {ident for _, ident in seen} >= idents
    assert len(seen) == len({ident for _, ident in seen}) <= 3


def test_a_failing_initializer_is_logged_and_the_worker_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def init() -> None:
        raise OSError("no such resource")

    with WorkerPool(1, initializer=init) as pool:
        assert pool.submit(lambda: "ran").result(5) == "ran"
    assert "initializer failed" in caplog.text
