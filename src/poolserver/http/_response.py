"""Response serialization: status lines, heads, chunked framing and canned error answers.

Everything here returns bytes ready for the socket; nothing here touches one.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Final

SERVER_HEADER: Final = b"Server: poolserver\r\n"
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK: Final = b"0\r\n\r\n"

# Status lines by the status string an application passes to start_response; bounded so a
# stream of odd reason phrases cannot grow it.
_STATUS_LINES: dict[str, bytes] = {}
_STATUS_LINES_MAX = 512


def status_line(status: str) -> bytes:
    """`HTTP/1.1 <status>\\r\\n`. The version is the server's own, whatever the client's."""
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n"
        if len(_STATUS_LINES) < _STATUS_LINES_MAX:
            _STATUS_LINES[status] = line
    return line


class DateHeader:
    """The `Date:` header line, formatted at most once a second.

    Read from many threads: the cached pair is replaced whole, never mutated.
    """

    __slots__ = ("cached",)

    def __init__(self) -> None:
        # (second, line): a hot path may use the line directly if its second is now.
        self.cached: tuple[int, bytes] = (0, b"")

    def line(self) -> bytes:
        """`Date: <IMF-fixdate>\\r\\n` for the current second."""
        now = int(time.time())
        cached = self.cached
        if cached[0] != now:
            cached = (now, b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n")
            self.cached = cached
        return cached[1]


def chunk(data: bytes) -> bytes:
    """`data` framed as one chunk of a chunked body (empty data must not be framed)."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def error_response(
    status: int,
    date: DateHeader,
    *,
    close: bool = True,
    extra: tuple[tuple[str, str], ...] = (),
    head_only: bool = False,
) -> bytes:
    """A complete small response for a status the server answers itself.

    The body is the status line's text: no detail of the error reaches the client.
    """
    phrase = HTTPStatus(status).phrase
    body = f"{status} {phrase}\n".encode()
    lines = [
        status_line(f"{status} {phrase}"),
        SERVER_HEADER,
        date.line(),
        b"Content-Type: text/plain; charset=utf-8\r\n",
        b"Content-Length: %d\r\n" % len(body),
    ]
    if close:
        lines.append(b"Connection: close\r\n")
    lines.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in extra)
    lines.append(b"\r\n")
    if not head_only:
        lines.append(body)
    return b"".join(lines)
