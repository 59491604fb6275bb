"""One request on a connection, in its worker: admission by age, deadline, the call, the books."""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from time import monotonic
from typing import TYPE_CHECKING

from .. import CANCEL_KEY, DEADLINE_KEY
from ..http import Request, error_response
from ..pool import DEFAULT_BUCKETS
from ..wsgi import ClientGone, ResponseStarted, build_environ, run_call
from ._proxy import apply_forwarded
from ._watchdog import InFlight

if TYPE_CHECKING:
    from ._connection import Connection

log = logging.getLogger("poolserver")


def serve_request(  # noqa: PLR0912, PLR0915 - the hot path, in one frame on purpose
    conn: Connection, request: Request, waited: float, started: float
) -> bool:
    """Answer `request`, which waited `waited` seconds for a worker that took it at
    `started`. True if the connection goes on with this worker (keep-alive, all sent).

    The server's hot path: every Python call costs, so the usual case makes few.
    """
    server = conn.server
    config = server.config
    conn.sent_continue = conn.response_started = False
    conn.requests += 1
    if waited > config.max_queue_wait or server.checks_upstream:
        waited = _queue_age(conn, request, waited)
        if waited < 0:
            return False
    deadline = conn.ready_at + config.request_timeout
    if config.client_timeout_header:
        deadline = min(deadline, client_deadline(request, conn.ready_at))
    base = conn.environ
    if base is not None:
        environ = build_environ(request, base)
    elif conn.requests == 1:  # perhaps the only request: not worth a base of its own
        environ = build_environ(request, server.base_environ, conn.remote_addr, conn.remote_port)
    else:
        environ = build_environ(request, conn.environ_base())
    if conn.trusted and server.proxy_headers:
        apply_forwarded(environ, server.trusted_networks)
    number = next(server.request_numbers)
    try:
        shard = server.stats.local.shard
    except AttributeError:
        shard = server.stats.shard()
    record = InFlight(conn, deadline, number, request, started, shard)
    environ[DEADLINE_KEY] = deadline
    environ[CANCEL_KEY] = record
    keep_alive = request.keep_alive and not server.draining and not conn.parser.ended
    if server.debug:
        log.debug("Worker %s, processing request %d", _worker_number(), number)
    inflight = server.inflight
    inflight[conn] = record
    status = sent = 0
    try:
        call = run_call(
            server.app, environ, request, conn.send, server.date,
            keep_alive=keep_alive, lifecycle=server, send_last=conn.send_last,
        )  # fmt: skip
        status = call.code
        sent = call.sent
        keep_alive = not call.close
    except ClientGone:
        pass
    except ResponseStarted:
        log.exception("error in the application after the response started")
    except Exception:
        log.exception("error in the application")
        keep_alive = keep_alive and not conn.out
        head_only = request.method == "HEAD"
        conn.send_now(error_response(500, server.date, close=not keep_alive, head_only=head_only))
        status = 500
    finally:
        lock = conn.send_lock  # ordered against the watchdog's hijack
        lock.acquire()
        del inflight[conn]
        lock.release()
        if request.body is not None:
            request.body.close()
    # The books, inline: this thread's shard, no lock.
    ended = monotonic()
    service = ended - started
    total = waited + service
    if status:
        shard.by_class[status // 100] += 1
    shard.counts_queue_wait[bisect_left(DEFAULT_BUCKETS, waited)] += 1
    shard.counts_service[bisect_left(DEFAULT_BUCKETS, service)] += 1
    shard.counts_total[bisect_left(DEFAULT_BUCKETS, total)] += 1
    shard.sum_queue_wait += waited
    shard.sum_service += service
    shard.sum_total += total
    shard.recent.append((started, ended, number))
    conn.last_end = ended
    if server.access_log is not None:
        server.access_log.record(conn, request, status, sent, (waited, service))
    if conn.hijacked:
        return False  # the watchdog owns the connection now
    if status == 0:
        conn.close()  # the client is gone, or the response broke off
        return False
    if keep_alive and not conn.out:
        return True
    return conn.hand_off_output(keep_alive)


def _queue_age(conn: Connection, request: Request, waited: float) -> float:
    """The request's wait counting a trusted proxy's stamp; -1.0 if it was refused as late."""
    server = conn.server
    if server.checks_upstream and server.trusts(conn):
        waited = max(waited, upstream_wait(request))
    if waited > server.config.max_queue_wait:
        server.refuse_late(conn, request, waited)
        return -1.0
    return waited


def _worker_number() -> str:
    import threading  # noqa: PLC0415 - the debug path only

    return threading.current_thread().name.rsplit("-", 1)[-1]


def upstream_wait(request: Request) -> float:
    """Seconds since a trusted proxy stamped `X-Request-Start`, or 0.0.

    Accepts nginx's `t=<seconds>.<milliseconds>` and plain seconds, milliseconds or
    microseconds since the epoch (told apart by magnitude).
    """
    for name, value in request.headers:
        if len(name) == 15 and name.lower() == b"x-request-start":
            return _age_of_stamp(value)
    return 0.0


def _age_of_stamp(value: bytes) -> float:
    text = value.strip()
    if text.startswith(b"t="):
        text = text[2:]
    try:
        stamp = float(text)
    except ValueError:
        return 0.0
    if stamp > 1e14:
        stamp /= 1e6  # microseconds
    elif stamp > 1e11:
        stamp /= 1e3  # milliseconds
    return max(0.0, time.time() - stamp)


def client_deadline(request: Request, ready_at: float) -> float:
    """The deadline a client asks for with `Request-Timeout: <seconds>`, or infinity."""
    for name, value in request.headers:
        if len(name) == 15 and name.lower() == b"request-timeout":
            try:
                seconds = float(value)
            except ValueError:
                return float("inf")
            if seconds > 0:
                return ready_at + seconds
    return float("inf")
