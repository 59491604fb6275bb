"""Serving an application in-process, for tests: `with serving(app) as server: ...`.

The server binds port 0 on 127.0.0.1 and reports its address once it accepts, so tests never
wait for readiness with a sleep.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .config import Config
from .server import Server
from .wsgi import WSGIApp


@contextlib.contextmanager
def serving(app: WSGIApp, **options: Any) -> Iterator[Server]:
    """Run `app` on a fresh server for the duration of the block, then close it.

    Args:
        options: `Config` fields to override; `host` defaults to 127.0.0.1 and `port` to 0.
    """
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    server = Server(app, Config(**options))
    server.start()
    try:
        yield server
    finally:
        server.close()
