"""WSGI without sockets: the environ of a request, and one application call framed for HTTP/1.1.

Requests come from the real parser (so they are what the server would build); responses go to
a fake `send` that collects bytes, parsed back by `parse_response`.
"""

from __future__ import annotations

import sys
import warnings
import wsgiref.validate
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.validate import validator

import pytest

from poolserver.http import DateHeader, Limits, Request, RequestParser
from poolserver.wsgi import (
    Call,
    ClientGone,
    ResponseStarted,
    StartResponse,
    WSGIApp,
    base_environ,
    build_environ,
    run_call,
)

BASE = base_environ("127.0.0.1", 8080)


def check_environ(environ: dict[str, Any]) -> None:
    """The standard library's own PEP 3333 environ checks (untyped in typeshed)."""
    wsgiref.validate.check_environ(environ)  # type: ignore[attr-defined]


def fail(exc: Exception) -> None:
    raise exc


def parse_request(data: bytes, limits: Limits | None = None) -> Request:
    parser = RequestParser(limits or Limits())
    parser.feed(data)
    assert len(parser.complete) == 1
    return parser.complete[0]


def environ_for(data: bytes, limits: Limits | None = None) -> dict[str, Any]:
    return build_environ(parse_request(data, limits), BASE, "10.1.2.3", 54321)


def get(target: str = "/", *headers: str, method: str = "GET", version: str = "1.1") -> bytes:
    lines = [f"{method} {target} HTTP/{version}"]
    if version == "1.1" and not any(h.lower().startswith("host:") for h in headers):
        lines.append("Host: example.com")
    lines.extend(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


# --------------------------------------------------------------------------- responses


@dataclass
class Response:
    status: str
    headers: list[tuple[str, str]]
    body: bytes
    chunked: bool
    chunks: list[bytes] = field(default_factory=list)
    last_chunk: bool = False

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        assert len(values) <= 1, f"{name} sent {len(values)} times"
        return values[0] if values else None


def parse_response(data: bytes) -> Response:
    """Parse one response as the server framed it (the body is whatever follows the head)."""
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete head in {data!r}"
    first, *lines = head.decode("latin-1").split("\r\n")
    assert first.startswith("HTTP/1.1 ")
    headers = []
    for line in lines:
        name, colon, value = line.partition(": ")
        assert colon, f"malformed header line {line!r}"
        headers.append((name, value))
    response = Response(first[len("HTTP/1.1 ") :], headers, rest, chunked=False)
    if response.header("Transfer-Encoding") == "chunked":
        response.chunked = True
        response.body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                assert rest == b"\r\n", "bytes after the last chunk"
                response.last_chunk = True
                break
            data_, crlf, rest = rest[:size], rest[size : size + 2], rest[size + 2 :]
            assert crlf == b"\r\n"
            response.chunks.append(data_)
            response.body += data_
    return response


class Sink:
    """A fake `send`: collects what the server writes; can fail like a vanished client."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.sends: list[bytes] = []
        self.fail_after = fail_after

    def __call__(self, data: bytes) -> None:
        if self.fail_after is not None and len(self.sends) >= self.fail_after:
            raise ClientGone("connection reset by peer")
        assert isinstance(data, bytes)
        self.sends.append(data)

    @property
    def data(self) -> bytes:
        return b"".join(self.sends)


def call_app(
    app: WSGIApp,
    request: bytes = b"",
    *,
    keep_alive: bool | None = None,
    sink: Sink | None = None,
    base: dict[str, Any] | None = None,
) -> tuple[Call, Sink]:
    parsed = parse_request(request or get())
    environ = build_environ(parsed, base or BASE, "10.1.2.3", 54321)
    sink = sink if sink is not None else Sink()
    call = run_call(
        app,
        environ,
        parsed,
        sink,
        DateHeader(),
        keep_alive=parsed.keep_alive if keep_alive is None else keep_alive,
    )
    return call, sink


def respond(app: WSGIApp, request: bytes = b"", **kwargs: Any) -> tuple[Response, Call]:
    call, sink = call_app(app, request, **kwargs)
    return parse_response(sink.data), call


def list_app(
    body: list[bytes],
    status: str = "200 OK",
    headers: list[tuple[str, str]] | None = None,
) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, headers if headers is not None else [("Content-Type", "text/plain")])
        return body

    return app


def generator_app(
    parts: list[bytes],
    status: str = "200 OK",
    headers: list[tuple[str, str]] | None = None,
) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response(status, headers if headers is not None else [("Content-Type", "text/plain")])
        yield from parts

    return app


class ClosingBody:
    """An iterable with close(), recording that it was closed; may fail mid-iteration."""

    def __init__(self, parts: list[bytes], fail_at: int | None = None) -> None:
        self.parts = parts
        self.fail_at = fail_at
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        for i, part in enumerate(self.parts):
            if i == self.fail_at:
                raise ValueError("the application broke")
            yield part
        if self.fail_at == len(self.parts):
            raise ValueError("the application broke")

    def close(self) -> None:
        self.closed += 1


# --------------------------------------------------------------------------- environ


def test_environ_has_every_pep_3333_key_with_the_right_type() -> None:
    environ = environ_for(
        b"POST /a/b?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 5\r\n\r\nhello"
    )
    check_environ(environ)  # the standard library's own PEP 3333 checks
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/a/b"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "5"
    assert environ["SERVER_NAME"] == "127.0.0.1"
    assert environ["SERVER_PORT"] == "8080"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["HTTP_HOST"] == "example.com"
    assert environ["REMOTE_ADDR"] == "10.1.2.3"
    assert environ["REMOTE_PORT"] == "54321"
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.input"].read() == b"hello"
    assert callable(environ["wsgi.errors"].write)
    assert callable(environ["wsgi.errors"].flush)
    for key in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once"):
        assert type(environ[key]) is bool
    assert environ["wsgi.multithread"] is True
    assert environ["wsgi.run_once"] is False
    for key, value in environ.items():
        assert type(key) is str
        if "." not in key:
            assert type(value) is str, key


def test_content_type_and_length_have_no_http_prefix() -> None:
    environ = environ_for(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ
    assert environ["CONTENT_TYPE"] == "application/json"
    assert environ["CONTENT_LENGTH"] == "2"


def test_path_info_is_percent_decoded_as_latin_1_bytes_in_str() -> None:
    environ = environ_for(get("/caf%C3%A9/a%20b/%2Fx?q=%C3%A9%20z"))
    assert environ["PATH_INFO"] == "/caf\xc3\xa9/a b//x"
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/café/a b//x"
    assert environ["QUERY_STRING"] == "q=%C3%A9%20z"  # the query is left as sent


def test_no_query_gives_an_empty_query_string() -> None:
    environ = environ_for(get("/plain"))
    assert environ["QUERY_STRING"] == ""
    assert environ["PATH_INFO"] == "/plain"


def test_empty_query_after_question_mark() -> None:
    environ = environ_for(get("/p?"))
    assert environ["QUERY_STRING"] == ""
    assert environ["PATH_INFO"] == "/p"


def test_headers_become_http_keys() -> None:
    environ = environ_for(get("/", "X-Forwarded-For: 1.2.3.4", "accept-language: fr", "DNT: 1"))
    assert environ["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert environ["HTTP_ACCEPT_LANGUAGE"] == "fr"
    assert environ["HTTP_DNT"] == "1"


def test_duplicate_headers_are_joined_with_comma() -> None:
    environ = environ_for(get("/", "Accept: text/html", "X-A: 1", "accept: application/json"))
    assert environ["HTTP_ACCEPT"] == "text/html, application/json"
    assert environ["HTTP_X_A"] == "1"


def test_duplicate_cookie_headers_are_joined_with_semicolon() -> None:
    environ = environ_for(get("/", "Cookie: a=1", "Cookie: b=2"))
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


def test_headers_with_underscores_are_dropped() -> None:
    environ = environ_for(get("/", "X-Real-IP: 1.1.1.1", "X_Real_IP: 6.6.6.6", "X_Other: y"))
    assert environ["HTTP_X_REAL_IP"] == "1.1.1.1"
    assert not any("OTHER" in key for key in environ)


def test_underscore_header_alone_cannot_spoof() -> None:
    environ = environ_for(get("/", "X_Real_IP: 6.6.6.6"))
    assert "HTTP_X_REAL_IP" not in environ


def test_latin_1_header_values_are_kept_as_bytes_in_str() -> None:
    environ = environ_for(get("/", "X-Name: caf\xe9"))
    assert environ["HTTP_X_NAME"] == "caf\xe9"


def test_absolute_form_target_gives_the_path() -> None:
    environ = environ_for(get("http://example.com:8080/a/b%20c?x=1"))
    assert environ["PATH_INFO"] == "/a/b c"
    assert environ["QUERY_STRING"] == "x=1"


def test_absolute_form_without_a_path_gives_slash() -> None:
    environ = environ_for(get("http://example.com?x=1"))
    assert environ["PATH_INFO"] == "/"
    assert environ["QUERY_STRING"] == "x=1"


def test_asterisk_form_gives_an_empty_path() -> None:
    environ = environ_for(get("*", method="OPTIONS"))
    assert environ["PATH_INFO"] == ""
    assert environ["REQUEST_METHOD"] == "OPTIONS"


def test_chunked_body_gets_a_content_length() -> None:
    environ = environ_for(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    assert environ["CONTENT_LENGTH"] == "11"
    assert environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])) == b"hello world"
    assert "HTTP_TRANSFER_ENCODING" in environ  # passed on, but the body is already decoded


def test_spooled_body_reaches_wsgi_input_whole() -> None:
    body = bytes(range(256)) * 40
    environ = environ_for(
        b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body),
        Limits(body_spool_threshold=1024),
    )
    stream = environ["wsgi.input"]
    try:
        assert environ["CONTENT_LENGTH"] == str(len(body))
        assert stream.read() == body
    finally:
        stream.close()


def test_request_without_body_reads_nothing() -> None:
    environ = environ_for(get("/"))
    stream = environ["wsgi.input"]
    assert stream.read() == b""
    assert stream.read(10) == b""
    assert stream.readline() == b""
    assert stream.readlines() == []
    assert list(stream) == []
    assert not environ.get("CONTENT_LENGTH")


def test_http_1_0_protocol() -> None:
    environ = environ_for(get("/", version="1.0"))
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert "HTTP_HOST" not in environ


def test_requests_do_not_leak_into_each_other() -> None:
    first = environ_for(get("/one", "X-Secret: 1"))
    second = environ_for(get("/two"))
    assert "HTTP_X_SECRET" not in second
    assert second["PATH_INFO"] == "/two"
    assert first["PATH_INFO"] == "/one"
    assert "REQUEST_METHOD" not in BASE


# --------------------------------------------------------------------------- run_call: framing


def test_list_body_gets_content_length_and_one_send() -> None:
    call, sink = call_app(list_app([b"hello ", b"world"]))
    assert len(sink.sends) == 1
    response = parse_response(sink.data)
    assert response.status == "200 OK"
    assert response.header("Content-Length") == "11"
    assert response.header("Transfer-Encoding") is None
    assert response.body == b"hello world"
    assert response.header("Server") == "poolserver"
    assert response.header("Date") is not None
    assert not call.close
    assert call.sent == 11


def test_empty_list_body_gets_content_length_zero() -> None:
    response, call = respond(list_app([]))
    assert response.header("Content-Length") == "0"
    assert response.body == b""
    assert not call.close


def test_generator_body_on_1_1_is_chunked_with_a_last_chunk() -> None:
    response, call = respond(generator_app([b"one", b"", b"two", b"three"]))
    assert response.chunked
    assert response.header("Content-Length") is None
    assert response.chunks == [b"one", b"two", b"three"]  # empty items are not framed
    assert response.last_chunk
    assert not call.close


def test_generator_body_with_content_length_is_not_chunked() -> None:
    headers = [("Content-Type", "text/plain"), ("Content-Length", "6")]
    response, call = respond(generator_app([b"abc", b"def"], headers=headers))
    assert not response.chunked
    assert response.header("Content-Length") == "6"
    assert response.body == b"abcdef"
    assert not call.close


def test_generator_body_on_1_0_without_length_closes() -> None:
    request = get("/", "Connection: keep-alive", version="1.0")
    response, call = respond(generator_app([b"one", b"two"]), request)
    assert not response.chunked
    assert response.header("Content-Length") is None
    assert response.header("Connection") == "close"
    assert response.body == b"onetwo"
    assert call.close


def test_http_1_0_keep_alive_with_length_says_keep_alive() -> None:
    request = get("/", "Connection: keep-alive", version="1.0")
    response, call = respond(list_app([b"x"]), request)
    assert response.header("Connection") == "keep-alive"
    assert not call.close


def test_http_1_0_without_keep_alive_says_close() -> None:
    response, call = respond(list_app([b"x"]), get("/", version="1.0"))
    assert response.header("Connection") == "close"
    assert call.close


@pytest.mark.parametrize(
    ("app", "ending"),
    [(list_app([b"hello"]), b"\r\n\r\nhello"), (generator_app([b"hel", b"lo"]), b"0\r\n\r\n")],
    ids=["whole", "chunked"],
)
@pytest.mark.parametrize("keep_alive", [True, False])
def test_the_last_bytes_of_a_closing_response_go_through_send_last(
    app: WSGIApp, ending: bytes, keep_alive: bool
) -> None:
    # send_last may hold its bytes for the close: it carries the end of a response that
    # closes the connection, and nothing of one that keeps it open.
    sink, last = Sink(), Sink()
    parsed = parse_request(get())
    environ = build_environ(parsed, BASE, "10.1.2.3", 54321)
    call = run_call(app, environ, parsed, sink, DateHeader(), keep_alive=keep_alive, send_last=last)
    assert call.close is not keep_alive
    assert parse_response(sink.data + last.data).body == b"hello"
    if keep_alive:
        assert last.sends == []
    else:
        assert len(last.sends) == 1
        assert last.data.endswith(ending)


def test_head_sends_no_body_but_keeps_content_length() -> None:
    response, call = respond(list_app([b"twelve bytes"]), get("/", method="HEAD"))
    assert response.header("Content-Length") == "12"
    assert response.body == b""
    assert not call.close


def test_head_with_a_generator_sends_no_body_and_no_chunks() -> None:
    response, call = respond(generator_app([b"abc"]), get("/", method="HEAD"))
    assert response.body == b""
    assert response.header("Transfer-Encoding") is None
    assert not call.close


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
@pytest.mark.parametrize("make", [list_app, generator_app], ids=["list", "generator"])
def test_204_and_304_have_no_body(status: str, make: Callable[..., WSGIApp]) -> None:
    response, call = respond(make([b"ignored"], status=status))
    assert response.status == status
    assert response.body == b""
    assert response.header("Transfer-Encoding") is None
    if status.startswith("204"):
        assert response.header("Content-Length") is None
    assert not call.close


def test_write_callable() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"first")
        return [b", then returned"]

    response, call = respond(app)
    assert response.chunked
    assert response.body == b"written first, then returned"
    assert response.last_chunk
    assert not call.close


def test_write_callable_with_content_length() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Length", "5")])
        write(b"hel")
        write(b"lo")
        return []

    response, _ = respond(app)
    assert response.header("Content-Length") == "5"
    assert response.body == b"hello"


def test_start_response_may_be_called_from_the_first_iteration() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("201 Created", [("Content-Type", "text/plain")])
        yield b"lazy"

    # A generator's body runs only when iterated: start_response comes with the first item.
    response, _ = respond(app)
    assert response.status == "201 Created"
    assert response.body == b"lazy"


def test_app_returning_without_start_response_fails_before_sending() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        return [b"no head"]

    sink = Sink()
    with pytest.raises(RuntimeError):
        call_app(app, sink=sink)
    assert sink.sends == []


def test_non_bytes_in_a_list_body_fails_before_sending() -> None:
    sink = Sink()
    with pytest.raises(TypeError):
        call_app(list_app([b"ok", "text"]), sink=sink)  # type: ignore[list-item]
    assert sink.sends == []


def test_app_framing_headers_are_replaced_by_the_servers() -> None:
    headers = [
        ("Content-Type", "text/plain"),
        ("Transfer-Encoding", "chunked"),
        ("Keep-Alive", "timeout=99"),
        ("Upgrade", "h2c"),
    ]
    response, _ = respond(list_app([b"body"], headers=headers))
    assert response.header("Content-Length") == "4"
    assert response.header("Transfer-Encoding") is None
    assert response.header("Keep-Alive") is None
    assert response.header("Upgrade") is None
    assert response.body == b"body"


def test_app_headers_are_sent_in_order_with_repeats() -> None:
    headers = [("Set-Cookie", "a=1"), ("X-A", "x"), ("Set-Cookie", "b=2")]
    response, _ = respond(list_app([b""], headers=headers))
    app_headers = [(n, v) for n, v in response.headers if n in ("Set-Cookie", "X-A")]
    assert app_headers == headers


# --------------------------------------------------------------------------- start_response rules


def test_exc_info_before_the_head_replaces_the_status() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Old", "1")])
        try:
            fail(KeyError("lookup failed"))
        except KeyError:
            start_response("503 Service Unavailable", [("X-New", "1")], sys.exc_info())
        return [b"sorry"]

    response, _ = respond(app)
    assert response.status == "503 Service Unavailable"
    assert response.header("X-New") == "1"
    assert response.header("X-Old") is None
    assert response.body == b"sorry"


def test_exc_info_after_the_head_reraises() -> None:
    raised: list[BaseException] = []
    reraised: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            fail(KeyError("late failure"))
        except KeyError as exc:
            raised.append(exc)
            try:
                start_response("500 Internal Server Error", [], sys.exc_info())
            except BaseException as again:
                reraised.append(again)
                raise

    sink = Sink()
    with pytest.raises(ResponseStarted) as info:
        call_app(app, sink=sink)
    assert isinstance(info.value.__cause__, KeyError)
    assert reraised == raised  # start_response raised the application's own exception
    assert len(raised) == 1
    assert parse_response(sink.data).status == "200 OK"  # the head already went out


def test_start_response_twice_without_exc_info_fails() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        start_response("404 Not Found", [])
        return [b""]

    sink = Sink()
    with pytest.raises(RuntimeError, match="already"):
        call_app(app, sink=sink)
    assert sink.sends == []


BAD_STATUSES: list[Any] = [
    "200",
    "200OK",
    "OK 200",
    "20 OK",
    "2000 OK",
    "099 Low",
    "200 OK\r\nX-Injected: 1",
    "200 OK\n",
    b"200 OK",
    200,
]


@pytest.mark.parametrize("status", BAD_STATUSES)
def test_invalid_status_raises_before_anything_is_sent(status: Any) -> None:
    sink = Sink()
    with pytest.raises((TypeError, ValueError)):
        call_app(list_app([b"body"], status=status), sink=sink)
    assert sink.sends == []


BAD_HEADERS: list[Any] = [
    [("X-A", "a\r\nSet-Cookie: injected=1")],
    [("X-A", "a\nb")],
    [("X-A", "a\rb")],
    [("X-A", "a\x00b")],
    [("X A", "b")],
    [("X-A:", "b")],
    [("", "b")],
    [("X-\xe9", "b")],
    [("X-A\r\nX-B", "b")],
    [(b"X-A", "b")],
    [("X-A", b"b")],
    [("X-A", 1)],
    [("X-A", "b", "c")],
    [["X-A", "b"]],
    (("X-A", "b"),),
    {"X-A": "b"},
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
def test_invalid_header_raises_before_anything_is_sent(headers: Any) -> None:
    sink = Sink()
    with pytest.raises((TypeError, ValueError)):
        call_app(list_app([b"body"], headers=headers), sink=sink)
    assert sink.sends == []


def test_a_header_rejected_once_is_rejected_again() -> None:
    # The server caches validated header lines: a bad one must never get into that cache.
    for _ in range(2):
        sink = Sink()
        with pytest.raises(ValueError, match="invalid character"):
            call_app(list_app([b""], headers=[("X-A", "v\r\nX-B: 1")]), sink=sink)
        assert sink.sends == []


def test_tab_is_allowed_in_a_header_value() -> None:
    response, _ = respond(list_app([b""], headers=[("X-A", "a\tb")]))
    assert response.header("X-A") == "a\tb"


def test_invalid_content_length_from_the_app_raises_before_anything_is_sent() -> None:
    sink = Sink()
    with pytest.raises(ValueError, match="Content-Length"):
        call_app(list_app([b"hello world"], headers=[("Content-Length", "-5")]), sink=sink)
    assert sink.sends == []


def test_non_numeric_content_length_from_the_app_raises_before_anything_is_sent() -> None:
    sink = Sink()
    with pytest.raises(ValueError, match="five"):
        call_app(list_app([b"hello"], headers=[("Content-Length", "five")]), sink=sink)
    assert sink.sends == []


# --------------------------------------------------------------------------- close() and failures


def closing_app(body: ClosingBody, status: str = "200 OK") -> WSGIApp:
    def app(environ: dict[str, Any], start_response: StartResponse) -> ClosingBody:
        start_response(status, [("Content-Type", "text/plain")])
        return body

    return app


def test_close_is_called_after_success() -> None:
    body = ClosingBody([b"a", b"b"])
    response, _ = respond(closing_app(body))
    assert response.body == b"ab"
    assert body.closed == 1


def test_close_is_called_when_iteration_fails_before_the_head() -> None:
    body = ClosingBody([b"a"], fail_at=0)
    sink = Sink()
    with pytest.raises(ValueError, match="broke"):
        call_app(closing_app(body), sink=sink)
    assert body.closed == 1
    assert sink.sends == []


def test_close_is_called_when_iteration_fails_after_the_head() -> None:
    body = ClosingBody([b"a", b"b"], fail_at=1)
    with pytest.raises(ResponseStarted) as info:
        call_app(closing_app(body))
    assert isinstance(info.value.__cause__, ValueError)
    assert body.closed == 1


def test_close_is_called_when_the_client_is_gone() -> None:
    body = ClosingBody([b"a", b"b", b"c"])
    with pytest.raises(ClientGone):
        call_app(closing_app(body), sink=Sink(fail_after=1))
    assert body.closed == 1


def test_close_is_called_for_a_lazy_generator_app() -> None:
    closed: list[bool] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        try:
            start_response("200 OK", [])
            yield b"a"
            yield b"b"
        finally:
            closed.append(True)

    with pytest.raises(ClientGone):
        call_app(app, sink=Sink(fail_after=0))
    assert closed == [True]


def test_app_failing_after_the_head_raises_response_started() -> None:
    sink = Sink()
    with pytest.raises(ResponseStarted) as info:
        call_app(closing_app(ClosingBody([b"first", b"second"], fail_at=2)), sink=sink)
    assert isinstance(info.value.__cause__, ValueError)
    response = parse_response(sink.data)
    assert response.chunks == [b"first", b"second"]
    assert not response.last_chunk  # the client can tell the body is cut short


def test_content_length_shorter_than_the_body_truncates_and_closes() -> None:
    headers = [("Content-Length", "5")]
    response, call = respond(generator_app([b"hel", b"lo world"], headers=headers))
    assert response.header("Content-Length") == "5"
    assert response.body == b"hello"
    assert call.close


def test_content_length_shorter_than_a_list_body_truncates_and_closes() -> None:
    response, call = respond(list_app([b"hello world"], headers=[("Content-Length", "5")]))
    assert response.body == b"hello"
    assert call.close


def test_content_length_longer_than_the_body_closes() -> None:
    response, call = respond(generator_app([b"abc"], headers=[("Content-Length", "10")]))
    assert response.body == b"abc"
    assert call.close


def test_app_connection_close_closes() -> None:
    headers = [("Content-Type", "text/plain"), ("Connection", "close")]
    response, call = respond(list_app([b"bye"], headers=headers))
    assert response.header("Connection") == "close"
    assert call.close


def test_keep_alive_false_closes() -> None:
    response, call = respond(list_app([b"x"]), keep_alive=False)
    assert response.header("Connection") == "close"
    assert call.close


# --------------------------------------------------------------------------- the validator


def validated(app: WSGIApp) -> WSGIApp:
    wrapped: WSGIApp = validator(app)
    return wrapped


def run_validated(app: WSGIApp, request: bytes = b"", **kwargs: Any) -> Response:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response, _ = respond(validated(app), request, **kwargs)
    return response


def test_validator_list_app() -> None:
    response = run_validated(list_app([b"hello"]))
    assert response.status == "200 OK"
    assert response.body == b"hello"


def test_validator_generator_app() -> None:
    response = run_validated(generator_app([b"a", b"b", b"c"]))
    assert response.body == b"abc"
    assert response.last_chunk


def test_validator_write_app() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written")
        return [b" and returned"]

    assert run_validated(app).body == b"written and returned"


def test_validator_app_reading_the_body() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        first = stream.readline()
        rest = stream.read(length - len(first))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [first.upper(), rest]

    request = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nline\nrest!"
    assert run_validated(app, request).body == b"LINE\nrest!"


def test_validator_app_reading_an_absent_body() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        data = stream.read(100) + stream.readline() + b"".join(stream.readlines())
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got %d" % len(data)]

    assert run_validated(app).body == b"got 0"


def test_validator_app_with_exc_info_and_no_content() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            fail(RuntimeError("changed my mind"))
        except RuntimeError:
            start_response("204 No Content", [], sys.exc_info())
        return []

    response = run_validated(app)
    assert response.status == "204 No Content"
    assert response.body == b""


def test_validator_head_request() -> None:
    response = run_validated(list_app([b"body"]), get("/", method="HEAD"))
    assert response.body == b""


def test_validator_app_using_wsgi_errors(capsys: pytest.CaptureFixture[str]) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        errors = environ["wsgi.errors"]
        errors.write("a note for the operator\n")
        errors.writelines(["two ", "lines\n"])
        errors.flush()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    base = base_environ("127.0.0.1", 8080)  # wsgi.errors is sys.stderr as the server starts
    assert run_validated(app, base=base).body == b"ok"
    assert "a note for the operator\ntwo lines\n" in capsys.readouterr().err
