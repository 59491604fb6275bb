"""Messages between the supervisor and a serving process: JSON objects, one per line, over a
socket pair made before the fork.

The supervisor reads its end without blocking (`LineReader` collects whole lines); a serving
process reads its end in a thread of its own and sends from any thread (`Channel`).
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

Message = dict[str, Any]

MAX_LINE = 16 * 1024 * 1024  # a snapshot with its history is far smaller; beyond, a fault


def encode(message: Message) -> bytes:
    """One message as a line."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


class ChannelError(Exception):
    """The other end sent something that is not a message."""


class LineReader:
    """Collects received bytes into messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message]:
        """The messages completed by `data`."""
        self._buffer += data
        if b"\n" not in data:
            if len(self._buffer) > MAX_LINE:
                raise ChannelError("message too long")
            return []
        *lines, rest = bytes(self._buffer).split(b"\n")
        self._buffer = bytearray(rest)
        messages = []
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError as exc:
                raise ChannelError(f"not JSON: {line[:80]!r}") from exc
            if not isinstance(message, dict):
                raise ChannelError(f"not an object: {line[:80]!r}")
            messages.append(message)
        return messages


class Channel:
    """A serving process's end: blocking reads (one reader thread), sends from any thread."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._reader = LineReader()
        self._pending: list[Message] = []
        self._send_lock = threading.Lock()

    def send(self, message: Message) -> bool:
        """Send one message; False if the supervisor is gone."""
        data = encode(message)
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError:
                return False
        return True

    def receive(self) -> Message | None:
        """The next message; None once the supervisor has closed its end (or died)."""
        while not self._pending:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self._pending.extend(self._reader.feed(data))
        return self._pending.pop(0)

    def close(self) -> None:
        """Close this end."""
        self._sock.close()
