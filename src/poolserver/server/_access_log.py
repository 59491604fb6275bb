"""The access log: one line per request, written by a thread of its own.

Workers never wait for the disk: they format a line and hand it to a queue; a writer thread
writes it. The queue is bounded (a line past the bound is dropped and counted), so a stalled
disk costs memory up to the bound and then lines, never a worker.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from typing import IO, TYPE_CHECKING

from ..http import Request

if TYPE_CHECKING:
    from ._connection import Connection

log = logging.getLogger("poolserver")

MAX_PENDING = 10_000


class AccessLog:
    """Formats and writes access log lines.

    Args:
        fmt: "common", "combined" (common plus referer and user agent) or "json".
        path: the file to append to; stderr when None.
    """

    def __init__(self, fmt: str, path: str | None) -> None:
        self._format = fmt
        self._path = path
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.dropped = 0
        self._stamp: tuple[int, str] = (0, "")
        self._thread = threading.Thread(
            target=self._write, name="poolserver-access-log", daemon=True
        )

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def stop(self) -> None:
        """Write what is queued, then stop the writer."""
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(5)

    def record(
        self,
        conn: Connection,
        request: Request,
        status: int,
        sent: int,
        timings: tuple[float, float],
    ) -> None:
        """Queue the line of one request (worker thread). `timings`: queue wait, service."""
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            return
        if self._format == "json":
            line = self._json(conn, request, status, sent, timings)
        else:
            line = self._common(conn, request, status, sent, timings)
        self._queue.put(line)

    def _common(
        self,
        conn: Connection,
        request: Request,
        status: int,
        sent: int,
        timings: tuple[float, float],
    ) -> str:
        target = request.target.decode("latin-1")
        line = (
            f'{conn.remote_addr} - - [{self._timestamp()}] "{request.method} {target} '
            f'HTTP/{request.version}" {status or "-"} {sent or "-"}'
        )
        if self._format == "combined":
            referer, agent = _header(request, b"referer"), _header(request, b"user-agent")
            line += f' "{referer or "-"}" "{agent or "-"}"'
        return f"{line} queue_wait={timings[0]:.6f} service={timings[1]:.6f}"

    def _json(
        self,
        conn: Connection,
        request: Request,
        status: int,
        sent: int,
        timings: tuple[float, float],
    ) -> str:
        path, _, query = request.target.decode("latin-1").partition("?")
        return json.dumps(
            {
                "time": time.time(),
                "remote_addr": conn.remote_addr,
                "method": request.method,
                "path": path,
                "query": query,
                "version": f"HTTP/{request.version}",
                "status": status or None,
                "bytes": sent,
                "referer": _header(request, b"referer"),
                "user_agent": _header(request, b"user-agent"),
                "queue_wait": round(timings[0], 6),
                "service": round(timings[1], 6),
            }
        )

    def _timestamp(self) -> str:
        now = int(time.time())
        stamp = self._stamp
        if stamp[0] != now:
            stamp = (now, time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now)))
            self._stamp = stamp
        return stamp[1]

    def _write(self) -> None:
        out: IO[str] = sys.stderr if self._path is None else open(self._path, "a")  # noqa: SIM115
        try:
            while (line := self._queue.get()) is not None:
                try:
                    out.write(line + "\n")
                    if self._queue.empty():
                        out.flush()
                except OSError:
                    log.exception("cannot write the access log; the line is lost")
        finally:
            if out is not sys.stderr:
                out.close()


def _header(request: Request, name: bytes) -> str | None:
    for key, value in request.headers:
        if len(key) == len(name) and key.lower() == name:
            return value.decode("latin-1")
    return None
