"""Every option of the server, defined once: name, type, default and help.

The command line (`--queue-size`), the environment (`POOLSERVER_QUEUE_SIZE`) and the option
table in the docs are all generated from the fields of `Config`. Nothing here has side effects.
Bounded by default: every limit and timeout is finite; None is spelled out where it is allowed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any

DEMO_APP = "poolserver.demo:app"

Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]


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
    uds: str | None = option(None, "listen on this Unix domain socket path instead of TCP")
    fd: int | None = option(
        None,
        "listen on this inherited, already listening socket descriptor instead "
        "(systemd socket activation passes 3)",
    )
    certfile: str | None = option(
        None, "TLS: the server's certificate chain (PEM); TLS is on when set"
    )
    keyfile: str | None = option(
        None, "TLS: the certificate's private key (PEM), if not in certfile"
    )
    ca_certs: str | None = option(
        None, "TLS: CA certificates (PEM) that client certificates must chain to; asks for one"
    )
    ssl_min_version: str = option(
        "TLSv1_2", "TLS: the lowest protocol version accepted", choices=("TLSv1_2", "TLSv1_3")
    )
    proxy_protocol: bool = option(
        False,
        "expect a PROXY protocol header (v1 or v2) on connections from forwarded_allow_ips, "
        "and take the client's address from it",
    )
    processes: str = option(
        "1",
        "processes to serve with ('auto': one per core); more than one runs a supervisor that "
        "forks them, restarts them and drains them",
    )
    max_requests: int | None = option(
        None, "a process that served this many requests is replaced by a fresh one, gracefully"
    )
    max_requests_jitter: int = option(
        0, "up to this many requests more, at random, so that processes do not recycle together"
    )
    preload: bool = option(False, "import the application once, before the processes are forked")
    busy_accept_delay: float = option(
        0.02,
        "with several processes: seconds a process whose pool is full waits before accepting, "
        "so that an idle one takes the connection first",
    )
    agent_port: int | None = option(
        None,
        "port of an HAProxy agent-check listener that reports free capacity as a weight "
        "(and 'drain' while draining); off when not set",
    )
    backlog: int = option(2048, "length of the kernel's queue of connections not yet accepted")
    workers: int = option(16, "worker threads: requests running at once at most")
    worker_scheduling: str = option(
        "batch",
        "Linux scheduling of the worker threads: 'batch' (SCHED_BATCH: a woken worker does not "
        "preempt the thread that holds the GIL only to wait for it) or 'normal'",
        choices=("batch", "normal"),
    )
    queue_size: int = option(
        64, "requests that may wait for a worker; beyond it they wait for room up to queue_timeout"
    )
    overload_policy: str = option(
        "wait",
        "what a request meets in a full pool: 'wait' for room up to queue_timeout, or 'reject' "
        "(503 at once)",
        choices=("wait", "reject"),
    )
    queue_timeout: float = option(
        5.0, "seconds a request may wait for room in a full pool before it is answered 503"
    )
    max_queue_wait: float = option(
        5.0,
        "seconds a request may wait in all before a worker starts it; older ones are answered "
        "503 without running the application",
    )
    request_start_header: bool = option(
        False,
        "count the time before poolserver, from X-Request-Start (as nginx stamps it), toward "
        "max_queue_wait; only from forwarded_allow_ips",
    )
    forwarded_allow_ips: str = option(
        "127.0.0.1,::1",
        "comma-separated addresses or networks trusted to stamp proxy headers; '*' trusts all",
    )
    request_timeout: float = option(
        60.0,
        "seconds a request may take in all; then its cancel token fires, the client gets 504 "
        "(or the connection is cut) and its worker is replaced",
    )
    client_timeout_header: bool = option(
        False, "let a client shorten (never lengthen) request_timeout with Request-Timeout: <s>"
    )
    slow_request_timeout: float = option(
        10.0, "seconds after which a running request is logged once, with its thread's stack"
    )
    max_stuck_workers: int = option(
        16, "stuck workers replaced at most; beyond, a stuck worker reduces capacity"
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
    drain_grace: float = option(
        1.0,
        "seconds of a drain during which idle keep-alive connections stay open, so that a "
        "request already on its way is answered (with Connection: close), not reset",
    )
    max_request_line: int = option(8190, "bytes in a request target at most (414 beyond)")
    max_header_size: int = option(65536, "bytes in a request head at most (431 beyond)")
    max_headers: int = option(100, "header fields in a request at most (431 beyond)")
    max_body_size: int = option(64 * 1024 * 1024, "bytes in a request body at most (413 beyond)")
    body_spool_threshold: int = option(
        1024 * 1024, "request bodies larger than this are kept in a temporary file, not memory"
    )
    admin_host: str = option("127.0.0.1", "address of the admin listener")
    admin_port: int | None = option(
        None,
        "port of the admin listener (/metrics, /livez, /readyz, /status); off when not set",
    )
    ready_queue_high: float = option(
        0.8,
        "/readyz says 503 while more than this fraction of queue_size is taken by waiting requests",
    )
    ready_queue_wait: float = option(
        1.0, "/readyz says 503 while the p95 queue wait of the last 10 s is above this (s)"
    )
    log_level: str = option(
        "info",
        "logging level",
        choices=("critical", "error", "warning", "info", "debug"),
    )
    access_log: bool = option(
        False, "log one line per request, with its queue wait and service time"
    )
    access_log_format: str = option(
        "common", "access log format", choices=("common", "combined", "json")
    )
    access_log_file: str | None = option(
        None, "file the access log is appended to; stderr when not set"
    )

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None and "None" in str(item.type):
                continue
            if str(item.type).split(" ")[0] in ("int", "float") and (
                isinstance(value, bool) or value < 0
            ):
                raise ValueError(f"{item.name} must be >= 0, not {value!r}")
            choices = item.metadata["choices"]
            if choices and value not in choices:
                raise ValueError(f"{item.name} must be one of {', '.join(choices)}")
        _parse_networks(self.forwarded_allow_ips)
        if self.processes != "auto" and not (self.processes.isdigit() and int(self.processes) >= 1):
            raise ValueError(f"processes must be a number >= 1 or 'auto', not {self.processes!r}")
        if self.uds is not None and self.fd is not None:
            raise ValueError("uds and fd cannot both be set")
        if self.keyfile is not None and self.certfile is None:
            raise ValueError("keyfile needs certfile")
        if ":" not in self.app:
            raise ValueError(f"app must be MODULE:ATTRIBUTE, not {self.app!r}")
        for name in ("workers", "max_connections", "max_headers", "max_request_line"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in (
            "header_timeout",
            "read_timeout",
            "keepalive_timeout",
            "write_timeout",
            "request_timeout",
            "slow_request_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be more than 0 (timeouts are never infinite)")

    def replace(self, **changes: Any) -> Config:
        """A copy with some options changed (validated again)."""
        return dataclasses.replace(self, **changes)


def options_table() -> str:
    """The Markdown table of every option, as `docs/options.md` carries it."""
    rows = [
        "| option | environment | default | meaning |",
        "|---|---|---|---|",
    ]
    for item in dataclasses.fields(Config):
        flag = item.name if item.metadata["positional"] else "--" + item.name.replace("_", "-")
        default = item.default
        shown = f"`{default}`" if default != "" else "(empty)"
        choices = item.metadata["choices"]
        meaning = item.metadata["help"] + (f" (one of: {', '.join(choices)})" if choices else "")
        rows.append(f"| `{flag}` | `POOLSERVER_{item.name.upper()}` | {shown} | {meaning} |")
    return "\n".join(rows) + "\n"


def _parse_networks(spec: str) -> Networks | None:
    """`forwarded_allow_ips` as networks; None means everyone ('*')."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    if "*" in items:
        return None
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as exc:
        raise ValueError(f"forwarded_allow_ips: {exc}") from exc


def trusted_networks(config: Config) -> Networks | None:
    """The networks whose proxy headers are believed; None means everyone."""
    return _parse_networks(config.forwarded_allow_ips)


def process_count(config: Config) -> int:
    """How many serving processes `processes` asks for."""
    if config.processes == "auto":
        return os.cpu_count() or 1
    return int(config.processes)
