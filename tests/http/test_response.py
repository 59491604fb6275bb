"""Response serialization: status lines, chunks, the server's own error answers, Date."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest

from poolserver.http import (
    CONTINUE,
    LAST_CHUNK,
    DateHeader,
    _response,
    chunk,
    error_response,
    status_line,
)


def split_response(data: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """Status line, headers (lower-cased names, each at most once) and body."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, "no end of head"
    first, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, colon, value = line.partition(":")
        assert colon, f"malformed header line {line!r}"
        assert name.lower() not in headers, f"{name} sent twice"
        headers[name.lower()] = value.strip()
    return first.encode("latin-1"), headers, body


def test_status_line() -> None:
    assert status_line("200 OK") == b"HTTP/1.1 200 OK\r\n"
    assert status_line("404 Not Found") == b"HTTP/1.1 404 Not Found\r\n"


def test_status_line_keeps_a_custom_reason_phrase() -> None:
    assert status_line("299 Something Odd") == b"HTTP/1.1 299 Something Odd\r\n"


def test_status_line_encodes_latin_1() -> None:
    assert status_line("200 Caf\xe9") == b"HTTP/1.1 200 Caf\xe9\r\n"


def test_status_line_is_stable_across_many_distinct_statuses() -> None:
    # The cache is bounded; statuses beyond it must still come out right.
    lines = [status_line(f"299 Reason {i}") for i in range(2000)]
    assert lines[1999] == b"HTTP/1.1 299 Reason 1999\r\n"
    assert status_line("299 Reason 3") == b"HTTP/1.1 299 Reason 3\r\n"


def test_continue_and_last_chunk() -> None:
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert LAST_CHUNK == b"0\r\n\r\n"


@pytest.mark.parametrize(
    ("data", "framed"),
    [
        (b"a", b"1\r\na\r\n"),
        (b"hello", b"5\r\nhello\r\n"),
        (b"x" * 16, b"10\r\n" + b"x" * 16 + b"\r\n"),
        (b"y" * 255, b"ff\r\n" + b"y" * 255 + b"\r\n"),
        (b"\r\n0\r\n\r\n", b"7\r\n\r\n0\r\n\r\n\r\n"),
    ],
)
def test_chunk(data: bytes, framed: bytes) -> None:
    assert chunk(data) == framed


@pytest.mark.parametrize("status", [400, 408, 413, 414, 417, 431, 500, 501, 503, 505])
def test_error_response_is_complete_and_closes(status: int) -> None:
    first, headers, body = split_response(error_response(status, DateHeader()))
    assert first.startswith(b"HTTP/1.1 %d " % status)
    assert headers["connection"] == "close"
    assert headers["content-length"] == str(len(body))
    assert headers["content-type"].startswith("text/plain")
    assert headers["server"] == "poolserver"
    assert "date" in headers
    assert body.startswith(b"%d " % status)


def test_error_response_body_is_only_the_status_text() -> None:
    first, _, body = split_response(error_response(431, DateHeader()))
    assert first == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert body == b"431 Request Header Fields Too Large\n"


def test_error_response_can_keep_the_connection() -> None:
    _, headers, _ = split_response(error_response(500, DateHeader(), close=False))
    assert "connection" not in headers


def test_error_response_extra_headers() -> None:
    _, headers, _ = split_response(error_response(503, DateHeader(), extra=(("Retry-After", "3"),)))
    assert headers["retry-after"] == "3"


def test_error_response_for_head_has_length_but_no_body() -> None:
    _, headers, body = split_response(error_response(400, DateHeader(), head_only=True))
    assert body == b""
    assert headers["content-length"] == str(len(b"400 Bad Request\n"))


def date_value(line: bytes) -> str:
    assert line.startswith(b"Date: ")
    assert line.endswith(b"\r\n")
    return line[len(b"Date: ") : -2].decode("ascii")


def test_date_header_is_imf_fixdate_for_now() -> None:
    before = time.time()
    value = date_value(DateHeader().line())
    after = time.time()
    # IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT", always 29 characters.
    assert len(value) == 29
    assert value[3:5] == ", "
    assert value.endswith(" GMT")
    parsed = parsedate_to_datetime(value)
    assert parsed.utcoffset() == timedelta(0)
    assert int(before) <= parsed.timestamp() <= after


class FakeClock:
    """Stands in for the `time` module inside `_response`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now


def test_date_header_format_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_response, "time", FakeClock(784111777.0))
    assert DateHeader().line() == b"Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"


def test_date_header_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(784111777.25)
    monkeypatch.setattr(_response, "time", clock)
    date = DateHeader()
    first = date.line()
    clock.now = 784111777.75
    assert date.line() == first  # the same second
    clock.now = 784111778.0
    second = date.line()
    assert date_value(second) == "Sun, 06 Nov 1994 08:49:38 GMT"
    clock.now = 784198177.0  # a day later
    assert date_value(date.line()) == "Mon, 07 Nov 1994 08:49:37 GMT"
    assert parsedate_to_datetime(date_value(second)) == datetime(1994, 11, 6, 8, 49, 38, tzinfo=UTC)
