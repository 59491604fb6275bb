"""`WorkerPool`: the seed's bounded worker pool, made production-grade.

Theory of operation
-------------------
Every piece of shared state lives under one lock, `_lock`; nothing relies on the GIL.

* A job is *placed* when it is admitted: given to a new worker while fewer than `max_workers`
  exist and none is idle, or else appended to the queue, waking an idle worker (the most
  recently idle one, so warm threads stay warm) unless one is already on its way (`_waking`).
  A woken worker takes whatever is first in the queue, and goes back to sleep if a busy worker
  took it meanwhile; if it leaves jobs queued, it wakes the next idle worker (a chain). So a
  burst of jobs wakes workers one after another as fast as they take jobs, not all at once:
  under the GIL, a burst of short jobs is mostly run by the workers already awake, instead of
  waking every idle one to queue for the GIL. A job is not bound to the worker woken for it: a
  worker that finishes a job takes the next without sleeping, which under load spares most
  wake-ups (and the thread switches they cost). Every queued job has a worker to take it: a
  busy one, the woken one, or an idle one the chain will wake.
* `_running` counts jobs a worker has taken, `_queue` holds the rest. A job is admitted only
  while `running + queued < max_workers + queue_size` (the seed's channel capacity) and nobody is
  ahead of it in the admission line. What the pool reports counts a queued job that a worker
  not busy is on its way to take (woken, or idle and next in the chain) as running
  (`_on_the_way`), so `queued` is what waits for a worker to free up, and never exceeds
  `queue_size`.
* An idle worker parks on a lock of its own, held while it sleeps and released to wake it (for
  work, or to retire): at most one wake-up per queued job, no shared Condition to stampede.
* Whoever removes an entry from the queue or the admission line, under the lock, owns it: a
  worker runs it, the timer expires it, a drain cancels it, `PoolFuture.cancel` forgets it. The
  counters move at that same instant, so `statistics()` always balances:
  `submitted == completed + failed + cancelled + expired + abandoned + running + queued`.
* `abandon(job)` gives up on a running job: its worker leaves `_workers` (so a replacement may
  start) and is marked; when its job returns, the worker books nothing and exits.
* Callbacks (job code, `discard`, `on_error`, Future callbacks) never run under the lock.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import sys
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, InvalidStateError
from time import monotonic
from typing import Any, ParamSpec, Protocol, TypeVar

from ._cancel import CancelToken
from ._errors import (
    DeadlineExceeded,
    JobAbandoned,
    JobCancelled,
    PoolClosed,
    PoolError,
    QueueFull,
)
from ._future import GONE as _GONE
from ._future import LINE as _LINE
from ._future import QUEUED as _QUEUED
from ._future import RUNNING as _RUNNING
from ._future import NotStarted, PoolFuture
from ._stats import DrainReport, Histogram, PoolStatistics

__all__ = ["ErrorHook", "Job", "Task", "WorkerPool", "current_token"]

log = logging.getLogger("poolserver.pool")

P = ParamSpec("P")
T = TypeVar("T")

#: Called in the worker thread with a job's exception and the job (a `PoolFuture` for `submit`).
ErrorHook = Callable[[BaseException, object], None]

# Pool states: OPEN admits jobs; DRAINING runs what it holds; CLOSED is final.
_OPEN, _DRAINING, _CLOSED = range(3)
# What happened to one run of a job.
_COMPLETED, _FAILED, _REQUEUED, _EXPIRED, _CANCELLED = range(5)

# The timer sleeps at least this long between passes: deadlines are enforced to within a few
# milliseconds, and a stream of short-lived deadlines cannot wake it thousands of times a second.
_TIMER_RESOLUTION = 0.005


class Job(Protocol):
    """What `WorkerPool.post` accepts: an object the pool runs, or discards if it never can."""

    def run(self) -> bool | None:
        """Do the work in a worker thread.

        Returns:
            True to go back to the end of the queue, keeping the job's place in the pool but
            letting queued jobs run first; anything else ends the job.
        """

    def discard(self, reason: PoolError) -> None:
        """Called instead of `run` when the job will never run: `QueueFull` when no room
        appeared in time, `DeadlineExceeded`, `JobCancelled` by a drain. Must not block."""


class _Entry(Protocol):
    """What the pool holds for a job: a `PoolFuture`, or a `_Posted` around a `Job`."""

    deadline: float | None
    enqueued: float
    admit_by: float
    where: int

    @property
    def job(self) -> object: ...

    def run(self) -> bool | None: ...

    def pool_discard(self, reason: PoolError) -> bool: ...

    def report_failure(self, exc: BaseException) -> None: ...


class Task:
    """A job for `WorkerPool.post` that carries the pool's bookkeeping in its own slots.

    Posting a plain `Job` costs the pool an object per post to hold that bookkeeping;
    posting a Task costs nothing more than the post. A Task is in one pool at most once at a
    time: post it again only after it ran (or returned True to be requeued, which the pool
    does itself) or was discarded. Subclasses implement `run` and `discard` as `Job` says.
    """

    __slots__ = ("admit_by", "deadline", "enqueued", "where")

    admit_by: float
    deadline: float | None
    enqueued: float
    where: int

    @property
    def job(self) -> object:
        """The job, as the pool's `on_error` hook receives it: the task itself."""
        return self

    def run(self) -> bool | None:
        """Do the work in a worker thread (see `Job.run`)."""
        raise NotImplementedError

    def discard(self, reason: PoolError) -> None:
        """Called instead of `run` when the task will never run (see `Job.discard`)."""
        raise NotImplementedError

    def pool_discard(self, reason: PoolError) -> bool:
        """The pool's side of `discard`: an error in it is logged, never raised."""
        try:
            self.discard(reason)
        except Exception:
            log.exception("discarding job %r failed", self)
        return True

    def report_failure(self, exc: BaseException) -> None:
        """Log a failure of `run` that no `on_error` hook took."""
        log.error("job %r failed", self, exc_info=(type(exc), exc, exc.__traceback__))


class _Posted:
    """The pool's bookkeeping around a `post()`ed job."""

    __slots__ = ("admit_by", "deadline", "enqueued", "job", "where")

    def __init__(self, job: Job, deadline: float | None) -> None:
        self.job = job
        self.deadline = deadline
        self.enqueued = monotonic()
        self.admit_by = math.inf
        self.where = _GONE

    def run(self) -> bool | None:
        return self.job.run()

    def pool_discard(self, reason: PoolError) -> bool:
        try:
            self.job.discard(reason)
        except Exception:
            log.exception("discarding job %r failed", self.job)
        return True

    def report_failure(self, exc: BaseException) -> None:
        log.error("job %r failed", self.job, exc_info=(type(exc), exc, exc.__traceback__))


class _Worker:
    """A worker thread's handle. `wake` is held while the worker is parked or busy; `entry` is
    the job it runs (a new worker's first, or one taken from the queue)."""

    __slots__ = ("abandoned", "entry", "number", "thread", "wake")

    def __init__(self, number: int, entry: _Entry) -> None:
        self.number = number
        self.entry: _Entry | None = entry
        self.wake = threading.Lock()
        self.wake.acquire()
        self.abandoned = False
        self.thread: threading.Thread | None = None


_local = threading.local()

_GIL_ENABLED: bool = getattr(sys, "_is_gil_enabled", lambda: True)()


def current_token() -> CancelToken | None:
    """The cancel token of the job running in this thread, or None outside a pool job.

    Jobs from `submit()` always have one (with the job's deadline); a `post()`ed job has one
    if it has a `token` attribute that is a `CancelToken`.
    """
    worker: _Worker | None = getattr(_local, "worker", None)
    entry = worker.entry if worker is not None else None
    if entry is None:
        return None
    if isinstance(entry, PoolFuture):
        return entry.token
    token = getattr(entry.job, "token", None)
    return token if isinstance(token, CancelToken) else None


class WorkerPool(Executor):
    """A bounded pool of reusable worker threads fed by a bounded queue.

    At most `max_workers` jobs run at once and at most `queue_size` wait, as in the seed's
    buffered channel of capacity `max_workers + queue_size`. It is a
    `concurrent.futures.Executor`, so it drops in where `ThreadPoolExecutor` is used, but
    `submit` blocks while the pool is full instead of queueing without bound.

    Args:
        max_workers: threads at most; they start on demand and are reused. Defaults to
            `ThreadPoolExecutor`'s `min(32, cpu_count + 4)`.
        queue_size: jobs that may wait for a worker (0: none, a job needs a free worker).
        max_waiting: jobs that `post()` may hold in its admission line while the pool is full.
        name: prefix of the worker threads' names.
        initializer: called with `initargs` in each worker thread when it starts, as in
            `ThreadPoolExecutor`; if it raises, the error is logged and the worker goes on.
        on_error: called in the worker thread with each job's exception and the job. Without
            it, a failed `post()` job is logged at ERROR with its traceback, and a failed
            `submit()` job is logged only if its future is collected without anyone reading
            the exception (it is always kept on the future and counted as failed).
        timings: keep the histograms of queue wait and run time (`statistics()`). An owner
            that times its jobs itself turns them off: that spares two clock reads, two
            bisections and four float operations per job (the HTTP server does, ~4% of
            its keep-alive throughput on one core).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        queue_size: int = 1024,
        *,
        max_waiting: int = 1024,
        name: str = "pool",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        on_error: ErrorHook | None = None,
        timings: bool = True,
    ) -> None:
        if max_workers is None:
            max_workers = min(32, (os.cpu_count() or 1) + 4)
        _check_count("max_workers", max_workers, minimum=1)
        _check_count("queue_size", queue_size, minimum=0)
        _check_count("max_waiting", max_waiting, minimum=0)
        self._max_workers = max_workers
        self._queue_size = queue_size
        self._capacity = max_workers + queue_size
        self._max_waiting = max_waiting
        self._name = name
        self._initializer = initializer
        self._initargs = initargs
        self._on_error = on_error
        self._timings = timings

        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # blocked submitters wait here
        self._changed = threading.Condition(self._lock)  # drains wait here
        self._timer_cv = threading.Condition(self._lock)
        self._queue: deque[_Entry] = deque()
        self._line: deque[_Entry] = deque()
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._threads: list[threading.Thread] = []
        self._stuck_threads: set[threading.Thread] = set()
        self._worker_numbers = itertools.count(1)
        self._state = _OPEN
        self._running = 0
        self._blocked = 0
        # True whenever the pool is not open, or jobs wait for room, or there are workers to
        # retire; may stay True after that ends, until a worker's next job books it. While
        # False, a worker books a completed job and takes the next without looking at them,
        # so whatever starts one of those conditions must set it.
        self._unsteady = False
        self._waking = 0  # workers woken for work that have not taken the lock yet

        self._submitted = self._completed = self._failed = 0
        self._rejected = self._cancelled = self._expired = 0
        self._abandoned = self._stuck = 0
        # Histogram sums live here, not in the histograms, so the worker's hot path can add
        # to them without a call (the bucket counts are bumped inline too).
        self._queue_wait = Histogram()
        self._run_time = Histogram()
        self._wait_sum = self._run_sum = 0.0

        self._timer: threading.Thread | None = None
        self._timer_due = math.inf
        self._late: list[tuple[_Entry, PoolError]] = []  # taken out, to be discarded

    # ----------------------------------------------------------------- admission
    #
    # The hot paths (submit, post, and the worker loop) take the lock with `acquire(False)`
    # and fall back to `_acquire_contended`, and book the common case inline, with few calls
    # made while the lock is held: see `_acquire_contended` for why.

    def submit(  # type: ignore[override]
        self,
        fn: Callable[..., T],
        /,
        *args: Any,
        timeout: float | None = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> PoolFuture[T]:
        """Schedule `fn(*args, **kwargs)`, blocking while the pool is full.

        Args:
            timeout: seconds to wait for room at most (None: as long as it takes).
            deadline: a `time.monotonic()` instant; if the job has not started by then it
                never runs and its future fails with `DeadlineExceeded`.

        Raises:
            QueueFull: no room appeared within `timeout`.
            PoolClosed: the pool is draining or closed, or began to while this call waited.
        """
        future: PoolFuture[T] = PoolFuture(self, fn, args, kwargs, deadline)
        lock = self._lock
        if not lock.acquire(False):
            _acquire_contended(lock)
        try:
            if self._state or self._line or self._running + len(self._queue) >= self._capacity:
                self._check_open_locked()
                self._wait_for_room_locked(timeout)
            self._submitted += 1
            self._place_locked(future)
        finally:
            lock.release()
        return future

    def submit_nowait(
        self, fn: Callable[..., T], /, *args: Any, deadline: float | None = None, **kwargs: Any
    ) -> PoolFuture[T]:
        """As `submit`, but raise `QueueFull` at once instead of waiting for room."""
        return self.submit(fn, *args, timeout=0.0, deadline=deadline, **kwargs)

    def post(self, job: Job | Task, *, wait: float = 0.0, deadline: float | None = None) -> None:
        """Hand `job` to the pool without ever blocking the caller (for I/O threads).

        If the pool is full, the job waits in the admission line, in order, for at most `wait`
        seconds; if no room appears, `job.discard(QueueFull(...))` is called, from the pool's
        timer thread, or from this call when `wait` is 0 or the line is full.

        Raises:
            PoolClosed: the pool is draining or closed.
        """
        entry: _Entry
        if isinstance(job, Task):
            entry = job  # its own bookkeeping: nothing to allocate
            job.deadline = deadline
            job.enqueued = monotonic() if self._timings else 0.0
        else:
            entry = _Posted(job, deadline)
        lock = self._lock
        if not lock.acquire(False):
            _acquire_contended(lock)
        try:
            if self._state:
                self._check_open_locked()
            queue = self._queue
            if not self._line and self._running + len(queue) < self._capacity:
                self._submitted += 1
                idle = self._idle
                if idle or len(self._workers) >= self._max_workers:
                    # `_place_locked`'s usual case, written out.
                    entry.where = _QUEUED
                    queue.append(entry)
                    if deadline is not None and deadline < self._timer_due:
                        self._watch_locked(deadline)
                    if idle and not self._waking:
                        self._waking += 1
                        idle.pop().wake.release()
                else:
                    self._place_locked(entry)
                return
            if wait > 0 and len(self._line) < self._max_waiting:
                entry.where = _LINE
                entry.admit_by = monotonic() + wait
                if deadline is not None and deadline < entry.admit_by:
                    entry.admit_by = deadline  # no use admitting it after its deadline
                self._line.append(entry)
                self._unsteady = True
                self._watch_locked(entry.admit_by)
                return
            self._rejected += 1
        finally:
            lock.release()
        entry.pool_discard(QueueFull("the pool is full"))

    def _has_room_locked(self) -> bool:
        return self._running + len(self._queue) < self._capacity and not self._line

    def _check_open_locked(self) -> None:
        if self._state != _OPEN:
            raise PoolClosed("the pool is draining or closed")

    def _wait_for_room_locked(self, timeout: float | None) -> None:
        end = None if timeout is None else monotonic() + timeout
        self._blocked += 1
        self._unsteady = True
        try:
            while not self._has_room_locked():
                remaining = None if end is None else end - monotonic()
                if remaining is not None and remaining <= 0:
                    self._rejected += 1
                    raise QueueFull(f"the pool is full ({self._capacity} jobs)")
                self._room.wait(remaining)
                self._check_open_locked()
        finally:
            self._blocked -= 1

    def _place_locked(self, entry: _Entry) -> None:
        if not self._idle and len(self._workers) < self._max_workers:
            self._running += 1
            entry.where = _RUNNING
            self._spawn_locked(entry)
            return
        entry.where = _QUEUED
        self._queue.append(entry)
        if entry.deadline is not None:
            self._watch_locked(entry.deadline)
        self._wake_for_queue_locked()

    def _wake_for_queue_locked(self) -> None:
        """Wake an idle worker if jobs are queued and no worker is on its way.

        One at a time: the woken worker wakes the next if it leaves jobs queued (a chain; see
        `_next_locked`), so workers wake as fast as jobs are taken, not all at once.
        """
        if self._idle and self._queue and not self._waking:
            self._waking += 1
            self._idle.pop().wake.release()

    def _room_freed_locked(self) -> None:
        """Give freed room to the admission line first, then to one blocked submitter.

        A waiting entry whose time ran out meanwhile (the timer looks only now and then) is
        not admitted: it goes to the timer to be refused, so no worker spends its time on it.
        """
        line = self._line
        if line:
            now = monotonic()
            while line and self._running + len(self._queue) < self._capacity:
                entry = line.popleft()
                if entry.admit_by <= now:
                    entry.where = _GONE
                    self._rejected += 1
                    self._late_locked(entry, _lapsed(entry, now))
                    continue
                self._submitted += 1
                self._place_locked(entry)
        if self._blocked and self._has_room_locked():
            self._room.notify()

    def _skip_late_locked(self, now: float) -> None:
        """Queued entries past their deadline go to the timer to be refused; a worker takes
        the next one instead of spending its time on them."""
        queue = self._queue
        while queue and (deadline := queue[0].deadline) is not None and deadline <= now:
            late = queue.popleft()
            late.where = _GONE
            self._expired += 1
            self._late_locked(late, DeadlineExceeded("the job's deadline passed in the queue"))

    def _late_locked(self, entry: _Entry, reason: PoolError) -> None:
        """Hand an entry that will never run to the timer thread, which discards it."""
        if not self._late:
            self._poke_timer_locked()
        self._late.append((entry, reason))

    # ----------------------------------------------------------------- workers

    def _spawn_locked(self, entry: _Entry) -> None:
        worker = _Worker(next(self._worker_numbers), entry)
        thread = threading.Thread(
            target=self._work, args=(worker,), name=f"{self._name}-worker-{worker.number}"
        )
        # Daemon: a job stuck forever must not keep the process alive after a bounded drain.
        thread.daemon = True
        worker.thread = thread
        self._workers.add(worker)
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _initialize_worker(self, worker: _Worker) -> None:
        _local.worker = worker
        if self._initializer is not None:
            try:
                self._initializer(*self._initargs)
            except Exception:
                log.exception(
                    "the worker initializer failed in %s", threading.current_thread().name
                )

    def _work(self, worker: _Worker) -> None:  # noqa: PLR0912, PLR0915 - the hot loop, one frame
        self._initialize_worker(worker)
        lock, queue, idle, workers = self._lock, self._queue, self._idle, self._workers
        timed = self._timings
        wait_counts, wait_bounds = self._queue_wait.counts, self._queue_wait.bounds
        run_counts, run_bounds = self._run_time.counts, self._run_time.bounds
        entry = worker.entry
        while True:
            if entry is None:
                # Woken without a job: take the first queued one, or sleep again, or exit.
                if not lock.acquire(False):
                    _acquire_contended(lock)
                try:
                    if worker not in workers:
                        return  # retired while idle
                    self._waking -= 1
                    entry = self._next_locked(worker)
                    retired = worker not in workers
                    if retired:
                        self._wake_for_queue_locked()  # for the job it was woken for
                    elif entry is None:
                        idle.append(worker)
                finally:
                    lock.release()
                if retired:
                    return
                if entry is None:
                    worker.wake.acquire()
                    continue
            started = monotonic()
            deadline = entry.deadline
            # Running the entry is written out here, not called: one frame less per job.
            if deadline is not None and started >= deadline:
                outcome = self._expire_entry(entry)
            else:
                try:
                    again = entry.run()
                except NotStarted:
                    outcome = _CANCELLED
                except BaseException as exc:  # noqa: BLE001 - a failing job never kills its worker
                    if not worker.abandoned:
                        self._report_failure(entry, exc)
                    outcome = _FAILED
                else:
                    outcome = _REQUEUED if again is True else _COMPLETED
            ended = monotonic()
            if not lock.acquire(False):
                _acquire_contended(lock)
            try:
                if worker.abandoned:
                    self._forget_stuck_locked(worker)
                    return
                if outcome == _COMPLETED and not self._unsteady:
                    # The common case, booked inline (see the note heading "admission").
                    self._completed += 1
                    entry.where = _GONE
                    if timed:
                        waited, ran = started - entry.enqueued, ended - started
                        wait_counts[bisect_left(wait_bounds, waited)] += 1
                        run_counts[bisect_left(run_bounds, ran)] += 1
                        self._wait_sum += waited
                        self._run_sum += ran
                    if queue:
                        if (head := queue[0].deadline) is not None and head <= ended:
                            self._skip_late_locked(ended)
                        if queue:
                            # One job ends and the next begins: `_running` stays as it is.
                            entry = queue.popleft()
                            entry.where = _RUNNING
                            worker.entry = entry
                            if queue and idle and not self._waking:
                                # The chain of `_wake_for_queue_locked`, written out.
                                self._waking += 1
                                idle.pop().wake.release()
                            continue
                    # The usual way to run out of work: park, in `_workers` still.
                    self._running -= 1
                    worker.entry = entry = None
                    park = True
                else:
                    self._running -= 1
                    self._account_locked(entry, outcome, started, ended)
                    self._skip_late_locked(ended)
                    self._unsteady = self._is_unsteady_locked()
                    entry = self._next_locked(worker)
                    park = entry is None and worker in workers
                if park:
                    idle.append(worker)
            finally:
                lock.release()
            if park:
                worker.wake.acquire()
                entry = None

    def _forget_stuck_locked(self, worker: _Worker) -> None:
        # Booked when it was abandoned: whatever its job did is discarded; the thread exits.
        self._stuck -= 1
        self._stuck_threads.discard(threading.current_thread())
        worker.entry = None
        self._notify_changed_locked()

    def _expire_entry(self, entry: _Entry) -> int:
        """Discard an entry whose deadline passed before it started (outside the lock)."""
        # Still counted as running while discarded: the books balance throughout.
        reason = DeadlineExceeded("the job's deadline passed before it started")
        return _EXPIRED if entry.pool_discard(reason) else _CANCELLED

    def _account_locked(self, entry: _Entry, outcome: int, started: float, ended: float) -> None:
        """Book any outcome of a run (`_work` books a plain completion inline while the pool
        is steady)."""
        if outcome == _EXPIRED:
            self._expired += 1
        elif outcome == _CANCELLED:
            self._cancelled += 1
        else:
            if self._timings:
                self._observe_locked(started - entry.enqueued, ended - started)
            if outcome == _REQUEUED:
                entry.enqueued, entry.deadline, entry.where = ended, None, _QUEUED
                self._queue.append(entry)
                return
            if outcome == _COMPLETED:
                self._completed += 1
            else:
                self._failed += 1
        entry.where = _GONE
        if self._line or self._blocked:
            self._room_freed_locked()

    def _is_unsteady_locked(self) -> bool:
        return (
            self._state != _OPEN
            or bool(self._line)
            or bool(self._blocked)
            or len(self._workers) > self._max_workers
        )

    def _observe_locked(self, waited: float, ran: float) -> None:
        self._queue_wait.observe(waited)
        self._run_time.observe(ran)
        self._wait_sum += waited
        self._run_sum += ran

    def _next_locked(self, worker: _Worker) -> _Entry | None:
        """The next entry for `worker`, or None to park (still in `_workers`) or exit."""
        if len(self._workers) > self._max_workers:
            self._retire_locked(worker)
            return None
        if self._queue:
            entry = self._queue.popleft()
            entry.where = _RUNNING
            self._running += 1
            worker.entry = entry
            # Jobs left queued: wake the next worker, which does the same (the chain).
            self._wake_for_queue_locked()
            return entry
        worker.entry = None
        if self._state != _OPEN:
            if not self._line:
                self._retire_locked(worker)
                # Workers left idle while jobs were queued for others already woken are of
                # no further use either.
                self._retire_idle_locked(keep=0)
            if not self._running and not self._line:
                # Nothing is left to run: a drain nobody waits for (shutdown(wait=False))
                # still ends, and the timer thread exits.
                self._state = _CLOSED
                self._timer_cv.notify()
            self._changed.notify_all()
        return None

    def _retire_locked(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        worker.entry = None
        if self._state != _OPEN:
            self._changed.notify_all()

    def _retire_idle_locked(self, keep: int) -> None:
        while self._idle and len(self._workers) > keep:
            worker = self._idle.pop()
            self._retire_locked(worker)
            worker.wake.release()

    def _report_failure(self, entry: _Entry, exc: BaseException) -> None:
        hook = self._on_error
        if hook is None:
            entry.report_failure(exc)
            return
        try:
            hook(exc, entry.job)
        except Exception:
            log.exception("the on_error hook failed on %r", entry.job)

    def _discard_all(self, entries: list[_Entry], reason: PoolError) -> None:
        for entry in entries:
            entry.pool_discard(reason)

    # ----------------------------------------------------------------- deadlines

    def _watch_locked(self, when: float) -> None:
        """Make sure the timer looks again by `when` (an entry waiting until then was placed).

        `_timer_due` is never later than any due time of a queued or waiting entry; it may be
        earlier (the entry left the queue meanwhile), which only costs the timer a look. In
        the usual case entries arrive with later due times than those before them, so this
        is one comparison and no wake-up.
        """
        if when < self._timer_due:
            self._timer_due = when
            self._poke_timer_locked()

    def _poke_timer_locked(self) -> None:
        """Start the timer thread, or wake it to look again."""
        if self._timer is None:
            self._timer = threading.Thread(
                target=self._run_timer, name=f"{self._name}-timer", daemon=True
            )
            self._timer.start()
        else:
            self._timer_cv.notify()

    def _run_timer(self) -> None:
        while True:
            with self._lock:
                due = self._sweep_locked(monotonic())
                if not due:
                    if self._state == _CLOSED:
                        self._timer = None
                        return
                    if math.isinf(self._timer_due):
                        self._timer_cv.wait()
                    else:
                        pause = max(self._timer_due - monotonic(), _TIMER_RESOLUTION)
                        self._timer_cv.wait(pause)
                    continue
            for entry, reason in due:
                if not entry.pool_discard(reason):
                    with self._lock:
                        self._expired -= 1
                        self._cancelled += 1

    def _sweep_locked(self, now: float) -> list[tuple[_Entry, PoolError]]:
        """Take out what is due; set `_timer_due` to the next due time.

        The admission line is looked at from its head, in order: its waits run out in line
        order (they are equal in the usual case, so in time order too). The queue, bounded by
        `queue_size`, is looked at whole, so deadlines may come in any order.
        """
        due: list[tuple[_Entry, PoolError]] = self._late
        self._late = []
        line = self._line
        while line and line[0].admit_by <= now:
            entry = line.popleft()
            entry.where = _GONE
            self._rejected += 1
            due.append((entry, QueueFull("no room in the pool within the wait allowed")))
        next_due = line[0].admit_by if line else math.inf
        queue = self._queue
        if any(entry.deadline is not None and entry.deadline <= now for entry in queue):
            kept = [e for e in queue if e.deadline is None or e.deadline > now]
            for entry in queue:
                if entry.deadline is not None and entry.deadline <= now:
                    entry.where = _GONE
                    self._expired += 1
                    due.append((entry, DeadlineExceeded("the job's deadline passed in the queue")))
            queue.clear()  # in place: the workers hold this deque
            queue.extend(kept)
        for entry in queue:
            if entry.deadline is not None and entry.deadline < next_due:
                next_due = entry.deadline
        self._timer_due = next_due
        if due:
            self._room_freed_locked()
            self._notify_changed_locked()
            due.extend(self._late)  # what the room just freed turned away
            self._late = []
        return due

    # ----------------------------------------------------------------- cancellation

    def forget(self, future: PoolFuture[Any]) -> None:
        """Remove a cancelled future from the queue, freeing its slot (`PoolFuture.cancel`)."""
        with self._lock:
            if future.where != _QUEUED:
                return
            self._queue.remove(future)
            future.where = _GONE
            self._cancelled += 1
            self._room_freed_locked()
            self._notify_changed_locked()

    def _notify_changed_locked(self) -> None:
        if self._state != _OPEN:
            self._changed.notify_all()

    # ----------------------------------------------------------------- abandoning

    def abandon(self, job: object) -> bool:
        """Give up on a running job: free its slot and let a new worker take its place.

        Python threads cannot be stopped: the job's thread runs on, outside the pool (it is
        counted in `stuck` until it returns) and whatever it produces is discarded. A
        `submit()`ed job's future fails with `JobAbandoned` at once; a `post()`ed job is told
        nothing (its owner decided to abandon it). Returns False if `job` is not running.
        """
        with self._lock:
            for worker in self._workers:
                entry = worker.entry
                if entry is not None and entry.job is job and entry.where == _RUNNING:
                    break
            else:
                return False
            if isinstance(entry, PoolFuture) and entry.done():
                return False  # it has finished; only its booking is under way
            worker.abandoned = True
            if worker.thread is not None:
                self._stuck_threads.add(worker.thread)
            entry.where = _GONE
            self._workers.discard(worker)
            self._running -= 1
            self._abandoned += 1
            self._stuck += 1
            while self._queue and len(self._workers) < self._max_workers:
                queued = self._queue.popleft()
                queued.where = _RUNNING
                self._running += 1
                self._spawn_locked(queued)
            if self._line or self._blocked:
                self._room_freed_locked()
            self._notify_changed_locked()
        if isinstance(entry, PoolFuture):
            with contextlib.suppress(InvalidStateError):
                entry.set_exception(JobAbandoned("the job was abandoned"))
        return True

    # ----------------------------------------------------------------- resize

    def resize(self, max_workers: int) -> None:
        """Change the number of workers: grows at once, shrinks as busy workers finish a job."""
        _check_count("max_workers", max_workers, minimum=1)
        with self._lock:
            self._max_workers = max_workers
            self._unsteady = True  # workers beyond the new maximum retire
            self._capacity = max_workers + self._queue_size
            while self._queue and len(self._workers) < max_workers:
                entry = self._queue.popleft()
                entry.where = _RUNNING
                self._running += 1
                self._spawn_locked(entry)
            self._retire_idle_locked(keep=max_workers)
            self._room_freed_locked()
            if self._blocked:
                self._room.notify_all()

    # ----------------------------------------------------------------- shutdown

    def drain(self, timeout: float | None = None) -> DrainReport:
        """Stop admitting, let held jobs finish for up to `timeout` seconds, cancel the rest.

        Blocked submitters fail with `PoolClosed`. Jobs still queued or waiting for admission
        when time runs out are cancelled (futures cancelled, posted jobs discarded with
        `JobCancelled`). Running jobs cannot be stopped: the report counts them and their
        threads are abandoned (they are daemon threads). Afterwards the pool is closed and,
        time allowing, every thread that had nothing left to run has exited.
        """
        end = None if timeout is None else monotonic() + timeout
        with self._lock:
            finished_before = self._completed + self._failed
            self._begin_draining_locked()
            while self._running or self._queue or self._line:
                remaining = None if end is None else end - monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(remaining)
            leftovers = self._take_pending_locked()
            self._state = _CLOSED
            self._retire_idle_locked(keep=0)
            self._timer_cv.notify()
            report = DrainReport(
                finished=self._completed + self._failed - finished_before,
                cancelled=len(leftovers),
                still_running=self._running,
            )
            # A stuck (abandoned) thread may never return: never wait for one.
            threads = [t for t in self._threads if t not in self._stuck_threads]
            if self._timer is not None:
                threads.append(self._timer)
        self._discard_all(leftovers, JobCancelled("cancelled by a drain"))
        _join(threads, end)
        return report

    def close(self) -> None:
        """Drain without a time limit: every held job runs, then every thread has exited."""
        self.drain(None)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """As `Executor.shutdown`: stop admitting; optionally cancel queued jobs; maybe wait."""
        with self._lock:
            self._begin_draining_locked()
            leftovers = self._take_pending_locked() if cancel_futures else []
        self._discard_all(leftovers, JobCancelled("cancelled by shutdown"))
        if wait:
            self.drain(None)

    def _begin_draining_locked(self) -> None:
        if self._state == _OPEN:
            self._state = _DRAINING
            self._unsteady = True
        self._room.notify_all()
        if not self._queue and not self._line:
            self._retire_idle_locked(keep=0)
            if not self._running:
                self._state = _CLOSED
                self._timer_cv.notify()
        self._changed.notify_all()

    def _take_pending_locked(self) -> list[_Entry]:
        queued, waiting = list(self._queue), list(self._line)
        self._queue.clear()
        self._line.clear()
        self._cancelled += len(queued)
        self._rejected += len(waiting)
        for entry in itertools.chain(queued, waiting):
            entry.where = _GONE
        self._changed.notify_all()
        return queued + waiting

    # ----------------------------------------------------------------- introspection

    @property
    def has_error_hook(self) -> bool:
        """Whether failures go to an `on_error` hook (else they are logged as documented)."""
        return self._on_error is not None

    @property
    def max_workers(self) -> int:
        """The current maximum number of workers."""
        return self._max_workers

    @property
    def queue_size(self) -> int:
        """How many jobs may wait for a worker."""
        return self._queue_size

    @property
    def capacity(self) -> int:
        """`max_workers + queue_size`: how many jobs the pool holds at most."""
        return self._capacity

    @property
    def running_hint(self) -> int:
        """Jobs running now, read without the lock: only a hint, for decisions such as
        whether to accept more work."""
        return self._running + self._on_the_way()

    @property
    def pending(self) -> int:
        """Jobs waiting for a worker now (queued or in the admission line). Read without the
        lock, so only a hint: for decisions such as yielding a worker to waiting jobs."""
        return len(self._queue) - self._on_the_way() + len(self._line)

    def _on_the_way(self) -> int:
        """Queued jobs that a worker not busy is on its way to take: the woken one, and the
        idle ones the chain of wake-ups will reach."""
        return min(self._waking + len(self._idle), len(self._queue))

    def statistics(self) -> PoolStatistics:
        """A consistent snapshot of the pool's state and counters."""
        with self._lock:
            return PoolStatistics(
                max_workers=self._max_workers,
                queue_size=self._queue_size,
                workers=len(self._workers),
                running=self._running + self._on_the_way(),
                queued=len(self._queue) - self._on_the_way(),
                idle=len(self._idle),
                waiting=len(self._line),
                submitted=self._submitted,
                completed=self._completed,
                failed=self._failed,
                rejected=self._rejected,
                cancelled=self._cancelled,
                expired=self._expired,
                abandoned=self._abandoned,
                stuck=self._stuck,
                queue_wait=self._queue_wait.snapshot(self._wait_sum),
                run_time=self._run_time.snapshot(self._run_sum),
            )


def _acquire_contended(lock: threading.Lock) -> None:
    """Take a lock that another thread holds, without starting a lock convoy.

    Under the GIL, a thread that blocks in `acquire()` is handed the lock while it has no
    GIL, and then waits for the GIL while holding the lock; the thread that has the GIL soon
    needs the lock and blocks in turn, and from then on every hand-over of the lock costs two
    context switches. Measured on 2 cores with one submitter, one worker and 50,000 jobs:
    9,754 context switches with a blocking acquire, 284 with this, and 1.5x the cost per job
    (bench/pool_overhead.py measures the cost). Backing off with both released and retrying while
    holding the GIL avoids it: the holder finishes its few lines and lets go. Without a GIL
    (free-threaded builds) there is no convoy to avoid, so block as usual.
    """
    if not _GIL_ENABLED:
        lock.acquire()
        return
    delay = 2e-5
    while not lock.acquire(False):
        time.sleep(delay)
        delay = min(delay * 2, 1e-3)


def _lapsed(entry: _Entry, now: float) -> PoolError:
    """Why a waiting entry's time ran out: its own deadline, or the wait allowed for room."""
    if entry.deadline is not None and entry.deadline <= now:
        return DeadlineExceeded("the job's deadline passed while it waited for room")
    return QueueFull("no room in the pool within the wait allowed")


def _join(threads: list[threading.Thread], end: float | None) -> None:
    current = threading.current_thread()
    for thread in threads:
        if thread is not current:
            thread.join(None if end is None else max(0.0, end - monotonic()))


def _check_count(name: str, value: int, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
