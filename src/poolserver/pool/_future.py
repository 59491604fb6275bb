"""`PoolFuture`: the Future that `WorkerPool.submit` returns, which is also the job it runs."""

from __future__ import annotations

import logging
import math
import threading
import traceback
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from time import monotonic
from typing import Any, Protocol, TypeVar

from ._cancel import CancelToken
from ._errors import JobCancelled, PoolError

T = TypeVar("T")
log = logging.getLogger("poolserver.pool")

_TOKEN_LOCK = threading.Lock()

# Where an entry is, as the pool tracks it. An entry belongs to exactly one place at a time.
LINE, QUEUED, RUNNING, GONE = range(4)


class NotStarted(Exception):
    """Raised by an entry's `run` when it was cancelled before a worker took it."""


class _Forgetter(Protocol):
    @property
    def has_error_hook(self) -> bool: ...

    def forget(self, future: PoolFuture[Any]) -> None: ...


class _Unretrieved:
    """Logs a job's exception when its future dies without anyone having looked at it.

    Holds the traceback as text: the exception itself references the frames that ran the
    job, and through them the future, which would then never be collected.
    """

    __slots__ = ("description", "retrieved", "text")

    def __init__(self, exc: BaseException, description: str) -> None:
        self.text = "".join(traceback.format_exception(exc)).rstrip()
        self.description = description
        self.retrieved = False

    def report(self) -> None:
        if not self.retrieved:
            log.error(
                "job %s failed and its exception was never retrieved:\n%s",
                self.description,
                self.text,
            )


class PoolFuture(Future[T]):
    """A `concurrent.futures.Future` that knows its pool and carries a cancel token.

    `cancel()` on a queued future removes it from the pool's queue at once, freeing its slot.
    On a running future it cannot stop the thread: it cancels the job's `token` (which the job
    may consult through `current_token()`) and returns False, as `Future.cancel` defines.
    """

    # The pool's bookkeeping for this job lives on the future itself: one object per job.
    # Defaults are class attributes so the common case sets fewer instance attributes.
    where = GONE
    admit_by = math.inf
    _token: CancelToken | None = None
    _unretrieved: _Unretrieved | None = None

    def __init__(
        self,
        pool: _Forgetter,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        deadline: float | None,
    ) -> None:
        super().__init__()
        self._pool = pool
        self._call: tuple[Callable[..., T], tuple[Any, ...], dict[str, Any]] | None = (
            fn,
            args,
            kwargs,
        )
        self.deadline = deadline
        self.enqueued = monotonic()

    @property
    def job(self) -> object:
        """The job, as the pool's `on_error` hook receives it: the future itself."""
        return self

    @property
    def token(self) -> CancelToken:
        """The job's cancel token, with the job's deadline; made on first use."""
        if self._token is None:
            with _TOKEN_LOCK:
                if self._token is None:
                    self._token = CancelToken(self.deadline)
        return self._token

    def cancel(self) -> bool:
        """Cancel the job if it has not started; otherwise ask it to stop through its token."""
        if super().cancel():
            self._pool.forget(self)
            return True
        if self.running():
            self.token.cancel()
        return False

    def result(self, timeout: float | None = None) -> T:
        """As `Future.result`; marks a failure as seen, so it is not logged as forgotten."""
        try:
            return super().result(timeout)
        finally:
            self._mark_retrieved()

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """As `Future.exception`; marks a failure as seen, so it is not logged as forgotten."""
        try:
            return super().exception(timeout)
        finally:
            self._mark_retrieved()

    def run(self) -> None:
        """Run the job in the calling worker and settle the future with its outcome.

        Raises:
            NotStarted: the future was cancelled before it could start.
            BaseException: whatever the job raised, after it was stored on the future.
        """
        if not self.set_running_or_notify_cancel():
            raise NotStarted
        call, self._call = self._call, None  # drop references to the arguments once run
        assert call is not None
        fn, args, kwargs = call
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if not self._pool.has_error_hook:
                # Armed before the future completes: whoever reads the exception after that
                # finds the flag to mark, so a failure that was read is never logged.
                self._track_unretrieved(exc, fn)
            self.set_exception(exc)
            raise
        self.set_result(result)

    def pool_discard(self, reason: PoolError) -> bool:
        """Settle a job that will never run; False if the caller had cancelled it already."""
        self._call = None
        if isinstance(reason, JobCancelled):
            Future.cancel(self)
            return True
        if not self.set_running_or_notify_cancel():
            return False
        self.set_exception(reason)
        return True

    def report_failure(self, exc: BaseException) -> None:
        """Nothing to do: `run` armed the unretrieved-exception log before completing."""

    def _track_unretrieved(self, exc: BaseException, fn: object) -> None:
        self._unretrieved = flag = _Unretrieved(exc, repr(fn))
        weakref.finalize(self, flag.report)

    def _mark_retrieved(self) -> None:
        if self._unretrieved is not None:
            self._unretrieved.retrieved = True
