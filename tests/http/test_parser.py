"""The request parser, without sockets: every input is fed whole and one byte at a time.

`parse` and `rejection` feed each input both ways and check that the two agree, so a rule
that only holds when a request arrives in one piece (or only when it trickles in) is caught.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from poolserver.http import Limits, ProtocolError, Request, RequestParser

LIMITS = Limits(
    max_request_line=64,
    max_header_size=512,
    max_headers=8,
    max_body_size=1024,
    body_spool_threshold=128,
)


@dataclass(frozen=True)
class Parsed:
    """What a request looks like from outside the parser, body read back."""

    method: str
    target: bytes
    version: str
    headers: list[tuple[bytes, bytes]]
    keep_alive: bool
    host: bytes | None
    content_length: int | None
    chunked: bool
    expect_continue: bool
    upgrade: bool
    body: bytes | None
    spooled: bool


def snapshot(request: Request) -> Parsed:
    body = request.body
    data: bytes | None = None
    if body is not None:
        data = body.stream().read()
        body.close()
    return Parsed(
        method=request.method,
        target=request.target,
        version=request.version,
        headers=list(request.headers),
        keep_alive=request.keep_alive,
        host=request.host,
        content_length=request.content_length,
        chunked=request.chunked,
        expect_continue=request.expect_continue,
        upgrade=request.upgrade,
        body=data,
        spooled=body is not None and body.spooled,
    )


def feed_whole(parser: RequestParser, data: bytes) -> None:
    parser.feed(data)


def feed_bytewise(parser: RequestParser, data: bytes) -> None:
    for i in range(len(data)):
        parser.feed(data[i : i + 1])


FEEDERS = (feed_whole, feed_bytewise)


def parse(data: bytes, limits: Limits = LIMITS) -> tuple[list[Parsed], RequestParser]:
    """Feed `data` whole and one byte at a time; both must give the same requests.

    Returns the complete requests and the parser that was fed whole (for its state).
    """
    results: list[tuple[list[Parsed], RequestParser]] = []
    for feeder in FEEDERS:
        parser = RequestParser(limits)
        feeder(parser, data)
        requests = [snapshot(r) for r in parser.complete]
        results.append((requests, parser))
    (whole, parser), (bytewise, bytewise_parser) = results
    assert whole == bytewise, "feeding whole and one byte at a time disagree"
    assert parser.in_progress == bytewise_parser.in_progress
    assert parser.upgraded == bytewise_parser.upgraded
    return whole, parser


def parse_one(data: bytes, limits: Limits = LIMITS) -> Parsed:
    requests, parser = parse(data, limits)
    assert len(requests) == 1
    assert not parser.in_progress
    return requests[0]


def rejection(data: bytes, limits: Limits = LIMITS) -> list[int]:
    """The status each way of feeding `data` was refused with (whole, then bytewise)."""
    statuses = []
    for feeder in FEEDERS:
        parser = RequestParser(limits)
        with pytest.raises(ProtocolError) as info:
            feeder(parser, data)
        statuses.append(info.value.status)
        waiting = parser.awaiting_body
        if waiting is not None and waiting.body is not None:
            waiting.body.close()  # a body refused half-way may already be spooled to a file
    return statuses


def get(target: bytes = b"/", *headers: bytes, version: bytes = b"1.1") -> bytes:
    lines = [b"GET " + target + b" HTTP/" + version, *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


# --------------------------------------------------------------------------- accepted requests


def test_simple_get() -> None:
    request = parse_one(b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert request.method == "GET"
    assert request.target == b"/path?q=1"
    assert request.version == "1.1"
    assert request.host == b"example.com"
    assert request.body is None
    assert request.content_length is None
    assert not request.chunked


def test_headers_are_kept_in_order_with_names_as_sent() -> None:
    request = parse_one(
        b"GET / HTTP/1.1\r\n"
        b"host: a\r\n"
        b"X-Custom-THING: one\r\n"
        b"accept: */*\r\n"
        b"X-Custom-Thing: two\r\n"
        b"\r\n"
    )
    assert request.headers == [
        (b"host", b"a"),
        (b"X-Custom-THING", b"one"),
        (b"accept", b"*/*"),
        (b"X-Custom-Thing", b"two"),
    ]


def test_header_values_lose_leading_whitespace() -> None:
    request = parse_one(b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \t two  words\r\n\r\n")
    assert request.headers[1] == (b"X-A", b"two  words")


def test_header_values_lose_trailing_whitespace() -> None:
    request = parse_one(b"GET / HTTP/1.1\r\nHost: a \r\nX-A: two  words \t\r\n\r\n")
    assert request.host == b"a"
    assert request.headers[1] == (b"X-A", b"two  words")


def test_pipelined_requests_come_out_in_order() -> None:
    data = (
        b"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
        b"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
        b"GET /three HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    requests, parser = parse(data)
    assert [(r.method, r.target, r.body) for r in requests] == [
        ("GET", b"/one", None),
        ("POST", b"/two", b"hello"),
        ("GET", b"/three", None),
    ]
    assert not parser.in_progress


def test_a_partial_pipelined_request_waits_for_the_rest() -> None:
    parser = RequestParser(LIMITS)
    parser.feed(b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nGET /two HTTP/1.1\r\nHo")
    assert [r.target for r in parser.complete] == [b"/one"]
    assert parser.in_progress
    parser.feed(b"st: a\r\n\r\n")
    assert [r.target for r in parser.complete] == [b"/one", b"/two"]
    assert not parser.in_progress


def test_content_length_body() -> None:
    request = parse_one(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world")
    assert request.content_length == 11
    assert request.body == b"hello world"
    assert not request.chunked


def test_zero_content_length_has_no_body() -> None:
    request = parse_one(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert request.content_length == 0
    assert request.body is None


def test_chunked_body_with_extensions_and_trailers() -> None:
    request = parse_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\n"
        b'6;a;b="quoted"\r\n world\r\n'
        b"0\r\n"
        b"X-Trailer: should-not-appear\r\n"
        b"\r\n"
    )
    assert request.chunked
    assert request.body == b"hello world"
    assert request.headers == [(b"Host", b"a"), (b"Transfer-Encoding", b"chunked")]


def test_transfer_encoding_chunked_is_case_insensitive() -> None:
    request = parse_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert request.chunked
    assert request.body == b"abc"


def test_small_body_stays_in_memory() -> None:
    body = b"x" * LIMITS.body_spool_threshold
    request = parse_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    assert request.body == body
    assert not request.spooled


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_beyond_the_spool_threshold_goes_to_a_temp_file(chunked: bool) -> None:
    body = bytes(range(256)) * 3  # 768 bytes: above the threshold, below max_body_size
    if chunked:
        framed = b"".join(b"%x\r\n%b\r\n" % (100, body[i : i + 100]) for i in range(0, 700, 100))
        framed += b"%x\r\n%b\r\n0\r\n\r\n" % (68, body[700:])
        head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    else:
        framed = body
        head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body)
    request = parse_one(head + framed)
    assert request.spooled
    assert request.body == body


def test_spooled_stream_reads_back_from_the_start_in_pieces() -> None:
    body = b"0123456789" * 50
    parser = RequestParser(LIMITS)
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
    request = parser.complete.popleft()
    assert request.body is not None
    assert request.body.spooled
    assert request.body.size == len(body)
    stream = request.body.stream()
    try:
        assert stream.read(7) == body[:7]
        assert stream.read() == body[7:]
    finally:
        request.body.close()


def test_awaiting_body_and_expect_continue() -> None:
    parser = RequestParser(LIMITS)
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    waiting = parser.awaiting_body
    assert waiting is not None
    assert waiting.expect_continue
    assert parser.in_progress
    assert not parser.complete
    parser.feed(b"hel")
    assert parser.awaiting_body is waiting
    parser.feed(b"lo")
    assert parser.awaiting_body is None
    assert not parser.in_progress
    assert list(parser.complete) == [waiting]
    assert snapshot(waiting).body == b"hello"


def test_expect_continue_value_is_case_insensitive() -> None:
    parser = RequestParser(LIMITS)
    parser.feed(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
    assert parser.awaiting_body is not None
    assert parser.awaiting_body.expect_continue


def test_expect_continue_is_ignored_on_http_1_0() -> None:
    parser = RequestParser(LIMITS)
    parser.feed(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
    assert parser.awaiting_body is not None
    assert not parser.awaiting_body.expect_continue


def test_request_without_body_is_never_awaiting_one() -> None:
    parser = RequestParser(LIMITS)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\n")
    assert parser.awaiting_body is None
    assert parser.in_progress
    parser.feed(b"\r\n")
    assert parser.awaiting_body is None
    assert len(parser.complete) == 1


def test_in_progress_tracks_a_request_from_first_byte_to_completion() -> None:
    parser = RequestParser(LIMITS)
    assert not parser.in_progress
    parser.feed(b"G")
    assert parser.in_progress
    parser.feed(b"ET / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n")
    assert parser.in_progress
    parser.feed(b"ok")
    assert not parser.in_progress
    parser.feed(b"GET / HT")
    assert parser.in_progress


@pytest.mark.parametrize(
    ("data", "keep_alive"),
    [
        (get(b"/", b"Host: a"), True),
        (get(b"/", b"Host: a", b"Connection: keep-alive"), True),
        (get(b"/", b"Host: a", b"Connection: close"), False),
        (get(b"/", b"Host: a", b"Connection: CLOSE"), False),
        (get(b"/", b"Host: a", b"Connection: foo, close"), False),
        (get(b"/", version=b"1.0"), False),
        (get(b"/", b"Connection: keep-alive", version=b"1.0"), True),
        (get(b"/", b"Connection: Keep-Alive", version=b"1.0"), True),
    ],
    ids=[
        "1.1-default",
        "1.1-keep-alive",
        "1.1-close",
        "1.1-close-uppercase",
        "1.1-close-in-list",
        "1.0-default",
        "1.0-keep-alive",
        "1.0-keep-alive-mixed-case",
    ],
)
def test_keep_alive(data: bytes, keep_alive: bool) -> None:
    assert parse_one(data).keep_alive is keep_alive


def test_http_1_0_needs_no_host() -> None:
    request = parse_one(get(b"/", version=b"1.0"))
    assert request.version == "1.0"
    assert request.host is None


def test_absolute_form_target_is_kept_as_sent() -> None:
    request = parse_one(get(b"http://example.com/a?b=c", b"Host: example.com"))
    assert request.target == b"http://example.com/a?b=c"


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_common_methods_are_accepted(method: str) -> None:
    request = parse_one(method.encode() + b" / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert request.method == method


def test_leading_empty_lines_before_a_request_are_ignored() -> None:
    assert parse_one(b"\r\n" + get(b"/", b"Host: a")).target == b"/"


def test_upgrade_request_completes_and_marks_the_parser_upgraded() -> None:
    data = (
        b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
        b"\x81\x05hello"  # the other protocol's bytes
    )
    requests, parser = parse(data)
    assert len(requests) == 1
    assert requests[0].upgrade
    assert requests[0].target == b"/chat"
    assert parser.upgraded
    parser.feed(get(b"/after", b"Host: a"))
    assert len(parser.complete) == 1  # nothing after an Upgrade is parsed as HTTP


def test_upgrade_request_with_a_body_keeps_its_body() -> None:
    # What `curl --http2 -d abc http://...` sends: the server does not switch protocols, so it
    # must treat this as the plain POST it is, body included.
    request = parse_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
        b"Content-Length: 3\r\n\r\nabc"
    )
    assert request.body == b"abc"


# --------------------------------------------------------------------------- rejections

# `_invalid_method` judges the bytes of the current feed, not the request line that failed.

CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
TOO_MANY_CHUNKS = b"".join(b"100\r\n" + b"x" * 256 + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"

REJECTED = [
    # the request line
    pytest.param(b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n", 400, id="request-line-extra-field"),
    pytest.param(b"GET HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="request-line-no-target"),
    pytest.param(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, id="request-line-trailing-space"),
    pytest.param(b"GET / http/1.1\r\nHost: a\r\n\r\n", 400, id="request-line-lowercase-http"),
    pytest.param(b"GET / HTTP/1\r\nHost: a\r\n\r\n", 400, id="request-line-version-no-dot"),
    pytest.param(b"GET / FOO/1.1\r\nHost: a\r\n\r\n", 400, id="request-line-not-http"),
    pytest.param(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, id="space-in-target"),
    pytest.param(
        b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        id="method-not-a-token",
    ),
    pytest.param(
        b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        id="request-line-leading-space",
    ),
    pytest.param(
        b"GET\r\nHost: a\r\n\r\n",
        400,
        id="request-line-method-only",
    ),
    pytest.param(
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32) + b"\r\n\r\n",
        400,
        id="tls-client-hello",
    ),
    # sizes
    pytest.param(get(b"/" + b"a" * 64, b"Host: a"), 414, id="target-too-long"),
    pytest.param(
        get(b"/", b"Host: a", b"X-Big: " + b"v" * 600), 431, id="header-section-too-large"
    ),
    pytest.param(
        get(b"/", b"Host: a", *(b"X-H%d: v" % i for i in range(40))),
        431,
        id="header-section-too-large-by-many-fields",
    ),
    pytest.param(
        get(b"/", b"X-Big: " + b"v" * 600, b"Host: a"),
        431,
        id="header-section-too-large-first-field",
    ),
    pytest.param(
        get(b"/", b"Host: a", *(b"X-H%d: v" % i for i in range(8))), 431, id="too-many-headers"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n",
        413,
        id="body-too-large-by-content-length",
    ),
    pytest.param(CHUNKED_HEAD + TOO_MANY_CHUNKS, 413, id="body-too-large-chunked"),
    # transfer codings and framing
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, id="te-gzip"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
        id="te-gzip-chunked",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n",
        501,
        id="te-identity",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\n"
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501,
        id="te-gzip-then-chunked-in-two-fields",
    ),
    pytest.param(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, id="te-on-http-1.0"
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        id="content-length-and-te",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 5\r\n\r\n0\r\n\r\n",
        400,
        id="te-and-content-length",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        400,
        id="duplicate-content-length-same",
    ),
    pytest.param(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
        400,
        id="duplicate-content-length-different",
    ),
    *(
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\nx",
            400,
            id=f"content-length-{name}",
        )
        for name, value in [
            ("negative", b"-1"),
            ("plus", b"+1"),
            ("list", b"1, 1"),
            ("letters", b"abc"),
            ("trailing-letter", b"1x"),
            ("hex", b"0x1"),
            ("empty", b""),
            ("overflow", b"9" * 30),
        ]
    ),
    # the characters of the head
    pytest.param(get(b"/", b"Host: a", b"X-A: a", b" folded"), 400, id="obs-fold-space"),
    pytest.param(get(b"/", b"Host: a", b"X-A: a", b"\tfolded"), 400, id="obs-fold-tab"),
    pytest.param(b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400, id="bare-lf-request-line"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400, id="bare-lf-header"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400, id="bare-lf-end-of-head"),
    pytest.param(b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400, id="bare-cr-request-line"),
    pytest.param(b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", 400, id="bare-cr-header"),
    pytest.param(get(b"/", b"Host: a", b"X-A: a\rb"), 400, id="bare-cr-in-value"),
    pytest.param(get(b"/", b"Host: a", b"X-A: a\x00b"), 400, id="nul-in-value"),
    pytest.param(get(b"/", b"Host: a", b"X-A: a\x01b"), 400, id="ctl-01-in-value"),
    pytest.param(get(b"/", b"Host: a", b"X-A: a\x7fb"), 400, id="del-in-value"),
    pytest.param(get(b"/", b"Host: a", b"X\x00A: b"), 400, id="nul-in-name"),
    pytest.param(get(b"/", b"Host: a", b"X-A : b"), 400, id="space-before-colon"),
    pytest.param(get(b"/", b"Host: a", b": b"), 400, id="empty-name"),
    pytest.param(get(b"/a\x00b", b"Host: a"), 400, id="nul-in-target"),
    pytest.param(get(b"/a\x7fb", b"Host: a"), 400, id="del-in-target"),
    pytest.param(get(b"/a\tb", b"Host: a"), 400, id="tab-in-target"),
    # Host
    pytest.param(get(b"/"), 400, id="missing-host"),
    pytest.param(get(b"/", b"Host: a", b"Host: b"), 400, id="two-hosts"),
    pytest.param(get(b"/", b"host: a", b"HOST: a"), 400, id="two-hosts-same-value"),
    # versions, methods, expectations
    pytest.param(get(b"/", b"Host: a", version=b"2.0"), 505, id="http-2.0"),
    pytest.param(get(b"/", b"Host: a", version=b"0.9"), 505, id="http-0.9"),
    pytest.param(b"GET /\r\n\r\n", 505, id="http-0.9-no-version"),
    pytest.param(get(b"/", b"Host: a", version=b"1.2"), 505, id="http-1.2"),
    pytest.param(get(b"/", b"Host: a", version=b"3.0"), 505, id="http-3.0"),
    pytest.param(
        b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
        501,
        id="unknown-method",
    ),
    pytest.param(
        b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
        501,
        id="lowercase-method",
    ),
    pytest.param(get(b"/", b"Host: a", b"Expect: something-else"), 417, id="expect-unknown"),
    pytest.param(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405, id="connect"
    ),
    # chunk framing
    pytest.param(CHUNKED_HEAD + b"3\r\nabcX\r\n0\r\n\r\n", 400, id="chunk-data-without-crlf"),
    pytest.param(CHUNKED_HEAD + b"3\nabc\r\n0\r\n\r\n", 400, id="chunk-size-bare-lf"),
    pytest.param(CHUNKED_HEAD + b"zz\r\nabc\r\n0\r\n\r\n", 400, id="chunk-size-not-hex"),
    pytest.param(CHUNKED_HEAD + b"f" * 20 + b"\r\n", 400, id="chunk-size-overflow"),
]


@pytest.mark.parametrize(("data", "status"), REJECTED)
def test_rejected_with_status(data: bytes, status: int) -> None:
    assert rejection(data) == [status, status]


@pytest.mark.parametrize(
    ("second", "status"),
    [
        pytest.param(
            b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
            id="malformed-method",
        ),
        pytest.param(
            b"\x16\x03\x01\x00\xa5\x01",
            400,
            id="tls-bytes",
        ),
        pytest.param(b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501, id="unknown-method"),
    ],
)
def test_a_bad_method_after_a_good_request_in_the_same_read(second: bytes, status: int) -> None:
    parser = RequestParser(LIMITS)
    with pytest.raises(ProtocolError) as info:
        parser.feed(get(b"/ok", b"Host: a") + second)
    assert info.value.status == status
    assert [r.target for r in parser.complete] == [b"/ok"]


def test_target_too_long_is_414_when_fed_one_byte_at_a_time() -> None:
    # Explicitly: llhttp hands the target over in pieces, each under the limit.
    parser = RequestParser(LIMITS)
    with pytest.raises(ProtocolError) as info:
        feed_bytewise(parser, b"GET /" + b"a" * 200)
    assert info.value.status == 414


def test_target_at_the_limit_is_accepted() -> None:
    target = b"/" + b"a" * (LIMITS.max_request_line - 1)
    assert parse_one(get(target, b"Host: a")).target == target


def test_header_count_at_the_limit_is_accepted() -> None:
    headers = [b"Host: a", *(b"X-H%d: v" % i for i in range(LIMITS.max_headers - 1))]
    assert len(parse_one(get(b"/", *headers)).headers) == LIMITS.max_headers


def test_body_at_the_limit_is_accepted() -> None:
    body = b"b" * LIMITS.max_body_size
    request = parse_one(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    assert request.body == body


def test_a_head_that_never_ends_is_refused_once_over_the_limit() -> None:
    # A client dribbling an endless header line must not make the parser buffer without bound.
    parser = RequestParser(LIMITS)
    parser.feed(b"GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ")
    fed = 0

    def dribble() -> None:
        nonlocal fed
        while fed < 4 * LIMITS.max_header_size:
            parser.feed(b"v")
            fed += 1

    with pytest.raises(ProtocolError) as info:
        dribble()
    assert info.value.status == 431
    assert fed <= LIMITS.max_header_size


@pytest.mark.parametrize(
    "closing",
    [get(b"/a", b"Host: a", b"Connection: close"), get(b"/a", version=b"1.0")],
    ids=["1.1-connection-close", "1.0"],
)
@pytest.mark.parametrize("feeder", FEEDERS, ids=["whole", "bytewise"])
def test_bytes_after_a_closing_request_do_not_fail_it(
    closing: bytes, feeder: Callable[[RequestParser, bytes], None]
) -> None:
    # No further request is read on a connection that will close: what follows is dropped.
    parser = RequestParser(LIMITS)
    feeder(parser, closing + get(b"/b", b"Host: a") + b"garbage \x00\r\n")
    assert [r.target for r in parser.complete] == [b"/a"]
    assert not parser.in_progress


def test_a_protocol_other_than_http_is_refused() -> None:
    for status in rejection(get(b"/", b"Host: a", version=b"1.0").replace(b"HTTP/", b"RTSP/")):
        assert status in (400, 505)


def test_a_spent_parser_raises_the_same_error_again() -> None:
    parser = RequestParser(LIMITS)
    with pytest.raises(ProtocolError) as first:
        parser.feed(get(b"/", b"Host: a", b"Host: b"))
    with pytest.raises(ProtocolError) as again:
        parser.feed(get(b"/", b"Host: a"))
    assert again.value is first.value
    assert not parser.complete


def test_requests_before_an_error_are_still_complete() -> None:
    parser = RequestParser(LIMITS)
    with pytest.raises(ProtocolError) as info:
        parser.feed(get(b"/ok", b"Host: a") + get(b"/bad"))
    assert info.value.status == 400
    assert [r.target for r in parser.complete] == [b"/ok"]


def test_error_reason_does_not_echo_the_clients_bytes() -> None:
    parser = RequestParser(LIMITS)
    with pytest.raises(ProtocolError) as info:
        parser.feed(get(b"/", b"Host: a", b"Expect: <script>secret</script>"))
    assert "secret" not in info.value.reason
