"""The application the deployment tests serve: each answer says which instance gave it.

The instance's name comes from `DEPLOY_APP_NAME`; `DEPLOY_APP_DELAY_MS` makes every request
of this instance take that long (on top of `?ms=N`), to make one instance slower than another.
The answer is JSON: the instance's name and pid, what the proxy told (client address, scheme,
`X-Request-Start`) and the length of the request body.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

NAME = os.environ.get("DEPLOY_APP_NAME", "")
DELAY_MS = float(os.environ.get("DEPLOY_APP_DELAY_MS", "0"))
MAX_MS = 10_000.0


def _query_ms(environ: dict[str, Any]) -> float:
    values = parse_qs(environ.get("QUERY_STRING", "")).get("ms", ["0"])
    try:
        return min(max(float(values[0]), 0.0), MAX_MS)
    except ValueError:
        return 0.0


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Sleep as asked, then tell who answered and what the proxy passed on."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    received = len(environ["wsgi.input"].read(length)) if length else 0
    delay = DELAY_MS + _query_ms(environ)
    if delay:
        time.sleep(delay / 1000)
    body = json.dumps(
        {
            "name": NAME,
            "pid": os.getpid(),
            "method": environ["REQUEST_METHOD"],
            "received": received,
            "remote_addr": environ.get("REMOTE_ADDR", ""),
            "scheme": environ["wsgi.url_scheme"],
            "request_start": environ.get("HTTP_X_REQUEST_START", ""),
        }
    ).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    )
    return [body]
