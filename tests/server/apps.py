"""Test applications that block on events, so tests decide exactly when each request ends."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import poolserver
from poolserver.pool import CancelToken

StartResponse = Callable[..., Any]


class BlockingApp:
    """Blocks each request on `release` after signalling `entered`; records what it saw.

    `/fast` neither blocks nor signals.
    """

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.paths: list[str] = []
        self.remaining: list[float | None] = []
        self.tokens: list[CancelToken] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.calls += 1
            self.paths.append(environ["PATH_INFO"])
            self.remaining.append(poolserver.remaining(environ))
            self.tokens.append(environ[poolserver.CANCEL_KEY])
        if environ["PATH_INFO"] != "/fast":
            self.entered.set()
            assert self.release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]


class StreamingApp:
    """Sends its head and a first chunk, then blocks on `release` before the rest."""

    def __init__(self) -> None:
        self.first_sent = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first "
        self.first_sent.set()
        self.release.wait(10)
        yield b"rest"


def get(
    address: tuple[str, int], path: str = "/", results: list[Any] | None = None
) -> threading.Thread:
    """GET `path` in a thread; appends the response (status, headers, body) to `results`."""
    collected = results if results is not None else []

    def run() -> None:
        client = http.client.HTTPConnection(*address, timeout=10)
        try:
            client.request("GET", path)
            response = client.getresponse()
            collected.append((response.status, dict(response.headers), response.read()))
        except OSError as exc:
            collected.append((0, {}, repr(exc).encode()))
        finally:
            client.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread
