"""Random sequences of operations: the books always balance, and close leaves no thread."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poolserver.pool import PoolClosed, PoolError, PoolFuture, QueueFull, WorkerPool

from .helpers import Gate, RecordingJob

operations = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(["quick", "gated", "failing", "deadline"])),
        st.tuples(st.just("submit_nowait"), st.sampled_from(["quick", "gated", "failing"])),
        st.tuples(st.just("post"), st.sampled_from([0.0, 0.01, 5.0])),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("open"), st.integers(0, 30)),
        st.tuples(st.just("resize"), st.integers(1, 4)),
        st.tuples(st.just("drain"), st.sampled_from([0.0, 0.02])),
    ),
    max_size=40,
)


@dataclass
class Run:
    pool: WorkerPool
    gates: list[Gate] = field(default_factory=list)
    futures: list[PoolFuture[object]] = field(default_factory=list)

    def job(self, kind: str) -> tuple[object, float | None]:
        if kind == "gated":
            gate = Gate()
            self.gates.append(gate)
            return gate, None
        if kind == "failing":
            return (lambda: 1 / 0), None
        if kind == "deadline":
            return (lambda: None), time.monotonic() + 0.005
        return (lambda: None), None

    def apply(self, name: str, arg: object) -> None:
        pool = self.pool
        try:
            if name in ("submit", "submit_nowait"):
                fn, deadline = self.job(str(arg))
                submit = pool.submit_nowait if name == "submit_nowait" else pool.submit
                kwargs = {} if name == "submit_nowait" else {"timeout": 0.01}
                self.futures.append(submit(fn, deadline=deadline, **kwargs))  # type: ignore[arg-type]
            elif name == "post":
                assert isinstance(arg, float)
                pool.post(RecordingJob(), wait=arg)
            elif name == "cancel" and self.futures:
                assert isinstance(arg, int)
                self.futures[arg % len(self.futures)].cancel()
            elif name == "open" and self.gates:
                assert isinstance(arg, int)
                self.gates[arg % len(self.gates)].open()
            elif name == "resize":
                assert isinstance(arg, int)
                pool.resize(arg)
            elif name == "drain":
                assert isinstance(arg, float)
                pool.drain(arg)
        except (QueueFull, PoolClosed):
            pass


def assert_books_balance(pool: WorkerPool) -> None:
    s = pool.statistics()
    assert s.submitted == (
        s.completed + s.failed + s.cancelled + s.expired + s.abandoned + s.running + s.queued
    )
    assert s.running >= 0
    assert s.queued >= 0
    assert s.waiting >= 0
    assert s.queued <= s.queue_size


@settings(
    max_examples=int(os.environ.get("POOLSERVER_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_books_balance_under_random_operations(ops: list[tuple[str, object]]) -> None:
    before = set(threading.enumerate())
    run = Run(WorkerPool(2, queue_size=2, max_waiting=2, on_error=lambda exc, job: None))
    for name, arg in ops:
        run.apply(name, arg)
        assert_books_balance(run.pool)
    for gate in run.gates:
        gate.open()
    run.pool.close()
    assert_books_balance(run.pool)
    stats = run.pool.statistics()
    assert stats.running == stats.queued == stats.waiting == 0
    for future in run.futures:
        assert future.done()
    leftover = [t for t in threading.enumerate() if t not in before]
    for thread in leftover:
        thread.join(5)
    assert not [t for t in leftover if t.is_alive()]


def test_pool_errors_share_a_base() -> None:
    assert issubclass(QueueFull, PoolError)
    assert issubclass(PoolClosed, PoolError)
