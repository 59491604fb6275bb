"""A serving process, forked by the supervisor: one `Server` on the shared listener, driven by
messages from the supervisor and by signals.

- It sends `ready` once it accepts, answers `snapshot` requests (adding `recycle: true` once
  it has served `max_requests`), and sends a `final` snapshot before it exits, so that the
  supervisor's counters lose nothing.
- `retire` (the supervisor replaces it) drains it, leaving the listener's backlog to the
  others; SIGTERM (the whole server stops) drains it and takes its share of the backlog. A
  second SIGTERM exits at once. SIGINT and SIGHUP are the supervisor's: a terminal's Ctrl-C
  reaches the whole process group, and the supervisor turns it into one orderly SIGTERM.
- If the supervisor goes away (its end of the channel closes), the process drains and exits.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from ..config import Config
from ..wsgi import WSGIApp
from ._channel import Channel
from ._server import Server, ShutdownReport
from ._snapshot import snapshot

log = logging.getLogger("poolserver")

EXIT_APP_FAILED = 3  # the application could not be loaded: restarting will not help
EXIT_CRASHED = 70  # an unexpected error in the process itself (EX_SOFTWARE)

_TERM = "term"
_RETIRE = "retire"
_ORPHANED = "orphaned"


@dataclass(frozen=True)
class ChildSpec:
    """What a serving process is made of.

    Attributes:
        app: the application, if the supervisor loaded it before forking; else `load`
            imports `config.app` in the process.
        config: the process's config (no admin or agent listener: the supervisor has them).
        load: imports an application from its `MODULE:APP` name.
        label: the process's name in logs and in merged metrics (`p1`, `p2`...).
    """

    app: WSGIApp | None
    config: Config
    load: Callable[[str], WSGIApp]
    label: str


def run_child(spec: ChildSpec, listener: socket.socket, channel: socket.socket) -> NoReturn:
    """The whole life of a forked serving process, on the shared `listener`, talking with
    the supervisor over `channel` (its end of their socket pair); never returns."""
    code = EXIT_CRASHED
    try:
        code = _serve(spec, listener, Channel(channel))
    except BaseException:
        log.exception("process %s failed", spec.label)
    finally:
        logging.shutdown()
        os._exit(code)


def _serve(spec: ChildSpec, listener: socket.socket, channel: Channel) -> int:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # until the server can drain
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    config, app = spec.config, spec.app
    if app is None:
        try:
            app = spec.load(config.app)
        except (Exception, SystemExit):
            log.exception("process %s cannot load the application %s", spec.label, config.app)
            return EXIT_APP_FAILED
    server = Server(app, config)
    why: list[str] = []  # what stopped it: the first reason counts
    terms: list[int] = []
    stop = threading.Event()

    def on_term(signum: int, frame: object) -> None:
        if terms:
            os._exit(1)  # a second signal: at once
        terms.append(signum)
        why.append(_TERM)
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    # Threads inherit the signal mask: blocked while they start, SIGTERM reaches only this
    # thread, the one that waits for it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        server.start(listener, shared=True)
        control = threading.Thread(
            target=_control,
            args=(server, channel, _recycle_limit(config), why, stop),
            name="poolserver-control",
            daemon=True,
        )
        control.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    channel.send({"op": "ready", "pid": os.getpid()})
    stop.wait()
    report = _drain(server, why[0] if why else _TERM)
    channel.send({"op": "final", "data": snapshot(server, detail=False)})
    return 0 if report.clean else 1


def _drain(server: Server, why: str) -> ShutdownReport:
    # Retiring, the others go on accepting: the backlog is theirs.
    server.stop_accepting(take_backlog=why != _RETIRE)
    report = server.shutdown()
    log.debug(
        "process %d drained (%s): %d served, %d refused, %d cut",
        os.getpid(),
        why,
        report.served,
        report.refused,
        report.cut,
    )
    return report


def _recycle_limit(config: Config) -> int | None:
    if config.max_requests is None:
        return None
    # `random` is reseeded in a forked child: each process draws its own jitter.
    return config.max_requests + random.randint(0, config.max_requests_jitter)


def _control(
    server: Server, channel: Channel, limit: int | None, why: list[str], stop: threading.Event
) -> None:
    """Answer the supervisor until it says `retire` or goes away."""
    while True:
        message = channel.receive()
        if message is None:
            if not stop.is_set():
                why.append(_ORPHANED)
                stop.set()
            return
        op = message.get("op")
        if op == "snapshot":
            data = snapshot(server, detail=bool(message.get("detail")))
            reply = {"op": "snapshot", "id": message.get("id"), "data": data}
            if limit is not None and server.stats.totals().served >= limit:
                reply["recycle"] = True
            channel.send(reply)
        elif op == "retire":
            if not stop.is_set():
                why.append(_RETIRE)
                stop.set()
        else:
            log.warning("unknown message from the supervisor: %r", op)
