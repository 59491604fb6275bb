"""An HAProxy agent-check listener: tells the load balancer how much this server can take.

HAProxy connects to the agent port every `agent-inter` and reads one line. The answer is
`ready up N%` — N the share of workers free for more work (from the last second's busy time,
the requests running and those waiting), which HAProxy applies to the server's weight — or
`drain` once the server drains, so that HAProxy sends it no new connection while its requests
finish. `ready` undoes a `drain` that HAProxy remembers from an earlier run on the same address.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable

from ._snapshot import Snapshot, free_capacity

log = logging.getLogger("poolserver")

AGENT_SEND_TIMEOUT = 1.0  # a peer that does not read its line is dropped after this


def agent_reply(data: Snapshot) -> bytes:
    """The agent's line for a snapshot (of one process, or merged)."""
    if data["draining"]:
        return b"drain\n"
    # Never 0%: with every instance busy, HAProxy would have nowhere to send anything, and
    # the server's own admission control (queue, 503 + Retry-After) is the better judge.
    percent = max(1, round(100 * free_capacity(data)))
    return f"ready up {percent}%\n".encode()


class AgentListener:
    """Answers each connection with one line, in a thread of its own.

    Args:
        host, port: where to listen (port 0: any free port).
        reply: makes the line, at each connection.
    """

    def __init__(self, host: str, port: int, reply: Callable[[], bytes]) -> None:
        self._reply = reply
        self._sock = socket.create_server((host, port))
        self._thread = threading.Thread(target=self._run, name="poolserver-agent", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port)."""
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and close the socket."""
        # shutdown() wakes the blocked accept() on Linux; elsewhere close() does.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(5)

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed by stop()
            with conn:
                conn.settimeout(AGENT_SEND_TIMEOUT)
                try:
                    conn.sendall(self._reply())
                except OSError as exc:
                    log.debug("agent check: %s", exc)
                except Exception:
                    log.exception("agent check failed")
