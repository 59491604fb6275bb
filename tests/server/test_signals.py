"""The `poolserver` program: it reports its address, drains on SIGTERM, exits 0."""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest


class Program:
    """A `python -m poolserver` child process whose bound address is read from its log."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "poolserver", "--port", "0", *args],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._address = threading.Event()
        self.draining = threading.Event()
        self.port = 0
        self._reader = threading.Thread(target=self._read_log)
        self._reader.start()
        if not self._address.wait(20):
            self.process.kill()
            raise AssertionError(f"the server never reported its address: {self.lines}")

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if "shutting down" in line:
                self.draining.set()
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                self._address.set()

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self) -> int:
        code = self.process.wait(20)
        self._reader.join(5)
        return code


@pytest.fixture
def program() -> Iterator[Program]:
    server = Program("--drain-timeout", "5")
    yield server
    if server.process.poll() is None:
        server.process.kill()
        server.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_lets_the_request_in_flight_finish_then_exits_0(
    program: Program, signum: int
) -> None:
    idle = program.connect()
    idle.request("GET", "/")
    assert idle.getresponse().read() == b"Hello world !\n"

    busy = program.connect()
    busy.request("GET", "/sleep?ms=400")
    started = time.monotonic()
    # The request is in flight: it takes 400 ms and the signal comes now.
    program.signal(signum)
    response = busy.getresponse()
    assert response.status == 200
    assert response.read() == b"slept 400 ms\n"
    assert response.headers["Connection"] == "close"
    assert program.wait() == 0
    assert time.monotonic() - started < 5
    log = "".join(program.lines)
    assert "shutting down" in log
    assert "shut down" in log
    # The idle connection was closed, and the listener too.
    idle.request("GET", "/")  # may still be sent: only the answer can tell
    with pytest.raises(http.client.RemoteDisconnected):
        idle.getresponse()
    with pytest.raises(ConnectionRefusedError):
        program.connect().request("GET", "/")


def test_a_second_signal_exits_at_once(program: Program) -> None:
    busy = program.connect()
    busy.request("GET", "/sleep?ms=3000")
    program.signal(signal.SIGTERM)
    # Once the drain has begun (it logs so), the next signal is the second one.
    assert program.draining.wait(10), "the drain never began"
    started = time.monotonic()
    program.signal(signal.SIGTERM)
    assert program.wait() != 0
    assert time.monotonic() - started < 2
    busy.close()


class SteadyClient:
    """POSTs in a loop on one keep-alive connection and never retries on its own.

    Records every answer; a failure on an established connection counts as a broken request,
    a refused new connection ends the loop.
    """

    def __init__(self, port: int, warmed: threading.Barrier) -> None:
        self.port = port
        self.warmed = warmed
        self.answers: dict[int, int] = {}
        self.broken: list[str] = []
        self.refused_new_connection = False
        self.error: str | None = None  # what ended the loop otherwise, if anything did
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # recorded for the test's report
            self.error = repr(exc)

    def _loop(self) -> None:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        deadline = time.monotonic() + 20
        sent = 0
        while time.monotonic() < deadline:
            new_connection = client.sock is None
            try:
                client.request("POST", "/", body=b"x" * 512)
                response = client.getresponse()
                response.read()
            except ConnectionRefusedError:
                assert new_connection, "refused on an established connection"
                self.refused_new_connection = True
                return
            except (OSError, http.client.HTTPException) as exc:
                if new_connection:
                    # A connection the kernel completed just as the listener closed is reset
                    # without an answer: it was never accepted, a refused new connection.
                    self.refused_new_connection = True
                else:
                    self.broken.append(repr(exc))
                return
            self.answers[response.status] = self.answers.get(response.status, 0) + 1
            sent += 1
            if sent == 20:
                self.warmed.wait(10)
        self.error = "the server still answered after 20 s"


def test_sigterm_under_steady_keepalive_load_breaks_no_request() -> None:
    program = Program("--drain-timeout", "10", "--workers", "4")
    clients_count = 6
    warmed = threading.Barrier(clients_count + 1)
    clients = [SteadyClient(program.port, warmed) for _ in range(clients_count)]
    for client in clients:
        client.thread.start()
    warmed.wait(20)  # every client has 20 answers behind it and keeps going
    program.signal(signal.SIGTERM)
    for client in clients:
        client.thread.join(30)
    code = program.wait()
    # Each client's story and the server's log, shown if any check fails.
    story = [(c.answers, c.broken, c.refused_new_connection, c.error) for c in clients]
    log = "".join(program.lines)
    assert code == 0, (story, log)
    assert [c.broken for c in clients] == [[]] * clients_count, (story, log)
    assert all(c.refused_new_connection for c in clients), (story, log)
    answered = sum(sum(c.answers.values()) for c in clients)
    assert answered >= 20 * clients_count, (story, log)
    assert set().union(*(c.answers for c in clients)) <= {200, 503}, (story, log)
    assert "shut down cleanly" in log
