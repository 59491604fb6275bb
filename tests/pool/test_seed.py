"""The seed's behaviours: a bounded channel of MaxWorkers + QueueSize, a blocking SubmitJob,
a Close that runs every queued job and waits for the workers, and reused worker threads."""

from __future__ import annotations

import threading

import pytest

from poolserver.pool import PoolClosed, QueueFull, WorkerPool

from .helpers import Gate


def test_submit_blocks_exactly_when_running_plus_queued_reaches_capacity() -> None:
    pool = WorkerPool(2, queue_size=3)
    gates = [Gate(), Gate()]
    for gate in gates:
        pool.submit(gate)
    for gate in gates:
        assert gate.started.wait(5)
    for _ in range(3):  # capacity is 2 + 3: these still fit, without blocking
        pool.submit_nowait(lambda: None)
    stats = pool.statistics()
    assert (stats.running, stats.queued, stats.capacity) == (2, 3, 5)

    with pytest.raises(QueueFull):
        pool.submit_nowait(lambda: None)
    with pytest.raises(QueueFull):
        pool.submit(lambda: None, timeout=0.05)

    admitted = threading.Event()

    def submit() -> None:
        pool.submit(lambda: None)
        admitted.set()

    submitter = threading.Thread(target=submit)
    submitter.start()
    assert not admitted.wait(0.2), "submit returned while the pool was full"
    gates[0].open()  # one job ends: exactly one slot frees and the blocked submit gets it
    assert admitted.wait(5)
    submitter.join(5)
    gates[1].open()
    pool.close()
    assert pool.statistics().completed == 6


def test_close_runs_every_queued_job_then_returns_with_workers_gone() -> None:
    pool = WorkerPool(1, queue_size=10)
    gate = Gate()
    ran: list[int] = []
    pool.submit(gate)
    assert gate.started.wait(5)
    for n in range(10):
        pool.submit(ran.append, n)
    closer = threading.Thread(target=pool.close)
    closer.start()
    gate.open()
    closer.join(10)
    assert not closer.is_alive()
    assert ran == list(range(10))
    assert [t for t in threading.enumerate() if t.name.startswith("pool-worker")] == []
    with pytest.raises(PoolClosed):
        pool.submit(lambda: None)


def test_worker_threads_are_reused() -> None:
    with WorkerPool(2, queue_size=4) as pool:
        idents = {pool.submit(threading.get_ident).result(5) for _ in range(50)}
    assert len(idents) <= 2
    assert pool.statistics().completed == 50


def test_a_failing_job_does_not_kill_its_worker() -> None:
    def fail() -> None:
        raise ValueError("boom")

    with WorkerPool(1, queue_size=4, on_error=lambda exc, job: None) as pool:
        first = pool.submit(threading.get_ident).result(5)
        failed = pool.submit(fail)
        assert isinstance(failed.exception(5), ValueError)
        assert pool.submit(threading.get_ident).result(5) == first
