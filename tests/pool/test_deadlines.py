"""Per-job deadlines, cooperative cancellation, and cancelling queued futures."""

from __future__ import annotations

import threading
import time

import pytest

from poolserver.pool import (
    CancelToken,
    DeadlineExceeded,
    JobAbandoned,
    QueueFull,
    WorkerPool,
    current_token,
)

from .helpers import Gate, RecordingJob


def test_a_job_still_queued_at_its_deadline_never_runs() -> None:
    pool = WorkerPool(1, queue_size=4)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(5)
    ran = threading.Event()
    late = pool.submit(ran.set, deadline=time.monotonic() + 0.05)
    # The worker is still blocked: the deadline is enforced while the job waits.
    assert isinstance(late.exception(timeout=5), DeadlineExceeded)
    assert isinstance(late.exception(), TimeoutError)
    stats = pool.statistics()
    assert (stats.expired, stats.queued) == (1, 0)
    gate.open()
    pool.close()
    assert not ran.is_set()


def test_expiry_frees_the_slot_for_a_new_job() -> None:
    pool = WorkerPool(1, queue_size=1)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(5)
    late = pool.submit(lambda: None, deadline=time.monotonic() + 0.05)
    with pytest.raises(QueueFull):
        pool.submit_nowait(lambda: None)
    late.exception(timeout=5)
    after = pool.submit_nowait(lambda: "in")
    gate.open()
    assert after.result(5) == "in"
    pool.close()


def test_a_past_deadline_means_the_job_never_runs_even_with_an_idle_worker() -> None:
    ran = threading.Event()
    with WorkerPool(2) as pool:
        future = pool.submit(ran.set, deadline=time.monotonic() - 1)
        assert isinstance(future.exception(5), DeadlineExceeded)
    assert not ran.is_set()
    assert pool.statistics().expired == 1


def test_a_posted_job_past_its_deadline_is_discarded() -> None:
    pool = WorkerPool(1, queue_size=2)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(5)
    job = RecordingJob()
    pool.post(job, deadline=time.monotonic() + 0.05)
    assert job.gone.wait(5)
    assert isinstance(job.discarded[0], DeadlineExceeded)
    gate.open()
    pool.close()
    assert job.runs == 0


def test_running_job_sees_its_token_cancelled_when_its_future_is_cancelled() -> None:
    started, stopped = threading.Event(), threading.Event()

    def cooperative() -> str:
        token = current_token()
        assert token is not None
        started.set()
        return "stopped early" if token.wait(10) else "ran to the end"

    with WorkerPool(1) as pool:
        future = pool.submit(cooperative)
        assert started.wait(5)
        assert future.cancel() is False  # running: Executor semantics
        assert future.result(5) == "stopped early"
        stopped.set()


def test_token_carries_the_deadline() -> None:
    seen: list[tuple[bool, float | None]] = []

    def job() -> None:
        token = current_token()
        assert token is not None
        seen.append((token.cancelled, token.remaining()))

    with WorkerPool(1) as pool:
        pool.submit(job, deadline=time.monotonic() + 30).result(5)
    cancelled, remaining = seen[0]
    assert not cancelled
    assert remaining is not None
    assert 25 < remaining <= 30


def test_token_counts_as_cancelled_once_its_deadline_passes() -> None:
    token = CancelToken(deadline=time.monotonic() + 0.05)
    assert not token.cancelled
    assert token.wait(5) is True
    assert token.cancelled
    assert token.remaining() == 0.0


def test_token_wait_times_out_without_cancel() -> None:
    token = CancelToken()
    assert token.wait(0.01) is False
    assert token.remaining() is None
    token.cancel()
    assert token.wait() is True


def test_no_token_outside_a_job() -> None:
    assert current_token() is None


def test_cancelling_a_queued_future_removes_it_and_frees_its_slot() -> None:
    pool = WorkerPool(1, queue_size=1)
    gate = Gate()
    pool.submit(gate)
    assert gate.started.wait(5)
    ran = threading.Event()
    queued = pool.submit(ran.set)
    with pytest.raises(QueueFull):
        pool.submit_nowait(lambda: None)
    assert queued.cancel()
    assert queued.cancelled()
    assert pool.statistics().queued == 0
    replacement = pool.submit_nowait(lambda: "took the slot")
    gate.open()
    assert replacement.result(5) == "took the slot"
    pool.close()
    assert not ran.is_set()
    stats = pool.statistics()
    assert stats.cancelled == 1
    assert stats.submitted == stats.completed + stats.cancelled


def test_an_abandoned_job_frees_its_slot_and_a_new_worker_takes_its_place() -> None:
    pool = WorkerPool(1, queue_size=2)
    stuck = Gate()
    future = pool.submit(stuck, "too late")
    assert stuck.started.wait(5)
    queued = pool.submit(threading.get_ident)
    assert pool.abandon(future)
    assert isinstance(future.exception(5), JobAbandoned)
    # The queued job runs on a new thread while the abandoned one is still stuck.
    assert queued.result(5) != threading.get_ident()
    report = pool.drain(5)  # does not wait for the stuck thread
    assert report.clean
    stats = pool.statistics()
    assert (stats.abandoned, stats.stuck, stats.running, stats.completed) == (1, 1, 0, 1)
    assert stats.submitted == stats.completed + stats.abandoned
    stuck.open()  # when it returns at last, its result is discarded
    assert future.exception() is not None
    assert pool.abandon(future) is False


def test_abandoning_a_job_that_is_not_running_does_nothing() -> None:
    with WorkerPool(1) as pool:
        done = pool.submit(lambda: 1)
        done.result(5)
        assert pool.abandon(done) is False
        assert pool.statistics().abandoned == 0
