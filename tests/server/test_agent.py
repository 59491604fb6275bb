"""The HAProxy agent-check port: free capacity as a weight, `drain` while draining."""

from __future__ import annotations

import socket
import threading

from poolserver.server import Server
from poolserver.server._agent import agent_reply
from poolserver.server._snapshot import snapshot
from poolserver.testing import serving

from .apps import BlockingApp
from .test_metrics import Hold


def agent_line(server: Server) -> str:
    """Connect as HAProxy does and read the one line the agent sends."""
    assert server.agent is not None
    with socket.create_connection(server.agent.address, timeout=5) as sock:
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(100)
            if not chunk:
                break
            data += chunk
        assert sock.recv(100) == b"", "the agent closes after its line"
    return data.decode()


def test_agent_reports_the_share_of_free_workers() -> None:
    release = threading.Event()
    with serving(BlockingApp(), agent_port=0, workers=4, queue_size=8) as server:
        assert agent_line(server) == "ready up 100%\n"
        try:
            for _ in range(2):
                server.pool.post(Hold(release))
            assert agent_line(server) == "ready up 50%\n"
            for _ in range(4):  # every worker busy and two waiting
                server.pool.post(Hold(release))
            # Never 0%: HAProxy would have nowhere to send anything when all are busy.
            assert agent_line(server) == "ready up 1%\n"
        finally:
            release.set()


def test_agent_says_drain_while_draining() -> None:
    with serving(BlockingApp(), agent_port=0) as server:
        assert agent_line(server).startswith("ready up")
        server.stop_accepting()
        assert agent_line(server) == "drain\n"


def test_agent_weight_counts_the_last_seconds_busy_time() -> None:
    with serving(BlockingApp(), workers=4) as server:
        data = snapshot(server, detail=False)
        data["pool"]["busy"] = 3.0  # three workers' worth of service time in the last second
        assert agent_reply(data) == b"ready up 25%\n"


def test_agent_is_off_unless_asked_for() -> None:
    with serving(BlockingApp()) as server:
        assert server.agent is None
