"""Helpers for tests over real sockets: a raw HTTP/1.1 client that reads exactly one response.

`RawClient` sends whatever bytes a test gives it and parses what comes back strictly (status
line, headers, then a Content-Length, chunked or close-delimited body), so protocol edges can
be exercised that `http.client` would refuse to produce or would paper over.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from poolserver.server import Server
from poolserver.testing import serving
from poolserver.wsgi import WSGIApp

TIMEOUT = 5.0  # bound on any single wait for the server; never reached when things work


@contextlib.contextmanager
def running(app: WSGIApp, **options: Any) -> Iterator[Server]:
    """`serving`, plus: on the way out, wait (bounded) for every thread the server started.

    So a test's assertions, and pytest's report of a failure, never race with a worker still
    finishing (and maybe logging) after the server closed.
    """
    before = set(threading.enumerate())
    try:
        with serving(app, **options) as server:
            yield server
    finally:
        for thread in set(threading.enumerate()) - before:
            thread.join(TIMEOUT)


class IncompleteResponse(Exception):
    """The connection ended in the middle of a response."""

    def __init__(self, message: str, partial: Response | None = None) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass
class Response:
    """One response as it came over the wire."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunked: bool = False
    chunks: list[bytes] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The value of `name` (case-insensitive); fails if it was sent more than once."""
        values = self.all(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def closes(self) -> bool:
        """The server said it will close the connection after this response."""
        connection = self.header("Connection") or ""
        return "close" in connection.lower()


class RawClient:
    """A blocking socket with a read buffer; every wait is bounded by `timeout`."""

    def __init__(
        self, address: tuple[str, int], timeout: float = TIMEOUT, rcvbuf: int | None = None
    ) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self._buffer = b""
        self.eof = False
        self.reset = False  # the server reset the connection instead of closing it

    def __enter__(self) -> RawClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    # ----------------------------------------------------------------- reading

    def _fill(self, size: int = 65536) -> bool:
        """Receive more bytes into the buffer; False at EOF (or a reset, which ends it too)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(size)
        except ConnectionResetError:
            self.reset = True
            data = b""
        if not data:
            self.eof = True
            return False
        self._buffer += data
        return True

    def read_line(self) -> bytes:
        """One CRLF-terminated line, without the CRLF."""
        while b"\r\n" not in self._buffer:
            if not self._fill():
                raise IncompleteResponse(f"connection closed mid-line: {self._buffer!r}")
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def read_exact(self, size: int) -> bytes:
        while len(self._buffer) < size:
            if not self._fill(max(65536, size - len(self._buffer))):
                raise IncompleteResponse(
                    f"connection closed after {len(self._buffer)} of {size} bytes"
                )
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        data, self._buffer = self._buffer, b""
        return data

    def read_head(self) -> Response:
        """The status line and headers of the next response (interim ones included)."""
        line = self.read_line().decode("latin-1")
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        assert version.startswith("HTTP/"), f"not a status line: {line!r}"
        assert len(code) == 3, f"not a status line: {line!r}"
        assert code.isdigit(), f"not a status line: {line!r}"
        headers = []
        while line := self.read_line().decode("latin-1"):
            name, colon, value = line.partition(":")
            assert colon, f"malformed header line {line!r}"
            assert name == name.strip(), f"whitespace around header name {name!r}"
            headers.append((name, value.strip()))
        return Response(version, int(code), reason, headers)

    def read_response(self, *, method: str = "GET") -> Response:
        """The next complete response, body framed as the headers say.

        Raises:
            IncompleteResponse: the connection closed before the response was whole.
        """
        response = self.read_head()
        no_body = method == "HEAD" or response.status in (204, 304) or response.status < 200
        if no_body:
            return response
        if (response.header("Transfer-Encoding") or "").lower() == "chunked":
            response.chunked = True
            self._read_chunks(response)
        elif (length := response.header("Content-Length")) is not None:
            response.body = self.read_exact(int(length))
        else:
            response.body = self.read_to_eof()
        return response

    def _read_chunks(self, response: Response) -> None:
        try:
            while True:
                size_line = self.read_line()
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    while self.read_line():  # trailers, up to the empty line
                        pass
                    return
                data = self.read_exact(size)
                assert self.read_exact(2) == b"\r\n", "chunk data not followed by CRLF"
                response.chunks.append(data)
                response.body += data
        except IncompleteResponse as exc:
            raise IncompleteResponse(str(exc), response) from None

    def closed_by_server(self) -> bool:
        """Wait (bounded) for the server to close; True if it closed cleanly (EOF, no reset).

        Bytes that arrive first fail the assertion, so stray output is never silently passed.
        Raises `TimeoutError` if the server keeps the connection open past the timeout.
        """
        leftover = self.read_to_eof()
        assert leftover == b"", f"unexpected bytes before the close: {leftover[:200]!r}"
        return self.eof and not self.reset


def exchange(address: tuple[str, int], data: bytes, *, method: str = "GET") -> Response:
    """Send `data` on a fresh connection and read one response."""
    with RawClient(address) as client:
        client.send(data)
        return client.read_response(method=method)


def get_request(target: str = "/", *headers: str, method: str = "GET") -> bytes:
    """A well-formed HTTP/1.1 request (with Host) as bytes."""
    lines = [f"{method} {target} HTTP/1.1", "Host: test", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
