"""The pool's exceptions: one class per situation a caller handles differently."""

from __future__ import annotations


class PoolError(Exception):
    """Base class of every error the pool raises itself."""


class PoolClosed(PoolError, RuntimeError):
    """The pool takes no new jobs: it is draining or closed.

    A subclass of `RuntimeError`, which is what `ThreadPoolExecutor` raises after shutdown.
    """


class QueueFull(PoolError):
    """No room: every worker is busy and the queue is full, and no room appeared in time."""


class DeadlineExceeded(PoolError, TimeoutError):
    """The job's deadline passed before a worker could start it, so it never ran."""


class JobCancelled(PoolError):
    """The job was cancelled before it started (a bounded drain ran out of time)."""


class JobAbandoned(PoolError):
    """The job ran too long and was abandoned: its worker was replaced, its result is discarded.

    Python threads cannot be stopped from outside; abandoning is the honest alternative.
    """
