"""poolserver: a bounded worker pool, and the HTTP/1.1 WSGI server built on it.

Applications served by poolserver find their request's deadline in the environ:
`remaining(environ)` tells the seconds left, and `environ["poolserver.cancel"]` is a
`poolserver.pool.CancelToken` that fires at the deadline (or when the watchdog gives up on the
request), for code that can wait on it or check it between steps.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

__version__ = "0.1.0"

DEADLINE_KEY = "poolserver.deadline"
CANCEL_KEY = "poolserver.cancel"

__all__ = ["CANCEL_KEY", "DEADLINE_KEY", "__version__", "remaining"]


def remaining(environ: dict[str, Any]) -> float | None:
    """Seconds left before the request's deadline (0.0 once past); None outside poolserver."""
    deadline = environ.get(DEADLINE_KEY)
    if not isinstance(deadline, float):
        return None
    return max(0.0, deadline - monotonic())
