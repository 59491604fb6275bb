"""Processes for the deployment tests: poolserver instances, nginx, HAProxy and steady load.

Everything listens on 127.0.0.1 only, on ports chosen at run time, and writes only under the
test's temporary directory. Every wait is bounded by a deadline; every process is killed on
the way out if it is still running.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from ..waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
DEPLOY_DOC = REPO / "docs" / "deploy.md"
TEMPLATES = REPO / "docs" / "deploy"
APP = "tests.deploy.app:app"

START_TIMEOUT = 20.0  # bound on a process reporting that it listens; never reached when fine
STOP_TIMEOUT = 20.0  # bound on a process exiting after it was asked to

_PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")


def render(template: str, **values: object) -> str:
    """The text of `docs/deploy/<template>` with every `{{ name }}` replaced by its value.

    Raises:
        KeyError: the template names a value that was not given.
        ValueError: a value was given that the template does not name.
    """
    text = (TEMPLATES / template).read_text()
    names = set(_PLACEHOLDER.findall(text))
    unused = set(values) - names
    if unused:
        raise ValueError(f"{template} has no placeholder for {sorted(unused)}")
    return _PLACEHOLDER.sub(lambda found: str(values[found.group(1)]), text)


def doc_blocks() -> list[str]:
    """The fenced code blocks of docs/deploy.md, each without its fences."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```$", DEPLOY_DOC.read_text(), re.M | re.S)
    return [str(block) for block in blocks]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, below the kernel's ephemeral range.

    A port the kernel hands out to outgoing connections could be taken, between a server's
    exit and its successor's start, as the local port of some connection (nginx's to the other
    upstream, say), and the successor could not bind it; a port below the range cannot.
    """
    low = _ephemeral_low()
    first = 10_000 if low > 12_000 else 1024
    for _ in range(100):
        port = random.randrange(first, low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))  # no SO_REUSEADDR: fails if anything holds it
            except OSError:
                continue
            return port
    raise AssertionError("no free port found below the ephemeral range")


def accepting(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port` now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def stop_process(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> int:
    """Signal `process` (if it still runs) and wait for it, killing it past STOP_TIMEOUT."""
    if process.poll() is None:
        process.send_signal(signum)
    try:
        return process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(STOP_TIMEOUT)


@dataclass(frozen=True)
class Ports:
    """The three ports of an instance."""

    http: int
    admin: int
    agent: int

    @staticmethod
    def free() -> Ports:
        """Three distinct free ports."""
        chosen: set[int] = set()
        while len(chosen) < 3:
            chosen.add(free_port())
        http_port, admin, agent = chosen
        return Ports(http_port, admin, agent)


class StartFailed(AssertionError):
    """A process exited (or stayed silent) instead of listening."""


class Instance:
    """A `python -m poolserver tests.deploy.app:app` child process, named for the test.

    It listens on the three ports given (HTTP, admin, agent-check) and answers requests as
    `tests/deploy/app.py` does, under its `name`. Start instances through a `Fleet`, which
    chooses the ports and cleans up.
    """

    def __init__(self, name: str, ports: Ports, *options: str, delay_ms: float = 0) -> None:
        self.name = name
        self.ports = ports
        self.options = options
        self.delay_ms = delay_ms
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        env["DEPLOY_APP_NAME"] = name
        env["DEPLOY_APP_DELAY_MS"] = str(delay_ms)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "poolserver",
                APP,
                "--port",
                str(ports.http),
                "--admin-port",
                str(ports.admin),
                "--agent-port",
                str(ports.agent),
                *options,
            ],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read_log, name=f"log-{name}")
        self._reader.start()
        if not self._ready.wait(START_TIMEOUT) or self.process.poll() is not None:
            self.kill()
            raise StartFailed(f"{name} did not start listening:\n{self.log()}")

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if f"listening on http://127.0.0.1:{self.ports.http} " in line:
                self._ready.set()  # logged last, once every listener is open
        self._ready.set()  # the process ended: whoever waits finds out

    def terminate(self) -> None:
        """Ask for a graceful drain (SIGTERM)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        """Wait (bounded) for the process to exit; its exit code."""
        code = self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        return code

    def kill(self) -> None:
        """Kill the process if it still runs, and collect it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)

    def get(self, path: str, *, admin: bool = False) -> tuple[int, bytes]:
        """GET `path` from the instance directly (or from its admin listener)."""
        port = self.ports.admin if admin else self.ports.http
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            client.request("GET", path)
            response = client.getresponse()
            return response.status, response.read()
        finally:
            client.close()

    def metric(self, name: str, labels: str = "") -> float:
        """The sum of the samples of metric `name` on /metrics (those with `labels`, as
        written between the braces, when given)."""
        status, body = self.get("/metrics", admin=True)
        assert status == 200
        prefix = f"{name}{{{labels}}} " if labels else None
        total = 0.0
        for line in body.decode().splitlines():
            if (prefix and line.startswith(prefix)) or (
                not prefix and line.startswith((name + " ", name + "{"))
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def log(self) -> str:
        """What the process logged so far."""
        return "".join(self.lines)


class Fleet:
    """The poolserver instances of one test; `close` kills whatever still runs."""

    def __init__(self, *options: str) -> None:
        self.options = options
        self.started: list[Instance] = []

    def start(self, name: str, *options: str, delay_ms: float = 0) -> Instance:
        """A new instance on free ports, with the fleet's options and then `options`."""
        for _ in range(3):
            try:
                instance = Instance(name, Ports.free(), *self.options, *options, delay_ms=delay_ms)
            except StartFailed as exc:
                # Another process may have taken a port since it was chosen: choose again.
                if "Address already in use" not in str(exc):
                    raise
                continue
            self.started.append(instance)
            return instance
        raise AssertionError(f"{name}: no free ports to start on")

    def replace(self, old: Instance, name: str, *, delay_ms: float | None = None) -> Instance:
        """A rolling restart of `old`: SIGTERM, wait for its clean exit (code 0 and a clean
        drain), then start `name` on the same ports with the same options (and the same
        application delay, unless `delay_ms` is given)."""
        old.terminate()
        assert old.wait() == 0, old.log()
        assert "shut down cleanly" in old.log(), old.log()
        delay = old.delay_ms if delay_ms is None else delay_ms
        instance = Instance(name, old.ports, *old.options, delay_ms=delay)
        self.started.append(instance)
        return instance

    def close(self) -> None:
        """Kill every instance still running."""
        for instance in self.started:
            instance.kill()


class Proxy:
    """A reverse proxy child process (nginx or HAProxy), its output in a file."""

    def __init__(self, name: str, command: list[str], port: int, directory: Path) -> None:
        self.name = name
        self.port = port
        self.output_path = directory / f"{name}.out"
        with self.output_path.open("w") as output:
            self.process: subprocess.Popen[str] = subprocess.Popen(
                command,
                cwd=directory,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                text=True,
            )
        try:
            wait_for(
                f"{name} to accept connections",
                lambda: self.process.poll() is not None or accepting(port),
                START_TIMEOUT,
            )
        except BaseException:
            self.stop()
            raise
        if self.process.poll() is not None:
            raise AssertionError(f"{name} exited at start: {self.output()}")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def output(self) -> str:
        """What the proxy logged."""
        return self.output_path.read_text(errors="replace")

    def trouble(self) -> str:
        """The last lines of the proxy's output that do not log a 200: its errors, and the
        requests that failed or were retried."""
        # An HAProxy log line ends "<status> <bytes> - - <termination flags> ...": a 200 whose
        # flags are not "----" broke off (the client or the server closed mid-way).
        lines = [
            line
            for line in self.output().splitlines()
            if " 200 " not in line or " ---- " not in line
        ]
        return "\n".join(lines[-50:])

    def stop(self) -> None:
        """Stop the proxy (SIGTERM, then SIGKILL past STOP_TIMEOUT)."""
        stop_process(self.process)


def start_nginx(nginx: str, directory: Path, a: Instance, b: Instance) -> Proxy:
    """nginx in the foreground in front of `a` and `b`, writing only under `directory`.

    docs/deploy/nginx.conf (the doc's configuration) is rendered and included in the `http`
    block of a minimal main configuration that keeps pid, logs and temporary files here.
    """
    port = free_port()
    conf = render("nginx.conf", listen_port=port, a_port=a.ports.http, b_port=b.ports.http)
    (directory / "poolserver.conf").write_text(conf)
    temp = directory / "temp"
    temp.mkdir(exist_ok=True)
    # As root, nginx's workers would switch to an unprivileged user that cannot use `directory`.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = (
        f"{user}worker_processes 1;\n"
        f"pid {directory}/nginx.pid;\n"
        "error_log stderr notice;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"    access_log {directory}/access.log;\n"
        f"    client_body_temp_path {temp}/client_body;\n"
        f"    proxy_temp_path {temp}/proxy;\n"
        f"    fastcgi_temp_path {temp}/fastcgi;\n"
        f"    uwsgi_temp_path {temp}/uwsgi;\n"
        f"    scgi_temp_path {temp}/scgi;\n"
        f"    include {directory}/poolserver.conf;\n"
        "}\n"
    )
    (directory / "nginx-main.conf").write_text(main)
    # -e: the error log before the configuration is read, which would else be a system path.
    command = [nginx, "-p", f"{directory}/", "-c", "nginx-main.conf", "-e", "stderr"]
    return Proxy("nginx", [*command, "-g", "daemon off;"], port, directory)


class HAProxy(Proxy):
    """HAProxy in the foreground (-db) in front of `a` and `b`, on docs/deploy/haproxy.cfg,
    with its stats socket and its log under `directory`."""

    def __init__(self, haproxy: str, directory: Path, a: Instance, b: Instance) -> None:
        self.stats_socket = directory / "haproxy.sock"
        port = free_port()
        conf = render(
            "haproxy.cfg",
            stats_socket=self.stats_socket,
            listen_port=port,
            a_port=a.ports.http,
            a_admin_port=a.ports.admin,
            a_agent_port=a.ports.agent,
            b_port=b.ports.http,
            b_admin_port=b.ports.admin,
            b_agent_port=b.ports.agent,
        )
        (directory / "haproxy.cfg").write_text(conf)
        # The tests' only addition to the doc's configuration: a log on standard error.
        (directory / "log.cfg").write_text("global\n    log stderr format raw local0 info\n")
        command = [haproxy, "-db", "-f", "log.cfg", "-f", "haproxy.cfg"]
        super().__init__("haproxy", command, port, directory)
        # Its frontend may accept before its stats socket does (seen on a busy machine).
        try:
            wait_for("HAProxy's stats socket", self._stats_answer, START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def _stats_answer(self) -> bool:
        try:
            self.command("show info")
        except OSError:
            return False
        return True

    def command(self, line: str) -> str:
        """Send one command to the stats socket; its whole answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(line.encode() + b"\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def servers(self) -> dict[str, dict[str, str]]:
        """`show stat` for the servers of the backend: name ("a", "b") to {column: value}."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "poolserver" and row.get("svname") in ("a", "b"):
                rows[row["svname"]] = row
        return rows

    def weights(self) -> tuple[int, int]:
        """The effective weights of servers a and b now."""
        rows = self.servers()
        return int(rows["a"]["weight"]), int(rows["b"]["weight"])

    def wait_all_up(self, timeout: float = 10.0) -> None:
        """Wait until both servers are UP, their health check and agent passed."""

        def up() -> bool:
            return all(
                row["status"] == "UP"
                and row["check_status"] == "L7OK"
                and row["agent_status"] in ("L7OK", "CHECKED")
                for row in self.servers().values()
            )

        wait_for("both servers to be UP", up, timeout)


def get_json(port: int, path: str) -> dict[str, Any]:
    """GET `path` on 127.0.0.1:`port` (a proxy); the JSON answer of tests/deploy/app.py."""
    client = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        client.request("GET", path)
        response = client.getresponse()
        body = response.read()
    finally:
        client.close()
    assert response.status == 200, (response.status, body)
    answer: dict[str, Any] = json.loads(body)
    return answer


@dataclass
class Outcome:
    """One request through the proxy: when it ended, its status and who answered."""

    ended: float
    status: int
    name: str


@dataclass
class SteadyLoad:
    """Client threads that send requests through a proxy, one after the other, until stopped.

    Each keeps one keep-alive connection to the proxy and never retries: any exception or
    non-200 answer is recorded as a failure. Bounded in requests and in time.
    """

    port: int
    clients: int = 4
    path: str = "/"
    post_every: int = 3  # every third request is a POST with a body (non-idempotent)
    max_requests: int = 20_000  # per client
    max_seconds: float = 45.0
    outcomes: list[Outcome] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._threads = [
            threading.Thread(target=self._run, name=f"load-{i}") for i in range(self.clients)
        ]

    def __enter__(self) -> SteadyLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop every client and wait for them (bounded)."""
        self._stop.set()
        self.finish(STOP_TIMEOUT)

    def finish(self, timeout: float) -> None:
        """Wait for every client to reach its bound (`max_requests`, `max_seconds`)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self._threads), "a load client did not stop"

    def _run(self) -> None:
        client = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        deadline = time.monotonic() + self.max_seconds
        try:
            for number in range(self.max_requests):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                self._one(client, post=self.post_every > 0 and number % self.post_every == 0)
        finally:
            client.close()

    def _one(self, client: http.client.HTTPConnection, *, post: bool) -> None:
        try:
            if post:
                client.request("POST", self.path, body=b"x" * 1000)
            else:
                client.request("GET", self.path)
            response = client.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._record_failure(f"{'POST' if post else 'GET'}: {exc!r}")
            client.close()  # the next request opens a new connection
            return
        if response.status != 200:
            self._record_failure(f"status {response.status}: {body[:200]!r}")
            return
        name = str(json.loads(body)["name"])
        with self._changed:
            self.outcomes.append(Outcome(time.monotonic(), response.status, name))
            self._changed.notify_all()

    def _record_failure(self, text: str) -> None:
        with self._changed:
            self.failures.append(f"{time.monotonic():.3f} {text}")
            self._changed.notify_all()

    def count(self) -> int:
        """Requests answered 200 so far."""
        with self._changed:
            return len(self.outcomes)

    def wait_served_by(self, name: str, timeout: float, *, after: int = 0) -> None:
        """Wait until at least one request after the first `after` was answered by `name`."""

        looked = after  # outcomes before this one were looked at already

        def served() -> bool:
            nonlocal looked
            found = any(o.name == name for o in self.outcomes[looked:])
            looked = len(self.outcomes)
            return found

        with self._changed:
            if not self._changed.wait_for(served, timeout):
                raise AssertionError(
                    f"no answer from {name} within {timeout} s; failures: {self.failures[:5]}"
                )

    def split(self, start: int = 0, end: int | None = None) -> dict[str, int]:
        """How many of the outcomes in [start, end) each instance answered."""
        with self._changed:
            counts: dict[str, int] = {}
            for outcome in self.outcomes[start:end]:
                counts[outcome.name] = counts.get(outcome.name, 0) + 1
            return counts

    def next_split(self, requests: int, timeout: float = 30.0) -> dict[str, int]:
        """Let `requests` more requests be answered (bounded); how many each instance took."""
        start = self.count()
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.outcomes) >= start + requests, timeout):
                raise AssertionError(f"fewer than {requests} answers in {timeout} s")
        return self.split(start, start + requests)

    def longest_gap(self) -> float:
        """The longest time between two consecutive answers (seconds)."""
        with self._changed:
            ends = sorted(o.ended for o in self.outcomes)
        return max((b - a for a, b in itertools.pairwise(ends)), default=0.0)


class HeldRequest:
    """One GET sent straight to an instance from a thread of its own, to keep it busy."""

    def __init__(self, port: int, path: str) -> None:
        self.status = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(port, path), name="held")
        self._thread.start()

    def _run(self, port: int, path: str) -> None:
        client = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            client.request("GET", path)
            response = client.getresponse()
            response.read()
            self.status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.error = exc
        finally:
            client.close()

    def result(self, timeout: float = STOP_TIMEOUT) -> int:
        """The response's status, once it came (bounded)."""
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the held request never ended"
        assert self.error is None, repr(self.error)
        return self.status


def idle_closing_pair(fleet: Fleet) -> tuple[Instance, Instance]:
    """A, which closes a connection idle for half a millisecond (under steady load, often just
    as the proxy reuses it: the race of a drain's idle close, made frequent), and B, which
    keeps idle connections as usual, as the other instance does while one drains."""
    return fleet.start("a", "--keepalive-timeout", "0.0005"), fleet.start("b")


def load_across_idle_closes(proxy: Proxy) -> str:
    """3,000 requests through `proxy` (4 keep-alive clients, a third POSTs); check that every
    one was answered 200. Returns the proxy's output."""
    with SteadyLoad(proxy.port, max_requests=750) as load:
        load.finish(60)
    assert load.failures == [], f"{load.failures}\n{proxy.trouble()}"
    assert len(load.outcomes) == 3000
    return proxy.output()


def rolling_restart(
    fleet: Fleet,
    a: Instance,
    b: Instance,
    proxy: Proxy,
    settle: Callable[[], None] = lambda: None,
) -> SteadyLoad:
    """Under a steady load through `proxy`, replace `a` (named a1) by a2, then
    `b` (b1) by b2, one after the other, and check that no request was lost: every request
    answered, requests flowing while each instance drained, both new instances taking their
    share once `settle` has returned (the proxy counts both as up). Returns the (stopped)
    load."""
    with SteadyLoad(proxy.port) as load:
        load.wait_served_by("a1", 10)
        load.wait_served_by("b1", 10)
        while_draining = []
        for old, name in ((a, "a2"), (b, "b2")):
            before = load.count()
            fleet.replace(old, name)  # SIGTERM, a clean drain and exit 0, then a new process
            while_draining.append(load.count() - before)
            load.wait_served_by(name, 10, after=before)
        # Both new instances take their share again.
        settle()
        after = load.next_split(200)
        load.stop()
    assert load.failures == [], f"{load.failures}\n{proxy.trouble()}"
    assert set(load.split()) == {"a1", "b1", "a2", "b2"}
    assert after.get("a2", 0) >= 50, after
    assert after.get("b2", 0) >= 50, after
    # Requests kept flowing while each instance drained, exited and came back.
    assert all(count > 0 for count in while_draining), while_draining
    assert load.longest_gap() < 2.0
    return load
