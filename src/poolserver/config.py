"""Every option of the server, defined once: name, type, default and help.

The command line (`--queue-size`), the environment (`POOLSERVER_QUEUE_SIZE`) and the option
table in the docs are all generated from the fields of `Config`. Nothing here has side effects.
Bounded by default: every limit and timeout is finite; None is spelled out where it is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

DEMO_APP = "poolserver.demo:app"


def option(
    default: Any, help_text: str, *, positional: bool = False, choices: tuple[str, ...] = ()
) -> Any:
    """A config field with its help text (and how the command line takes it)."""
    return field(
        default=default,
        metadata={"help": help_text, "positional": positional, "choices": choices},
    )


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    """The server's configuration. Immutable; validated on creation."""

    app: str = option(
        DEMO_APP,
        "the WSGI application, as MODULE:ATTRIBUTE; the built-in demo app when omitted",
        positional=True,
    )
    host: str = option("127.0.0.1", "address to listen on (0.0.0.0 or :: for all)")
    port: int = option(8000, "TCP port to listen on (0: any free port)")
    backlog: int = option(2048, "length of the kernel's queue of connections not yet accepted")
    workers: int = option(16, "worker threads: requests running at once at most")
    worker_scheduling: str = option(
        "batch",
        "Linux scheduling of the worker threads: 'batch' (SCHED_BATCH: a woken worker does not "
        "preempt the thread that holds the GIL only to wait for it) or 'normal'",
        choices=("batch", "normal"),
    )
    queue_size: int = option(
        64, "requests that may wait for a worker; beyond it they wait unread up to queue_timeout"
    )
    queue_timeout: float = option(
        5.0, "seconds a request may wait for room in a full pool before it is answered 503"
    )
    max_connections: int = option(
        10000, "open connections at most; beyond it new ones wait in the kernel's backlog"
    )
    header_timeout: float = option(
        10.0, "seconds a client has to send a whole request head once it began (or connected)"
    )
    read_timeout: float = option(
        30.0, "seconds a request body may go without receiving a byte before the client is dropped"
    )
    keepalive_timeout: float = option(
        5.0, "seconds an idle keep-alive connection is kept open between requests"
    )
    write_timeout: float = option(
        30.0, "seconds a client may go without accepting response bytes before it is dropped"
    )
    drain_timeout: float = option(
        30.0, "seconds a graceful shutdown lets queued and running requests finish"
    )
    max_request_line: int = option(8190, "bytes in a request target at most (414 beyond)")
    max_header_size: int = option(65536, "bytes in a request head at most (431 beyond)")
    max_headers: int = option(100, "header fields in a request at most (431 beyond)")
    max_body_size: int = option(64 * 1024 * 1024, "bytes in a request body at most (413 beyond)")
    body_spool_threshold: int = option(
        1024 * 1024, "request bodies larger than this are kept in a temporary file, not memory"
    )
    log_level: str = option(
        "info",
        "logging level",
        choices=("critical", "error", "warning", "info", "debug"),
    )
    access_log: bool = option(False, "log one line per request (common log format) to stderr")

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if item.type in ("int", "float") and (isinstance(value, bool) or value < 0):
                raise ValueError(f"{item.name} must be >= 0, not {value!r}")
            choices = item.metadata["choices"]
            if choices and value not in choices:
                raise ValueError(f"{item.name} must be one of {', '.join(choices)}")
        if ":" not in self.app:
            raise ValueError(f"app must be MODULE:ATTRIBUTE, not {self.app!r}")
        for name in ("workers", "max_connections", "max_headers", "max_request_line"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("header_timeout", "read_timeout", "keepalive_timeout", "write_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0 (timeouts are never infinite)")

    def replace(self, **changes: Any) -> Config:
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)
