"""`--processes N`: a supervisor and its serving processes, run as a real program."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.server.process_app:app"


class Supervised:
    """A `python -m poolserver` supervisor whose log the test can wait on."""

    def __init__(self, *args: str, app: str = APP) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "poolserver", app, "--port", "0", "--admin-port", "0", *args],
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_log)
        self._reader.start()

    def start(self) -> Supervised:
        """Wait until the listeners are known."""
        self.port = int(self.wait_for(r"listening on http://127\.0\.0\.1:(\d+)").group(1))
        self.admin_port = int(self.wait_for(r"admin listener on http://127\.0\.0\.1:(\d+)")[1])
        return self

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<end of log>")
            self._changed.notify_all()

    def mark(self) -> int:
        """Where the log is now: `wait_for(..., after=mark)` looks only at later lines."""
        with self._changed:
            return len(self.lines)

    def wait_for(self, pattern: str, *, after: int = 0, timeout: float = 20) -> re.Match[str]:
        """The first log line from `after` on that matches `pattern`, once it is written."""
        found: list[re.Match[str]] = []

        def seen() -> bool:
            for line in self.lines[after:]:
                if (match := re.search(pattern, line)) is not None:
                    found.append(match)
                    return True
            return self.lines[-1:] == ["<end of log>"]

        with self._changed:
            self._changed.wait_for(seen, timeout)
        assert found, f"never logged {pattern!r}:\n{''.join(self.lines)}"
        return found[0]

    def count(self, pattern: str, *, after: int = 0) -> int:
        """How many log lines from `after` on match `pattern`."""
        with self._changed:
            return sum(1 for line in self.lines[after:] if re.search(pattern, line))

    def get(self, path: str = "/") -> tuple[int, str]:
        """GET on a new connection, read until the server closes it: (status, body).

        The server closes after it has counted the request: a scrape that follows sees it.
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), body.decode()

    def admin(self, path: str) -> str:
        """The body of an admin GET (any status)."""
        client = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            client.request("GET", path)
            return client.getresponse().read().decode()
        finally:
            client.close()

    def pids(self) -> list[int]:
        """The serving processes' pids, as the status says."""
        return [p["pid"] for p in json.loads(self.admin("/status.json"))["processes"]]

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def wait(self) -> int:
        code = self.process.wait(30)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


@pytest.fixture
def servers() -> Iterator[list[Supervised]]:
    started: list[Supervised] = []
    yield started
    for server in started:
        server.kill()


def run(servers: list[Supervised], *args: str, app: str = APP) -> Supervised:
    server = Supervised(*args, app=app)
    servers.append(server)
    return server.start()


def scrape(server: Supervised) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(server.admin("/metrics")):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_processes_serve_and_their_metrics_add_up(servers: list[Supervised]) -> None:
    server = run(servers, "--processes", "2")
    server.wait_for(r"process p2 \(pid \d+\) serving")
    server.wait_for(r"process p1 \(pid \d+\) serving")
    pids = server.pids()
    assert len(set(pids)) == 2
    assert os.getpid() not in pids
    answers = [server.get("/pid") for _ in range(20)]
    assert {status for status, _ in answers} == {200}
    assert {int(body) for _, body in answers} <= set(pids)
    samples = scrape(server)
    assert samples[("poolserver_processes", ())] == 2
    assert samples[("poolserver_requests_total", (("status_class", "2xx"),))] == 20
    assert samples[("poolserver_workers", ())] == 32  # two processes of 16
    assert server.admin("/readyz") == "ready (2 of 2 processes)\n"
    server.signal(signal.SIGTERM)
    assert server.wait() == 0
    assert server.count(r"exited with code 0 after draining") == 2
    assert server.count(r"shut down cleanly") == 1


def test_a_killed_process_is_replaced(servers: list[Supervised]) -> None:
    server = run(servers, "--processes", "2")
    server.wait_for(r"process p2 \(pid \d+\) serving")
    server.wait_for(r"process p1 \(pid \d+\) serving")
    before = server.pids()
    mark = server.mark()
    os.kill(before[0], signal.SIGKILL)
    server.wait_for(
        rf"process p\d \(pid {before[0]}\) was killed by SIGKILL; starting another", after=mark
    )
    new_pid = int(server.wait_for(r"process p3 \(pid (\d+)\) serving", after=mark)[1])
    assert sorted(server.pids()) == sorted([before[1], new_pid])
    assert {server.get("/pid")[0] for _ in range(10)} == {200}


class Hold:
    """Holds one worker of whichever process takes `/hold`, until `release`."""

    def __init__(self, port: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.client = socket.create_connection(("127.0.0.1", port), timeout=10)
        hold_port = self.listener.getsockname()[1]
        self.client.sendall(f"GET /hold?port={hold_port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        self.listener.settimeout(10)
        self.control, _ = self.listener.accept()  # the app holds its worker from now on
        head = b""
        while b"\r\n\r\n" not in head or not re.search(rb"\r\n\r\n[0-9a-f]+\r\n\d+\n", head):
            chunk = self.client.recv(1000)
            assert chunk, "the server closed the held request"
            head += chunk
        self.pid = int(re.findall(rb"\r\n\r\n[0-9a-f]+\r\n(\d+)\n", head)[0])

    def release(self) -> None:
        self.control.close()
        rest = b""
        while b"released" not in rest:
            chunk = self.client.recv(1000)
            if not chunk:
                break
            rest += chunk
        assert b"released" in rest
        self.client.close()
        self.listener.close()


def test_a_busy_process_leaves_new_connections_to_an_idle_one(
    servers: list[Supervised],
) -> None:
    # One worker each: a process holding a request is busy. It would take a new connection
    # only after waiting a whole second for an idle process to take it first.
    server = run(servers, "--processes", "2", "--workers", "1", "--busy-accept-delay", "1.0")
    server.wait_for(r"process p2 \(pid \d+\) serving")
    server.wait_for(r"process p1 \(pid \d+\) serving")
    hold = Hold(server.port)
    try:
        idle = (set(server.pids()) - {hold.pid}).pop()
        answers = [server.get("/pid") for _ in range(30)]
        # Each answered at once, by the idle process: none waited behind the held request.
        assert answers == [(200, f"{idle}\n")] * 30
    finally:
        hold.release()


class SteadyClient:
    """POSTs in a loop on a keep-alive connection, reconnecting when told to close (as any
    HTTP client does), never retrying a request. Stops when told, or after 40 s."""

    def __init__(self, port: int, warmed: threading.Barrier) -> None:
        self.port = port
        self.warmed = warmed
        self.stop_at: int | None = None  # answers
        self.statuses: dict[int, int] = {}
        self.pids: list[int] = []
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        deadline = time.monotonic() + 40
        sent = 0
        while time.monotonic() < deadline:
            if self.stop_at is not None and len(self.pids) >= self.stop_at:
                break
            try:
                client.request("POST", "/", body=b"x" * 256)
                response = client.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                return
            self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            if response.status == 200:
                self.pids.append(int(body))
            sent += 1
            if sent == 20:
                self.warmed.wait(20)
        client.close()

    def finish_after(self, answers: int) -> None:
        """Stop after this many more answers."""
        self.stop_at = len(self.pids) + answers


def test_sighup_replaces_every_process_without_refusing_a_request(
    servers: list[Supervised],
) -> None:
    server = run(servers, "--processes", "2", "--workers", "4", "--drain-timeout", "10")
    server.wait_for(r"process p2 \(pid \d+\) serving")
    server.wait_for(r"process p1 \(pid \d+\) serving")
    old = set(server.pids())
    warmed = threading.Barrier(5)
    clients = [SteadyClient(server.port, warmed) for _ in range(4)]
    warmed.wait(20)
    mark = server.mark()
    server.signal(signal.SIGHUP)
    server.wait_for(r"reloaded: p3, p4 serving|reloaded: p4, p3 serving", after=mark)
    for pid in old:
        server.wait_for(rf"\(pid {pid}\) exited with code 0 after draining", after=mark)
    new = set(server.pids())
    assert not new & old
    for client in clients:  # they go on a while on the new processes, then stop
        client.finish_after(20)
    for client in clients:
        client.thread.join(30)
    assert [c.failures for c in clients] == [[]] * len(clients)
    assert {s for c in clients for s in c.statuses} == {200}
    served_by = {pid for c in clients for pid in c.pids}
    assert old <= served_by
    assert new & served_by


def test_max_requests_recycles_a_process(servers: list[Supervised]) -> None:
    server = run(servers, "--processes", "1", "--max-requests", "20")
    first = int(server.wait_for(r"process p1 \(pid (\d+)\) serving")[1])
    seen: set[int] = set()
    deadline = time.monotonic() + 20
    while len(seen) < 2 and time.monotonic() < deadline:
        status, body = server.get("/pid")
        assert status == 200
        seen.add(int(body))
    assert first in seen
    assert len(seen) == 2, "the process was never replaced"
    server.wait_for(rf"process p1 \(pid {first}\) reached max_requests: replacing it")
    server.wait_for(rf"process p1 \(pid {first}\) replaced by process p2")
    server.wait_for(rf"process p1 \(pid {first}\) exited with code 0 after draining")


@pytest.mark.parametrize("preload", [True, False])
def test_preload_imports_the_application_once_before_forking(
    servers: list[Supervised], preload: bool
) -> None:
    server = run(servers, "--processes", "2", *(["--preload"] if preload else []))
    server.wait_for(r"process p2 \(pid \d+\) serving")
    server.wait_for(r"process p1 \(pid \d+\) serving")
    importers = {int(server.get("/imported")[1]) for _ in range(10)}
    if preload:
        assert importers == {server.process.pid}
    else:
        assert importers <= set(server.pids())
        assert server.process.pid not in importers


def test_an_application_that_does_not_load_stops_the_supervisor(
    servers: list[Supervised],
) -> None:
    server = Supervised("--processes", "2", app="tests.server.no_such_module:app")
    servers.append(server)
    assert server.wait() == 3
    assert server.count(r"cannot load the application") >= 1
    assert server.count(r"before it was ready: giving up") == 1


def test_sigterm_drains_every_process_and_says_drain_to_the_agent(
    servers: list[Supervised],
) -> None:
    server = Supervised("--processes", "2", "--workers", "2", "--agent-port", "0")
    servers.append(server)
    server.start()
    agent_port = int(server.wait_for(r"agent-check listener on 127\.0\.0\.1:(\d+)")[1])
    server.wait_for(r"process p2 \(pid \d+\) serving")
    server.wait_for(r"process p1 \(pid \d+\) serving")

    def agent() -> bytes:
        with socket.create_connection(("127.0.0.1", agent_port), timeout=5) as sock:
            return sock.recv(100)

    hold = Hold(server.port)
    assert agent() == b"ready up 75%\n"  # one of four workers busy
    server.signal(signal.SIGTERM)
    server.wait_for(r"shutting down: draining 2 processes")
    assert agent() == b"drain\n"
    assert server.admin("/readyz") == "draining\n"
    # New connections are soon refused (while a request still runs); until then, one that
    # got in is answered, never left in a queue that nobody reads to be reset.
    deadline = time.monotonic() + 5
    while True:
        assert time.monotonic() < deadline, "new connections were never refused"
        try:
            status, _ = server.get("/pid")
        except ConnectionRefusedError:
            break
        assert status == 200
    hold.release()  # the held request is answered in full
    assert server.wait() == 0
    assert server.count(r"shut down cleanly") == 1
