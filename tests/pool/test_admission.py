"""Admission: bounded waits, refusal, waking on room or close, and `post` for I/O threads."""

from __future__ import annotations

import threading
import time

import pytest

from poolserver.pool import JobCancelled, PoolClosed, PoolError, QueueFull, WorkerPool

from .helpers import Gate, RecordingJob


def full_pool(queue_size: int = 0) -> tuple[WorkerPool, Gate]:
    pool = WorkerPool(1, queue_size=queue_size)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(5)
    return pool, gate


def test_submit_with_timeout_gives_up_with_queue_full_and_counts_it() -> None:
    pool, gate = full_pool()
    started = time.monotonic()
    with pytest.raises(QueueFull):
        pool.submit(lambda: None, timeout=0.1)
    assert time.monotonic() - started >= 0.1
    assert pool.statistics().rejected == 1
    gate.open()
    pool.close()


def test_blocked_submitter_gets_pool_closed_when_the_pool_drains() -> None:
    pool, gate = full_pool()
    outcome: list[BaseException] = []

    def submit() -> None:
        try:
            pool.submit(lambda: None)
        except PoolClosed as exc:
            outcome.append(exc)

    submitter = threading.Thread(target=submit)
    submitter.start()
    assert not outcome
    gate.open()
    pool.drain(5)
    submitter.join(5)
    # Either the submitter was blocked and woke with PoolClosed, or it got the freed slot
    # before the drain began; it must never stay blocked.
    assert not submitter.is_alive()


def test_blocked_submitter_wakes_with_pool_closed_while_still_full() -> None:
    pool, gate = full_pool()
    woke = threading.Event()
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            pool.submit(lambda: None)
        except PoolClosed as exc:
            errors.append(exc)
        woke.set()

    submitter = threading.Thread(target=submit)
    submitter.start()
    assert not woke.wait(0.2), "submit returned while the pool was full"
    drainer = threading.Thread(target=pool.drain, args=(5,))
    drainer.start()
    assert woke.wait(5), "a blocked submitter must wake when the pool closes"
    assert len(errors) == 1
    gate.open()
    drainer.join(5)
    submitter.join(5)


def test_post_runs_the_job_and_requeue_lets_others_go_first() -> None:
    order: list[str] = []
    with WorkerPool(1, queue_size=4) as pool:
        gate = Gate()
        pool.submit(gate)
        assert gate.started.wait(5)

        class Yielding(RecordingJob):
            def run(self) -> bool:
                order.append("yielding")
                return super().run()

        yielding = Yielding(requeue_times=1)
        pool.post(yielding)
        pool.submit(order.append, "other")
        gate.open()
        assert yielding.ran.wait(5)
    assert order == ["yielding", "other", "yielding"]
    assert pool.statistics().completed == 3  # the requeued job completes once


def test_post_refuses_at_once_when_full_and_wait_is_zero() -> None:
    pool, gate = full_pool()
    job = RecordingJob()
    pool.post(job)
    assert job.gone.is_set()
    assert isinstance(job.discarded[0], QueueFull)
    assert job.runs == 0
    assert pool.statistics().rejected == 1
    gate.open()
    pool.close()


def test_posted_jobs_wait_in_line_in_order_and_get_in_when_room_appears() -> None:
    pool, gate = full_pool()
    order: list[int] = []

    class Numbered(RecordingJob):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.n = n

        def run(self) -> bool:
            order.append(self.n)
            return super().run()

    jobs = [Numbered(n) for n in range(3)]
    for job in jobs:
        pool.post(job, wait=10)
    assert pool.statistics().waiting == 3
    gate.open()
    for job in jobs:
        assert job.ran.wait(5)
    assert order == [0, 1, 2]
    pool.close()


def test_a_job_left_waiting_too_long_is_discarded_with_queue_full() -> None:
    pool, gate = full_pool()
    job = RecordingJob()
    pool.post(job, wait=0.05)
    assert job.gone.wait(5), "the timer must discard a job whose wait ran out"
    assert isinstance(job.discarded[0], QueueFull)
    stats = pool.statistics()
    assert (stats.waiting, stats.rejected, stats.submitted) == (0, 1, 1)
    gate.open()
    pool.close()
    assert job.runs == 0


def test_the_admission_line_is_bounded() -> None:
    pool = WorkerPool(1, queue_size=0, max_waiting=1)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(5)
    waiting, refused = RecordingJob(), RecordingJob()
    pool.post(waiting, wait=10)
    pool.post(refused, wait=10)
    assert refused.discarded
    assert not waiting.discarded
    gate.open()
    assert waiting.ran.wait(5)
    pool.close()


def test_posting_to_a_closed_pool_raises() -> None:
    pool = WorkerPool(1)
    pool.close()
    with pytest.raises(PoolClosed):
        pool.post(RecordingJob())


def test_drain_discards_waiting_jobs_it_cannot_admit() -> None:
    pool, gate = full_pool()
    job = RecordingJob()
    pool.post(job, wait=10)
    report = pool.drain(0.05)
    assert report.cancelled == 1
    assert report.still_running == 1
    assert isinstance(job.discarded[0], JobCancelled)
    gate.open()


def test_jobs_out_of_time_are_refused_by_the_timer_not_a_worker() -> None:
    """Refusing costs a worker nothing: whichever path finds a job out of time (the timer's
    sweep, freed room, a worker taking the next job), the timer thread discards it."""
    pool = WorkerPool(1, queue_size=2)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(5)
    threads: list[str] = []

    class Recording(RecordingJob):
        def discard(self, reason: PoolError) -> None:
            threads.append(threading.current_thread().name)
            super().discard(reason)

    # The waiting job's wait must run out before the queued jobs' deadlines: once those
    # expire there is room again, and a job still waiting is rightly admitted.
    later = time.monotonic() + 0.3
    queued = [Recording() for _ in range(2)]
    for job in queued:
        pool.post(job, deadline=later)
    waiting = Recording()
    pool.post(waiting, wait=0.05)
    try:
        for job in [waiting, *queued]:
            assert job.gone.wait(5)
    finally:
        gate.open()
        pool.close()
    assert threads == ["pool-timer"] * 3
    assert all(job.runs == 0 for job in [*queued, waiting])
