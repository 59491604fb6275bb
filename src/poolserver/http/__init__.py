"""Sans-I/O HTTP/1.1: bytes in, requests out; responses to bytes.

No socket, thread or clock-driven I/O here: the server feeds bytes and writes what comes back.
"""

from ._body import Body
from ._errors import ProtocolError
from ._parser import Limits, Request, RequestParser
from ._response import (
    CONTINUE,
    LAST_CHUNK,
    SERVER_HEADER,
    DateHeader,
    chunk,
    error_response,
    status_line,
)

__all__ = [
    "CONTINUE",
    "LAST_CHUNK",
    "SERVER_HEADER",
    "Body",
    "DateHeader",
    "Limits",
    "ProtocolError",
    "Request",
    "RequestParser",
    "chunk",
    "error_response",
    "status_line",
]
