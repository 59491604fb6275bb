"""Failures are kept, counted, handed to `on_error`, and never pass silently."""

from __future__ import annotations

import gc
import logging
import threading

import pytest

from poolserver.pool import WorkerPool

from .helpers import RecordingJob


def fail() -> None:
    raise ValueError("boom")


def test_failure_is_kept_on_the_future_and_counted() -> None:
    with WorkerPool(2, on_error=lambda exc, job: None) as pool:
        future = pool.submit(fail)
        with pytest.raises(ValueError, match="boom"):
            future.result(5)
    assert pool.statistics().failed == 1


def test_on_error_hook_receives_the_exception_and_the_job() -> None:
    seen: list[tuple[BaseException, object]] = []
    with WorkerPool(1, on_error=lambda exc, job: seen.append((exc, job))) as pool:
        future = pool.submit(fail)
        future.exception(5)
    assert len(seen) == 1
    assert isinstance(seen[0][0], ValueError)
    assert seen[0][1] is future


def test_a_failing_hook_is_logged_and_the_worker_lives_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def bad_hook(exc: BaseException, job: object) -> None:
        raise RuntimeError("hook broke")

    with WorkerPool(1, on_error=bad_hook) as pool:
        pool.submit(fail).exception(5)
        assert pool.submit(lambda: "alive").result(5) == "alive"
    assert "on_error hook failed" in caplog.text


def test_base_exceptions_in_jobs_are_contained() -> None:
    def exit_job() -> None:
        raise SystemExit(3)

    with WorkerPool(1, on_error=lambda exc, job: None) as pool:
        assert isinstance(pool.submit(exit_job).exception(5), SystemExit)
        assert pool.submit(lambda: 1).result(5) == 1


def test_a_failing_posted_job_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(RecordingJob):
        def run(self) -> bool:
            super().run()
            raise KeyError("posted")

    job = Failing()
    with WorkerPool(1) as pool:
        pool.post(job)
    assert job.ran.is_set()
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "KeyError" in caplog.text
    assert pool.statistics().failed == 1


def test_a_future_failure_nobody_reads_is_logged_when_the_future_goes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with WorkerPool(1) as pool:
        done = threading.Event()
        future = pool.submit(fail)
        future.add_done_callback(lambda f: done.set())
        assert done.wait(5)
    assert "never retrieved" not in caplog.text
    del future
    gc.collect()
    assert "never retrieved" in caplog.text
    assert "ValueError: boom" in caplog.text


def test_a_future_failure_that_was_read_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with WorkerPool(1) as pool:
        future = pool.submit(fail)
        assert isinstance(future.exception(5), ValueError)
    del future
    gc.collect()
    assert "never retrieved" not in caplog.text
