"""Request parsing: bytes in, complete requests out, with httptools (llhttp) inside.

Theory of operation
-------------------
llhttp does the strict HTTP/1.1 grammar: it already rejects bare CR or LF, obs-fold, control
characters and NUL in the head, Content-Length together with Transfer-Encoding, duplicate or
malformed Content-Length, and bad chunk framing. This layer adds what llhttp leaves to the
server: size limits on the head (whose pieces llhttp would otherwise buffer without bound),
a limit on the body, one Host header (required on HTTP/1.1), no transfer coding but chunked,
no Transfer-Encoding on HTTP/1.0, versions 1.0 and 1.1 only, and `Expect`.

A request is complete only once its whole body has arrived: `complete` holds finished
requests in order (pipelining), and `awaiting_body` is the request whose head is in but whose
body is not (what `Expect: 100-continue` is about). After a `ProtocolError` the parser is
spent: the connection must answer and close.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Any, Final

import httptools

from ._body import Body
from ._errors import ProtocolError

_OWS: Final = (0x20, 0x09)
_CLOSED: Final = "after `Connection: close`"
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
}


@dataclass(frozen=True, slots=True)
class Limits:
    """What a request may be at most. Each is a hard bound; none means "unlimited"."""

    max_request_line: int = 8190
    max_header_size: int = 65536
    max_headers: int = 100
    max_body_size: int = 64 * 1024 * 1024
    body_spool_threshold: int = 1024 * 1024


class Request:
    """One parsed request: its head, and its body once complete.

    `headers` keeps the raw `(name, value)` pairs in order, names as sent (llhttp checks
    they are tokens); `host` is the Host header's value or None.
    """

    __slots__ = (
        "body",
        "chunked",
        "content_length",
        "expect_continue",
        "headers",
        "host",
        "keep_alive",
        "method",
        "target",
        "upgrade",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.keep_alive = keep_alive
        self.host: bytes | None = None
        self.content_length: int | None = None
        self.chunked = False
        self.expect_continue = False
        self.upgrade = False
        self.body: Body | None = None


class RequestParser:
    """Feeds bytes to llhttp and collects complete requests.

    Args:
        limits: the size limits to enforce.
    """

    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self.complete: deque[Request] = deque()
        self.awaiting_body: Request | None = None
        self.in_progress = False  # a request has begun and is not complete yet
        self.upgraded = False  # llhttp stopped at an Upgrade; the connection must close
        # No further request will be read: after an Upgrade, or a request that said
        # Connection: close. Bytes that follow are dropped, not an error.
        self.ended = False
        self._raw_body: tuple[Request, int] | None = None  # body of an Upgrade, read by hand
        self._line_seen = False  # a line end has arrived in the head under way
        # What an unknown method or a protocol name is judged by: the bytes since the last
        # complete request (at most 64), and the chunk being parsed.
        self._since_complete = b""
        self._completed_in_chunk = 0  # requests completed during the read being parsed
        self._chunk = b""
        self._in_head = False
        self._head_room = limits.max_header_size
        self._url: list[bytes] = []
        self._url_size = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._header_size = 0
        self._current: Request | None = None
        self._error: ProtocolError | None = None

    def feed(self, data: bytes) -> None:
        """Parse `data`. Complete requests are appended to `complete`.

        Raises:
            ProtocolError: the bytes break HTTP/1.1 or a limit; the parser is spent.
        """
        if self._error is not None:
            raise self._error
        if self._raw_body is not None:
            self._take_raw_body(data)
            return
        if self.ended:
            return  # no further request on this connection: the rest is not ours to parse
        if self._in_head:
            # llhttp buffers a partial URL or header itself: bound what a head may feed it.
            room = self._head_room
            if len(data) > room:
                self._feed(data[:room])
                if self._in_head:
                    self._fail(self._head_too_large())
                data = data[room:]
            else:
                self._head_room = room - len(data)
        self._chunk = data
        self._completed_in_chunk = 0
        self._feed(data)
        if self._in_head and b"\n" in data:
            self._line_seen = True
        if not self._completed_in_chunk and len(self._since_complete) < 64:
            self._since_complete = (self._since_complete + data)[:64]

    def _feed(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._upgraded(data[exc.args[0] :])
        except httptools.HttpParserCallbackError as exc:
            context = exc.__context__
            if isinstance(context, ProtocolError):
                self._fail(context)
            raise
        except httptools.HttpParserInvalidMethodError:
            self._fail(_invalid_method(self._method_bytes(data)))
        except httptools.HttpParserInvalidURLError:
            self._fail(ProtocolError(400, "invalid request target"))
        except httptools.HttpParserError as exc:
            if _CLOSED in str(exc) and self.complete:
                self.ended = True  # bytes after a Connection: close request: dropped
                return
            self._fail(_classify(str(exc)))

    def _method_bytes(self, data: bytes) -> bytes:
        """The bytes the failed request began with, as near as can be told."""
        if not self._completed_in_chunk:
            return self._since_complete + data
        # It began after the requests completed in this read: after the head end of each
        # (exact for requests without a body, the usual case for pipelining).
        end = -4
        for _ in range(self._completed_in_chunk):
            found = data.find(b"\r\n\r\n", end + 4)
            if found < 0:
                break
            end = found
        return data[end + 4 :]

    def _upgraded(self, rest: bytes) -> None:
        # We never switch protocols: the Upgrade is ignored and the connection closes after
        # the answer. llhttp has skipped the request's body, so a Content-Length body is read
        # here; a chunked one is refused.
        self.upgraded = self.ended = True
        request = self.complete[-1]
        if request.chunked:
            self._fail(ProtocolError(501, "a chunked body with Upgrade is not supported"))
        if request.content_length:
            self.complete.pop()
            self._current = self.awaiting_body = request
            self.in_progress = True
            self._raw_body = (request, request.content_length)
            self._take_raw_body(rest)

    def _take_raw_body(self, data: bytes) -> None:
        assert self._raw_body is not None
        request, left = self._raw_body
        piece = data[:left]
        if piece:
            if request.body is None:
                request.body = Body(self._limits.body_spool_threshold)
            request.body.write(piece)
        left -= len(piece)
        self._raw_body = (request, left) if left else None
        if not left:
            self.on_message_complete()

    def close(self) -> None:
        """Release the bodies of requests that will never run (their temporary files)."""
        requests = list(self.complete)
        if self.awaiting_body is not None:
            requests.append(self.awaiting_body)
        for request in requests:
            if request.body is not None:
                request.body.close()
        self.complete.clear()
        self.awaiting_body = None
        # llhttp's parser holds this object and this object holds it: without breaking the
        # cycle, every connection would wait for the cyclic garbage collector to be freed.
        self._parser = _CLOSED_PARSER

    def _fail(self, error: ProtocolError) -> None:
        self._error = error
        raise error

    def _head_too_large(self) -> ProtocolError:
        if not self._headers and not self._line_seen:
            return ProtocolError(414, "request line too long")
        return ProtocolError(431, "header section too large")

    # ----------------------------------------------------------------- llhttp callbacks

    def on_message_begin(self) -> None:
        self.in_progress = True
        self._in_head = True
        self._head_room = self._limits.max_header_size
        self._url = []
        self._url_size = 0
        self._headers = []
        self._header_size = 0
        self._line_seen = False

    def on_url(self, url: bytes) -> None:
        self._url.append(url)
        self._url_size += len(url)
        if self._url_size > self._limits.max_request_line:
            raise ProtocolError(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # a chunked trailer: framing metadata only, not passed on
        if value and value[-1] in _OWS:
            value = value.rstrip(b" \t")  # trailing whitespace is not part of the value
        headers = self._headers
        headers.append((name, value))
        self._header_size += len(name) + len(value) + 4
        if len(headers) > self._limits.max_headers:
            raise ProtocolError(431, "too many header fields")
        if self._header_size > self._limits.max_header_size:
            raise ProtocolError(431, "header section too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        url = self._url
        request = Request(
            method,
            url[0] if len(url) == 1 else b"".join(url),
            parser.get_http_version(),
            self._headers,
            parser.should_keep_alive(),
        )
        _check_head(request, self._limits)
        if request.version == "1.0":
            self._check_protocol_name(request.target)
        self._current = request
        if request.content_length or request.chunked:
            self.awaiting_body = request
        if method == "CONNECT":
            raise ProtocolError(405, "CONNECT is not supported")

    def _check_protocol_name(self, target: bytes) -> None:
        # llhttp also speaks RTSP/1.0 and ICE/1.0, and reports them as version 1.0; the name
        # follows the target in the request line, looked for in what arrived since the last
        # request (the first 64 bytes of earlier reads, and this one). HTTP/1.0 requests are
        # few: the search costs the common case nothing.
        chunk = self._since_complete + self._chunk
        at = chunk.find(target + b" ")
        if at >= 0 and chunk[at + len(target) + 1 : at + len(target) + 6] != b"HTTP/":
            raise ProtocolError(505, "not an HTTP request line")

    def on_body(self, data: bytes) -> None:
        request = self.awaiting_body
        assert request is not None
        body = request.body
        if body is None:
            body = request.body = Body(self._limits.body_spool_threshold)
        if body.size + len(data) > self._limits.max_body_size:
            raise ProtocolError(413, "request body too large")
        body.write(data)

    def on_message_complete(self) -> None:
        request = self._current
        assert request is not None
        self._current = None
        self.awaiting_body = None
        self.in_progress = False
        self._since_complete = b""
        self._completed_in_chunk += 1
        self.complete.append(request)


class _ClosedParser:
    """What a closed RequestParser feeds: nothing may be parsed after close()."""

    def feed_data(self, data: bytes) -> None:
        raise ProtocolError(400, "the connection is closed")


_CLOSED_PARSER: Any = _ClosedParser()


def _check_head(request: Request, limits: Limits) -> None:  # noqa: PLR0912 - one pass, once a request
    """What llhttp accepts but a server must not; fills in the framing fields.

    Header names are compared by length first: most are then skipped without lowering them.
    """
    version = request.version
    if version != "1.1" and version != "1.0":  # noqa: PLR1714 - two string compares are faster
        raise ProtocolError(505, f"HTTP/{version} is not supported")
    transfer_encoding = None
    for name, value in request.headers:
        size = len(name)
        if size == 4 and name.lower() == b"host":
            if request.host is not None:
                raise ProtocolError(400, "more than one Host header")
            request.host = value
        elif size == 14 and name.lower() == b"content-length":
            request.content_length = int(value)  # llhttp has checked the digits
        elif size == 17 and name.lower() == b"transfer-encoding":
            # Two fields mean a list of codings, of which only chunked is supported.
            transfer_encoding = value if transfer_encoding is None else b"(several)"
        elif size == 6 and name.lower() == b"expect":
            if value.strip().lower() != b"100-continue":
                raise ProtocolError(417, "unsupported expectation")
            request.expect_continue = version == "1.1"
        elif size == 7 and name.lower() == b"upgrade":
            request.upgrade = True
    if request.host is None and version == "1.1":
        raise ProtocolError(400, "missing Host header")
    if transfer_encoding is not None:
        if version == "1.0":
            raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if transfer_encoding.strip().lower() != b"chunked":
            raise ProtocolError(501, "unsupported transfer coding")
        request.chunked = True
    if request.content_length is not None and request.content_length > limits.max_body_size:
        raise ProtocolError(413, "request body too large")


def _invalid_method(start: bytes) -> ProtocolError:
    """501 for an unknown method that is a well-formed token; 400 for bytes that are not one.

    llhttp stops at the first byte that no method it knows can continue with, so the method
    may be cut short: judged by its bytes up to the space, or all of them if none came yet.
    """
    method = start.lstrip(b"\r\n").split(b" ", 1)[0]
    if method and _TOKEN.fullmatch(method):
        return ProtocolError(501, "unknown method")
    return ProtocolError(400, "malformed request line")


def _classify(message: str) -> ProtocolError:
    """Map llhttp's error message onto the status that answers it."""
    if "HTTP version" in message:
        return ProtocolError(505, "unsupported HTTP version")
    if "invalid `Transfer-Encoding`" in message:
        return ProtocolError(501, "unsupported transfer coding")
    return ProtocolError(400, message)
