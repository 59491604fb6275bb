"""The applications that bench/http_bench.py serves with every server it measures.

`hello` is the smallest WSGI app that still sets its own Content-Length, so that each
server's own cost per request dominates. `sleep10` holds its worker thread for 10 ms, as an
application waiting on a database would. `hello_asgi` and `sleep10_asgi` are `hello` and
`sleep10` for uvicorn, which serves ASGI only.

Servers import these as `bench.apps:hello` (etc.), from the repository's root.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from wsgiref.types import StartResponse, WSGIEnvironment

HELLO_BODY = b"Hello world !\n"
SLEEP_BODY = b"Slept 10 ms\n"
SLEEP_SECONDS = 0.01

ASGIScope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Awaitable[ASGIMessage]]
ASGISend = Callable[[ASGIMessage], Awaitable[None]]


def _headers(body: bytes) -> list[tuple[str, str]]:
    return [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]


def hello(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Answer every request with 200 and a 14-byte text body."""
    start_response("200 OK", _headers(HELLO_BODY))
    return [HELLO_BODY]


def sleep10(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """Block the calling thread for 10 ms, then answer like `hello` with another body."""
    # A blocking sleep, not a busy loop: it releases the GIL, so the bound on throughput is
    # threads / 10 ms, whatever the CPU does.
    time.sleep(SLEEP_SECONDS)
    start_response("200 OK", _headers(SLEEP_BODY))
    return [SLEEP_BODY]


async def _lifespan(receive: ASGIReceive, send: ASGISend) -> None:
    # Acknowledging the lifespan protocol keeps uvicorn from logging that it is unsupported.
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def hello_asgi(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
    """The ASGI equivalent of `hello`: same status, headers and body."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    headers = [(name.lower().encode(), value.encode()) for name, value in _headers(HELLO_BODY)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": HELLO_BODY})


async def sleep10_asgi(scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
    """The ASGI counterpart of `sleep10`: waits 10 ms without blocking, then the same answer."""
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    # No thread to hold: what bounds concurrency is the server's --limit-concurrency.
    await asyncio.sleep(SLEEP_SECONDS)
    headers = [(name.lower().encode(), value.encode()) for name, value in _headers(SLEEP_BODY)]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": SLEEP_BODY})
