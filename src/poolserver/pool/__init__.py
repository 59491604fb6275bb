"""A bounded, drainable, observable worker pool: the seed's design, production-grade.

Knows nothing of sockets or HTTP. `WorkerPool` is a `concurrent.futures.Executor` whose
queue is bounded: `submit` blocks while the pool is full, `submit_nowait` raises `QueueFull`,
and `post` hands a job over without ever blocking (for I/O threads).
"""

from ._cancel import CancelToken
from ._errors import (
    DeadlineExceeded,
    JobAbandoned,
    JobCancelled,
    PoolClosed,
    PoolError,
    QueueFull,
)
from ._future import PoolFuture
from ._pool import ErrorHook, Job, Task, WorkerPool, current_token
from ._stats import DEFAULT_BUCKETS, Distribution, DrainReport, PoolStatistics

__all__ = [
    "DEFAULT_BUCKETS",
    "CancelToken",
    "DeadlineExceeded",
    "Distribution",
    "DrainReport",
    "ErrorHook",
    "Job",
    "JobAbandoned",
    "JobCancelled",
    "PoolClosed",
    "PoolError",
    "PoolFuture",
    "PoolStatistics",
    "QueueFull",
    "Task",
    "WorkerPool",
    "current_token",
]
