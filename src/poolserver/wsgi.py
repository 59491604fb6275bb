"""WSGI (PEP 3333): the environ of a request, and one application call framed for HTTP/1.1.

No socket here: the caller passes `send(data)`, which writes bytes or raises `ClientGone` when
the client is gone. `run_call` returns whether the connection may be kept alive.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Iterator
from time import time
from types import TracebackType
from typing import IO, Any, Final, Protocol
from urllib.parse import unquote_to_bytes

from . import __version__
from .http import LAST_CHUNK, SERVER_HEADER, DateHeader, Request, chunk, status_line
from .http._response import _STATUS_LINES

__all__ = [
    "Call",
    "ClientGone",
    "FileWrapper",
    "ResponseStarted",
    "WSGIApp",
    "base_environ",
    "build_environ",
    "run_call",
]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]


class Lifecycle(Protocol):
    """What a call asks of its server: whether it is draining (then no keep-alive)."""

    draining: bool


class WSGIApp(Protocol):
    """A PEP 3333 application."""

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse, /
    ) -> Iterable[bytes]: ...


class ClientGone(Exception):
    """The client went away while the response was being written."""


class ResponseStarted(Exception):
    """The application failed after the response head was sent: only closing is left."""


class FileWrapper:
    """`wsgi.file_wrapper`: iterates a file-like object in blocks and closes it."""

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize
        close = getattr(filelike, "close", None)
        if close is not None:
            self.close = close

    def __iter__(self) -> Iterator[bytes]:
        read, size = self.filelike.read, self.blksize
        while block := read(size):
            yield block


# ------------------------------------------------------------------------- environ

_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_FIELD_VALUE: Final = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*\Z")

# Encoded `Name: value\r\n` lines of validated response headers, bounded: most responses
# repeat the same few headers, which then cost one dict lookup instead of two regex matches
# and an encode. Framing headers (Content-Length, hop-by-hop) are never cached.
_HEADER_LINES: dict[tuple[str, str], bytes] = {}
_HEADER_LINES_MAX = 4096
_FRAMING: Final = _HOP_BY_HOP | {"content-length"}
# Framing headers already validated (kept apart: their lines are built each time).
_VALID_FRAMING: set[tuple[str, str]] = set()

# Environ keys by raw header name, bounded. None marks names never passed on: a name with an
# underscore would collide with a dash spelling after conversion (a known spoofing trick).
_ENVIRON_KEYS: dict[bytes, str | None] = {}
_ENVIRON_KEYS_MAX = 1024


def _environ_key(name: bytes) -> str | None:
    key = _ENVIRON_KEYS.get(name)
    if key is None and name not in _ENVIRON_KEYS:
        text = name.decode("latin-1").upper()
        if "_" in text:
            key = None
        elif text in ("CONTENT-TYPE", "CONTENT-LENGTH"):
            key = text.replace("-", "_")
        else:
            key = "HTTP_" + text.replace("-", "_")
        if len(_ENVIRON_KEYS) < _ENVIRON_KEYS_MAX:
            _ENVIRON_KEYS[name] = key
    return key


def base_environ(server_name: str, server_port: int, url_scheme: str = "http") -> dict[str, Any]:
    """The keys every request of a listener shares; `build_environ` copies it."""
    return {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
        "wsgi.input_terminated": True,
        "SERVER_SOFTWARE": f"poolserver/{__version__}",
        "SERVER_NAME": server_name,
        "SERVER_PORT": str(server_port),
        "SCRIPT_NAME": "",
    }


def build_environ(
    request: Request,
    base: dict[str, Any],
    remote_addr: str | None = None,
    remote_port: int | None = None,
) -> dict[str, Any]:
    """The environ of one request: `base`'s keys plus the request's own.

    The peer's address may come in `base` (a server keeps one base per connection) or as
    `remote_addr` and `remote_port`.
    """
    environ = base.copy()
    if remote_addr is not None:
        environ["REMOTE_ADDR"] = remote_addr
        environ["REMOTE_PORT"] = str(remote_port)
    target = request.target
    path, _, query = target.partition(b"?")
    if not path.startswith(b"/"):
        path = _origin_path(path)
    if b"%" in path:
        path = unquote_to_bytes(path)
    environ["REQUEST_METHOD"] = request.method
    environ["PATH_INFO"] = path.decode("latin-1")
    environ["QUERY_STRING"] = query.decode("latin-1")
    environ["RAW_URI"] = target.decode("latin-1")
    environ["SERVER_PROTOCOL"] = "HTTP/1.1" if request.version == "1.1" else "HTTP/1.0"
    for name, value in request.headers:
        key = _ENVIRON_KEYS.get(name) or _environ_key(name)
        if key is None:
            continue
        text = value.decode("latin-1")
        if key in environ:
            text = environ[key] + ("; " if key == "HTTP_COOKIE" else ", ") + text
        environ[key] = text
    body = request.body
    if body is not None:
        environ["wsgi.input"] = body.stream()
        # Chunked bodies are read whole before the call, so their length is known: say it,
        # since frameworks read CONTENT_LENGTH bytes and nothing more.
        environ["CONTENT_LENGTH"] = str(body.size)
    else:
        environ["wsgi.input"] = _EmptyInput()
        environ.pop("CONTENT_LENGTH", None)
    return environ


def _origin_path(target: bytes) -> bytes:
    """The path of an absolute-form (`http://host/path`) or asterisk-form target."""
    if target == b"*":
        return b""
    _, sep, rest = target.partition(b"://")
    if sep:
        slash = rest.find(b"/")
        return b"/" if slash < 0 else rest[slash:]
    return target


class _EmptyInput:
    """`wsgi.input` of a request without a body: reads return nothing."""

    __slots__ = ()

    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())


# ------------------------------------------------------------------------- the call


class Call:
    """One application call: what `start_response` set, and what was sent.

    After `run_call`, `status` is the status sent, `sent` the body bytes sent, and `close`
    whether the connection must close.
    """

    __slots__ = (
        "chunked",
        "close",
        "code",
        "content_length",
        "date",
        "head",
        "head_sent",
        "headers",
        "keep_alive",
        "lifecycle",
        "no_body",
        "send",
        "send_last",
        "sent",
        "status",
        "version",
    )

    def __init__(
        self,
        send: Callable[[bytes], None],
        date: DateHeader,
        request: Request,
        keep_alive: bool,
        lifecycle: Lifecycle | None,
        *,
        send_last: Callable[[bytes], None] | None = None,
    ) -> None:
        self.send = send
        self.send_last = send_last or send
        self.lifecycle = lifecycle
        self.date = date
        self.version = request.version
        self.keep_alive = keep_alive
        self.no_body = request.method == "HEAD"
        self.status: str | None = None
        self.code = 500  # the status code sent (set with the head)
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.content_length: int | None = None
        self.chunked = False
        self.close = not keep_alive
        self.head = b""
        self.sent = 0

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # break the frame <-> traceback cycle
        elif self.status is not None:
            raise RuntimeError("start_response was already called without exc_info")
        # Statuses and headers seen before are valid: one set or dict lookup each, no call.
        self.status = status if status in _VALID_STATUSES else _check_status(status)
        if type(headers) is list:
            for item in headers:
                if item not in _HEADER_LINES and item not in _VALID_FRAMING:
                    _check_headers(headers)
                    break
        else:
            _check_headers(headers)
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy `write()` callable: sends the head if needed, then `data`."""
        if self.status is None:
            raise RuntimeError("write() before start_response()")
        if not self.head_sent:
            self.send_head(None)
        self.send_body(data)

    def send_head(self, known_length: int | None) -> None:  # noqa: PLR0912 - once a response
        """Frame the response from its headers and prepare the head, sent with the body."""
        assert self.status is not None
        code = self.code = _STATUS_CODES.get(self.status) or _status_code(self.status)
        bodiless_status = code < 200 or code == 204 or code == 304  # noqa: PLR1714
        date = self.date.cached
        if date[0] != int(time()):
            date = (0, self.date.line())
        lines = [_STATUS_LINES.get(self.status) or status_line(self.status), SERVER_HEADER, date[1]]
        # The application's header lines; framing headers are the server's own.
        content_length = None
        for item in self.headers:
            line = _HEADER_LINES.get(item)
            if line is not None:
                lines.append(line)
                continue
            name, value = item
            lower = name.lower()
            if lower == "content-length":
                content_length = int(value)
            elif lower in _HOP_BY_HOP:
                if lower == "connection" and "close" in value.lower():
                    self.close = True
            else:
                lines.append(_header_line(item))
        if content_length is None and known_length is not None and not bodiless_status:
            content_length = known_length
        self.content_length = content_length
        self.no_body = self.no_body or bodiless_status
        if content_length is not None:
            lines.append(b"Content-Length: %d\r\n" % content_length)
        elif not self.no_body:
            if self.version == "1.1":
                self.chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.close = True  # HTTP/1.0 without a length: the close ends the body
        if not self.close and self.lifecycle is not None and self.lifecycle.draining:
            self.close = True  # the server began to drain while the request ran
        if self.close:
            lines.append(b"Connection: close\r\n")
        elif self.version == "1.0":
            lines.append(b"Connection: keep-alive\r\n")
        lines.append(b"\r\n")
        self.head_sent = True
        self.head = b"".join(lines)

    def send_body(self, data: bytes) -> None:
        """Send one piece of body, framed; the first piece goes out with the head."""
        if self.no_body:
            data = b""
        elif self.content_length is not None:
            room = self.content_length - self.sent
            if len(data) > room:
                data = data[:room]  # never more than the announced length
                self.close = True
            self.sent += len(data)
        elif self.chunked and data:
            data = chunk(data)
        head = self.head
        if head:
            self.head = b""
            data = head + data if data else head
        if data:
            self.send(data)

    def finish(self) -> None:
        """End the body: the last chunk, or a close when fewer bytes came than announced."""
        if not self.head_sent:
            self.send_head(0)
        tail = LAST_CHUNK if self.chunked else b""
        data = self.head + tail if self.head else tail
        self.head = b""
        if data:
            (self.send_last if self.close else self.send)(data)
        if self.content_length is not None and self.sent < self.content_length and not self.no_body:
            self.close = True  # the client waits for bytes that will never come


def run_call(
    app: WSGIApp,
    environ: dict[str, Any],
    request: Request,
    send: Callable[[bytes], None],
    date: DateHeader,
    *,
    keep_alive: bool,
    lifecycle: Lifecycle | None = None,
    send_last: Callable[[bytes], None] | None = None,
) -> Call:
    """Call `app` and send its framed response through `send`.

    `send_last`, if given, sends the response's last bytes when the connection closes after
    it (`call.close`): the caller promises to close or half-close it at once.

    Returns:
        The call: `not call.close` if the connection may serve another request.

    Raises:
        ResponseStarted: the application failed after the head was sent (the caller
            closes the connection); its exception is the cause.
        ClientGone: `send` failed.
        Exception: the application failed before the head was sent (the caller answers 500).

    `lifecycle.draining`, read when the head is built, turns keep-alive off.
    """
    call = Call(send, date, request, keep_alive, lifecycle, send_last=send_last)
    result = app(environ, call.start_response)
    try:
        if call.status is None and not isinstance(result, (list, tuple)):
            result = _first_then_rest(result, call)  # start_response may come with the first item
        if call.status is None:
            _no_start_response()
        if isinstance(result, (list, tuple)) and not call.head_sent:
            _send_whole(result, call)
        else:
            _send_iterable(result, call)
    except BaseException as exc:
        if call.head_sent and not isinstance(exc, ClientGone):
            raise ResponseStarted("the application failed after the response started") from exc
        raise
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return call


def _no_start_response() -> None:
    raise RuntimeError("the application returned without calling start_response")


def _send_whole(parts: list[bytes] | tuple[bytes, ...], call: Call) -> None:
    # The common case: the whole body is known, so it gets a Content-Length and, if small,
    # leaves in one send together with the head.
    total = 0
    for part in parts:
        if not isinstance(part, bytes):
            raise TypeError(f"the application yielded {type(part).__name__}, not bytes")
        total += len(part)
    call.send_head(total)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    if call.content_length == total and not call.no_body and not call.chunked:
        call.sent = total  # the usual case: head and body in one send, no more framing
        head, call.head = call.head, b""
        (call.send_last if call.close else call.send)(head + body if body else head)
        return
    call.send_body(body)
    call.finish()


def _send_iterable(result: Iterable[bytes], call: Call) -> None:
    for part in result:
        if not isinstance(part, bytes):
            raise TypeError(f"the application yielded {type(part).__name__}, not bytes")
        if not part:
            continue
        if not call.head_sent:
            call.send_head(None)
        call.send_body(part)
    call.finish()


class _Rest:
    """An iterable that yields `first` and then the rest of `iterator`, and closes `source`."""

    def __init__(self, first: list[bytes], iterator: Iterator[bytes], source: object) -> None:
        self._first = first
        self._iterator = iterator
        self._source = source

    def __iter__(self) -> Iterator[bytes]:
        yield from self._first
        yield from self._iterator

    def close(self) -> None:
        close = getattr(self._source, "close", None)
        if close is not None:
            close()


def _first_then_rest(result: Iterable[bytes], call: Call) -> Iterable[bytes]:
    """Pull the first item of a lazy iterable, for apps that call start_response from it."""
    iterator = iter(result)
    first: list[bytes] = []
    for item in iterator:
        first.append(item)
        break
    return _Rest(first, iterator, result)


_VALID_STATUSES: set[str] = set()  # bounded like the header cache
_STATUS_CODES: dict[str, int] = {}  # status line -> its code, bounded likewise


def _status_code(status: str) -> int:
    code = int(status[:3])
    if len(_STATUS_CODES) < _HEADER_LINES_MAX:
        _STATUS_CODES[status] = code
    return code


def _check_status(status: str) -> str:
    if status in _VALID_STATUSES:
        return status
    if not isinstance(status, str):
        raise TypeError("status must be a str")
    if len(status) < 4 or not status[:3].isdigit() or status[3] != " " or status[0] == "0":
        raise ValueError(f"invalid status {status!r}")
    if not _FIELD_VALUE.match(status):
        raise ValueError("invalid character in status")
    if len(_VALID_STATUSES) < _HEADER_LINES_MAX:
        _VALID_STATUSES.add(status)
    return status


def _check_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    if not isinstance(headers, list):
        raise TypeError("headers must be a list")
    for item in headers:
        if item in _HEADER_LINES:
            continue
        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError("each header must be a (name, value) tuple")
        name, value = item
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str")
        if not _TOKEN.match(name):
            raise ValueError(f"invalid header name {name!r}")
        if not _FIELD_VALUE.match(value):
            raise ValueError(f"invalid character in the value of header {name!r}")
        lower = name.lower()
        if lower == "content-length" and not (value.isascii() and value.isdigit()):
            raise ValueError(f"invalid Content-Length {value!r}")
        if lower not in _FRAMING:
            if len(_HEADER_LINES) < _HEADER_LINES_MAX:
                _HEADER_LINES[item] = _header_line(item)
        elif len(_VALID_FRAMING) < _HEADER_LINES_MAX:
            _VALID_FRAMING.add(item)
    return headers


def _header_line(item: tuple[str, str]) -> bytes:
    return f"{item[0]}: {item[1]}\r\n".encode("latin-1")
