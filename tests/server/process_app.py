"""An application for tests of several processes: it tells which process answered.

- `/hold?port=N`: connects to 127.0.0.1:N, sends the first line of its answer (the process's
  pid), then holds its worker until the test closes that connection.
- `/imported`: the pid of the process that imported this module (the supervisor's with
  `--preload`).
- anything else: the pid of the process, as the whole body.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

IMPORTED_BY = os.getpid()


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI application."""
    environ["wsgi.input"].read()
    if environ["PATH_INFO"] == "/hold":
        port = int(parse_qs(environ["QUERY_STRING"])["port"][0])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _hold(port)
    pid = IMPORTED_BY if environ["PATH_INFO"] == "/imported" else os.getpid()
    body = f"{pid}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def _hold(port: int) -> Iterator[bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as control:
        yield f"{os.getpid()}\n".encode()
        while control.recv(100):
            pass
    yield b"released\n"
