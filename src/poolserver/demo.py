"""The built-in demo application, served when no application is named.

`/` answers `Hello world !` as the seed's server does. `/sleep?ms=N` blocks N milliseconds (an
I/O-bound handler) and `/cpu?ms=N` computes for N milliseconds (a CPU-bound one), to try load
by hand. Durations are capped at 10 s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

HELLO = b"Hello world !\n"
MAX_MS = 10_000


def _milliseconds(environ: dict[str, Any]) -> float:
    values = parse_qs(environ.get("QUERY_STRING", "")).get("ms", ["0"])
    try:
        return min(max(float(values[0]), 0.0), MAX_MS)
    except ValueError:
        return 0.0


def _spin(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        sum(range(200))  # keep the interpreter busy, as Python request code would


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The demo WSGI application."""
    path = environ.get("PATH_INFO", "/")
    if path == "/":
        body = HELLO
    elif path == "/sleep":
        ms = _milliseconds(environ)
        time.sleep(ms / 1000)
        body = b"slept %g ms\n" % ms
    elif path == "/cpu":
        ms = _milliseconds(environ)
        _spin(ms)
        body = b"computed %g ms\n" % ms
    else:
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"404 Not Found\n"]
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
