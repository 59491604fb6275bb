"""Protocol errors: what the peer got wrong, and which status answers it."""

from __future__ import annotations


class ProtocolError(Exception):
    """The client broke HTTP/1.1; the connection cannot go on.

    Attributes:
        status: the status code to answer with (400, 413, 414, 431, 501, 505...).
        reason: a short description, for the log (never the client's bytes verbatim).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
