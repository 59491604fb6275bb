"""Open-loop HTTP load: requests arrive on a fixed schedule, whatever the server does.

A closed-loop generator (wrk) sends a request only when a connection is free: when the server
slows down, so do the arrivals, and overload never shows. Here request i is due at
`start + i / rate` and is sent then (or as soon after as the generator can: its lateness is
recorded), each on a NEW connection with `Connection: close`, as a flood of distinct users
would. No connection is reused, so a slow response never delays the next arrival.

Every latency is counted from the request's scheduled time, not from when it was sent, so the
generator's own lateness cannot hide the server's (no coordinated omission). For every request
the outcome is recorded: a complete response (its status, and for a 503 whether it carried
Retry-After), or a client time-out (split into "still connecting", i.e. SYNs dropped because
the server's accept backlog was full, and "waiting for the response"), a reset, a refusal, a
close before a complete response, another socket error, or "not sent" (the generator itself
ran out of descriptors or ports: not the server's fault, and reported apart).

How it keeps up: each process is one plain epoll loop over non-blocking sockets with the
request's bytes built once (no asyncio: its per-connection transports and futures cost several
times more CPU). Several processes share the load (request i goes to process i mod N, all
pinned to the same core), because one process may hold at most RLIMIT_NOFILE sockets and one
source address at most ~28k ephemeral ports, while a server that answers nothing leaves every
request of the last `timeout` seconds open: 4,800/s x 10 s = 48k. On 127.0.0.1 each request
connects from the next of SOURCES_PER_PROCESS loopback addresses of its process (process k uses
127.0.k+1.1 to 127.0.k+1.250): ports are never short, and a (source, port) pair is not reused
within a run, as it would be by one address at 4,800 new connections/s: a new SYN on the
4-tuple of a connection the server still half-remembers is answered with an RST, and that would
show as "refused" what real users, each on their own address, would not meet.

A client that times out closes with an RST (SO_LINGER 0), as an aborting browser may: it
frees the port at once instead of leaving it in TIME_WAIT. After a complete response the
client waits for the server to close first (it asked for `Connection: close`), so TIME_WAIT
lands on the server's side and the client's ports are free again at once.

Poll waits are whole milliseconds (epoll), so arrivals go out in bursts of ~rate/1000 at most
1 ms late; the report prints the lateness measured.

Run alone, it prints a summary:

    python bench/open_loop.py --port 8000 [--rate 4800] [--duration 10] [--timeout 10]
        [--processes 3] [--core 1]
"""

from __future__ import annotations

import argparse
import array
import contextlib
import errno
import json
import math
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
# The kernel's option, in case this Python does not name it: bind() picks no port, connect()
# picks one unique per destination.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
# Descriptors and ephemeral ports (32768-60999) one process may keep open, with a margin.
SOCKETS_PER_PROCESS = 16_000
SOURCES_PER_PROCESS = 250
START_DELAY_S = 1.0  # time for the processes to start before the first request is due
RECV_BYTES = 65536
_NO_ANSWER = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "reset",
    errno.ECONNABORTED: "reset",
}
_GENERATOR_SIDE = {errno.EMFILE, errno.ENFILE, errno.EADDRNOTAVAIL, errno.ENOBUFS, errno.ENOMEM}


class Outcome(IntEnum):
    """What became of one request."""

    PENDING = 0
    ANSWERED = 1  # a complete response: see its status
    TIMEOUT_CONNECTING = 2  # the connection was not established within the timeout
    TIMEOUT_WAITING = 3  # connected and sent, but no complete response within the timeout
    RESET = 4  # ECONNRESET or EPIPE
    REFUSED = 5  # ECONNREFUSED
    CLOSED = 6  # the server closed the connection before a complete response
    ERROR = 7  # any other socket error, or a response that is not HTTP
    NOT_SENT = 8  # the generator could not open a socket: not the server's doing


def request_bytes(host: str, port: int, path: str = "/") -> bytes:
    """The one request every connection sends, built once."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()


# ----------------------------------------------------------------------------- responses


@dataclass(frozen=True, slots=True)
class Head:
    """What the generator needs from a response head."""

    status: int
    retry_after: bool
    end: int | None  # where the response ends (head + Content-Length), if the head says
    chunked: bool


def parse_head(buffer: bytes | bytearray) -> Head | None:
    """The response head at the start of `buffer`; None until it is complete.

    Raises ValueError if the bytes are not an HTTP/1.x response.
    """
    head_end = buffer.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = bytes(buffer[:head_end]).lower()
    if not head.startswith(b"http/1."):
        raise ValueError(f"not an HTTP response: {head[:40]!r}")
    status = int(head[9:12])
    length: int | None = None
    marker = head.find(b"\r\ncontent-length:")
    if marker >= 0:
        value_end = head.find(b"\r\n", marker + 2)
        length = int(head[marker + 17 : value_end if value_end >= 0 else None])
    chunked = b"\r\ntransfer-encoding:" in head and b"chunked" in head
    end = None if length is None or chunked else head_end + 4 + length
    return Head(status, b"\r\nretry-after:" in head, end, chunked)


def is_complete(head: Head, buffer: bytes | bytearray) -> bool:
    """True once the whole response is in `buffer` (without Content-Length: only at EOF)."""
    if head.chunked:
        return buffer.endswith(b"0\r\n\r\n")
    return head.end is not None and len(buffer) >= head.end


# ----------------------------------------------------------------------------- one process


@dataclass(frozen=True)
class Plan:
    """The schedule of one generator process: its share of the requests, and where to send."""

    address: tuple[str, int]
    rate: float  # requests per second, all processes together
    duration: float
    timeout: float
    start_at: float  # time.monotonic() of request 0: the same clock in every process
    index: int = 0  # this process sends requests index, index + of, index + 2 * of, ...
    of: int = 1
    source_block: int | None = None  # connect from 127.0.BLOCK.1-250 in turn (None: any)

    @property
    def total(self) -> int:
        """Requests that all processes together send."""
        return math.floor(self.rate * self.duration)

    @property
    def count(self) -> int:
        """Requests that this process sends."""
        return len(range(self.index, self.total, self.of))

    def scheduled(self, position: int) -> float:
        """When this process's request number `position` is due (monotonic clock)."""
        return self.start_at + (self.index + position * self.of) / self.rate


class _Request:
    """One request in flight: its socket, its deadline, what has arrived so far."""

    __slots__ = ("answered", "buffer", "connected", "deadline", "head", "position", "sock")

    def __init__(self, position: int, sock: socket.socket, deadline: float) -> None:
        self.position = position
        self.sock = sock
        self.deadline = deadline
        self.buffer = bytearray()
        self.head: Head | None = None
        self.connected = False
        self.answered = False  # recorded: from here on only the server's close is awaited


@dataclass
class Records:
    """Per request of one process (by position): every time is counted from its schedule."""

    lateness: array.array[float]  # sent (connect() called) minus scheduled
    connected: array.array[float]  # connection established, or NaN
    latency: array.array[float]  # response complete (or failure seen), or NaN
    outcome: array.array[int]
    status: array.array[int]  # 0 unless answered
    retry_after: array.array[int]  # 1 if the response carried Retry-After

    @classmethod
    def empty(cls, count: int) -> Records:
        """Records for `count` requests, none sent yet."""
        nan = [math.nan] * count
        zeros = [0] * count
        return cls(
            array.array("d", [0.0] * count),
            array.array("d", nan),
            array.array("d", nan),
            array.array("b", zeros),
            array.array("h", zeros),
            array.array("b", zeros),
        )


class Generator:
    """One process's share of the load: an epoll loop over non-blocking sockets."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.records = Records.empty(plan.count)
        self.request = request_bytes(*plan.address)
        self.sources = source_addresses(plan.source_block)
        self.epoll = select.epoll()
        self.open: dict[int, _Request] = {}
        # Deadlines grow with the schedule: the oldest request is always first in line.
        self.by_deadline: deque[_Request] = deque()
        self.sent_first: float | None = None
        self.sent_last: float | None = None

    def run(self) -> Records:
        """Send every request on time, wait for every answer or time-out, close everything."""
        plan = self.plan
        next_position = 0
        while next_position < plan.count or self.open:
            now = time.monotonic()
            while next_position < plan.count and plan.scheduled(next_position) <= now:
                self._launch(next_position, now)
                next_position += 1
            self._expire(now)
            self._poll(self._wait(next_position, now))
        self.epoll.close()
        return self.records

    def _wait(self, next_position: int, now: float) -> float:
        """Seconds until the next arrival or deadline: how long the poll may sleep."""
        wakes = [self.by_deadline[0].deadline] if self.by_deadline else []
        if next_position < self.plan.count:
            wakes.append(self.plan.scheduled(next_position))
        return max(min(wakes, default=now) - now, 0.0)  # negative would mean forever

    def _poll(self, wait: float) -> None:
        for fd, _events in self.epoll.poll(wait):
            request = self.open.get(fd)
            if request is None:
                continue
            if request.connected:
                self._on_readable(request)
            else:
                self._on_connected(request)

    # ------------------------------------------------------------------------- a request

    def _launch(self, position: int, now: float) -> None:
        records = self.records
        records.lateness[position] = now - self.plan.scheduled(position)
        self.sent_first = now if self.sent_first is None else self.sent_first
        self.sent_last = now
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
        except OSError:
            records.outcome[position] = Outcome.NOT_SENT
            return
        try:
            if self.sources:
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((self.sources[position % len(self.sources)], 0))
            code = sock.connect_ex(self.plan.address)
        except OSError as error:
            code = error.errno or errno.EIO
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            outcome = Outcome.NOT_SENT if code in _GENERATOR_SIDE else _failure(code, False)
            self._record_failure(position, outcome, now)
            return
        request = _Request(position, sock, self.plan.scheduled(position) + self.plan.timeout)
        self.open[sock.fileno()] = request
        self.by_deadline.append(request)
        self.epoll.register(sock.fileno(), select.EPOLLOUT)

    def _on_connected(self, request: _Request) -> None:
        now = time.monotonic()
        try:
            request.sock.send(self.request)  # tens of bytes: always fits the send buffer
            self.epoll.modify(request.sock.fileno(), select.EPOLLIN)
        except OSError as error:
            self._fail(request, _failure(error.errno, False), now)
            return
        request.connected = True
        self.records.connected[request.position] = now - self._scheduled(request)

    def _on_readable(self, request: _Request) -> None:
        try:
            data = request.sock.recv(RECV_BYTES)
        except OSError as error:
            if request.answered:
                self._close(request)  # the answer is in; how the server closed is its business
            else:
                self._fail(request, _failure(error.errno, True), time.monotonic())
            return
        if not data:
            self._on_eof(request)
        elif not request.answered:
            request.buffer += data
            self._parse(request)

    def _parse(self, request: _Request) -> None:
        try:
            if request.head is None:
                request.head = parse_head(request.buffer)
        except ValueError:
            self._fail(request, Outcome.ERROR, time.monotonic())
            return
        if request.head is not None and is_complete(request.head, request.buffer):
            self._answer(request, request.head)
            self._close_if_eof(request)

    def _on_eof(self, request: _Request) -> None:
        if not request.answered:
            head = request.head
            if head is not None and head.end is None and not head.chunked:
                self._answer(request, head)  # no Content-Length: the close ends the body
            else:
                self._fail(request, Outcome.CLOSED, time.monotonic())
                return
        self._close(request)

    def _close_if_eof(self, request: _Request) -> None:
        # The server closes right after its response: its FIN is often here already, and
        # reading it now saves a wake-up per request.
        try:
            more = request.sock.recv(RECV_BYTES)
        except BlockingIOError:
            return
        except OSError:
            more = b""
        if not more:
            self._close(request)

    def _answer(self, request: _Request, head: Head) -> None:
        position = request.position
        self.records.latency[position] = time.monotonic() - self._scheduled(request)
        self.records.outcome[position] = Outcome.ANSWERED
        self.records.status[position] = head.status
        self.records.retry_after[position] = head.retry_after
        request.answered = True
        request.buffer = bytearray()

    def _expire(self, now: float) -> None:
        queue = self.by_deadline
        while queue and (queue[0].sock.fileno() < 0 or queue[0].deadline <= now):
            request = queue.popleft()
            if request.sock.fileno() < 0:
                continue  # closed already
            if request.answered:
                self._close(request)  # answered, but the server kept the connection open
            else:
                timeout = (
                    Outcome.TIMEOUT_WAITING if request.connected else Outcome.TIMEOUT_CONNECTING
                )
                self._fail(request, timeout, now)

    def _fail(self, request: _Request, outcome: Outcome, now: float) -> None:
        self._record_failure(request.position, outcome, now)
        # An RST, not a FIN: no TIME_WAIT holds the port, the server learns at once.
        with contextlib.suppress(OSError):
            request.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
        self._close(request)

    def _record_failure(self, position: int, outcome: Outcome, now: float) -> None:
        self.records.outcome[position] = outcome
        self.records.latency[position] = now - self.plan.scheduled(position)

    def _close(self, request: _Request) -> None:
        fd = request.sock.fileno()
        if fd >= 0:
            del self.open[fd]
            request.sock.close()  # closing also takes it out of the epoll set

    def _scheduled(self, request: _Request) -> float:
        return self.plan.scheduled(request.position)


def _failure(code: int | None, connected: bool) -> Outcome:
    """The outcome that a socket error stands for."""
    kind = _NO_ANSWER.get(code or 0)
    if kind == "refused":
        return Outcome.REFUSED
    if kind == "reset":
        return Outcome.RESET
    if code == errno.ETIMEDOUT:
        return Outcome.TIMEOUT_WAITING if connected else Outcome.TIMEOUT_CONNECTING
    return Outcome.ERROR


# ----------------------------------------------------------------------------- results


@dataclass
class ProcessReport:
    """What one generator process did, as it writes it for the harness to read."""

    index: int
    count: int
    sent_first: float | None  # monotonic times
    sent_last: float | None
    cpu_s: float
    records: Records

    def to_json(self) -> dict[str, Any]:
        """JSON-ready; times rounded to the microsecond (NaN written as null)."""

        def times(values: array.array[float]) -> list[float | None]:
            return [None if math.isnan(v) else round(v, 6) for v in values]

        r = self.records
        return {
            "index": self.index,
            "count": self.count,
            "sent_first": self.sent_first,
            "sent_last": self.sent_last,
            "cpu_s": self.cpu_s,
            "lateness": times(r.lateness),
            "connected": times(r.connected),
            "latency": times(r.latency),
            "outcome": r.outcome.tolist(),
            "status": r.status.tolist(),
            "retry_after": r.retry_after.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessReport:
        """The inverse of to_json."""

        def times(key: str) -> array.array[float]:
            return array.array("d", (math.nan if v is None else v for v in data[key]))

        records = Records(
            times("lateness"),
            times("connected"),
            times("latency"),
            array.array("b", data["outcome"]),
            array.array("h", data["status"]),
            array.array("b", data["retry_after"]),
        )
        return cls(
            data["index"],
            data["count"],
            data["sent_first"],
            data["sent_last"],
            data["cpu_s"],
            records,
        )


def raise_fd_limit() -> int:
    """Raise this process's soft limit on open files to the hard one; return it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run_process(plan: Plan) -> ProcessReport:
    """Wait for the start time, then run this process's share of the schedule."""
    generator = Generator(plan)
    delay = plan.start_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    cpu_before = time.process_time()
    records = generator.run()
    cpu = time.process_time() - cpu_before
    return ProcessReport(
        plan.index, plan.count, generator.sent_first, generator.sent_last, cpu, records
    )


# ----------------------------------------------------------------------------- many processes


@dataclass
class Load:
    """All the requests of one run, in schedule order, and how the generator kept up."""

    rate: float
    duration: float
    timeout: float
    start_at: float
    processes: int
    sent_first: float | None
    sent_last: float | None
    cpu_s: float
    records: Records
    generator_errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Requests scheduled."""
        return len(self.records.outcome)

    def scheduled(self, index: int) -> float:
        """When request `index` was due (monotonic clock)."""
        return self.start_at + index / self.rate


def processes_needed(rate: float, timeout: float) -> int:
    """Processes enough that none holds more than SOCKETS_PER_PROCESS sockets at once."""
    return max(1, math.ceil(rate * timeout / SOCKETS_PER_PROCESS))


def source_block(host: str, index: int) -> int | None:
    """The block of loopback addresses of process `index`, if the target is on loopback."""
    return index + 1 if host.startswith("127.") and index < 254 else None


def source_addresses(block: int | None) -> tuple[str, ...]:
    """The loopback addresses 127.0.BLOCK.1 to .250 (none for None)."""
    if block is None:
        return ()
    return tuple(f"127.0.{block}.{n}" for n in range(1, SOURCES_PER_PROCESS + 1))


def generator_argv(plan: Plan, out: Path, core: int | None) -> list[str]:
    """The command that runs one generator process (pinned to `core` if given)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    argv += ["--host", plan.address[0], "--port", str(plan.address[1])]
    argv += ["--rate", repr(plan.rate), "--duration", repr(plan.duration)]
    argv += ["--timeout", repr(plan.timeout), "--start-at", repr(plan.start_at)]
    argv += ["--index", str(plan.index), "--of", str(plan.of), "--out", str(out)]
    if plan.source_block is not None:
        argv += ["--source-block", str(plan.source_block)]
    if core is not None and shutil.which("taskset") is not None:
        argv = ["taskset", "-c", str(core), *argv]
    return argv


class LoadRun:
    """Generator processes started for one load; `wait` collects and merges their records."""

    def __init__(self, plans: Sequence[Plan], core: int | None) -> None:
        self.plans = list(plans)
        self.start_at = plans[0].start_at
        self.end_at = self.start_at + plans[0].duration  # when the last request is due
        self._tmp = tempfile.TemporaryDirectory(prefix="open_loop-")
        self._outs = [Path(self._tmp.name) / f"{plan.index}.json" for plan in self.plans]
        self._children = [
            subprocess.Popen(generator_argv(plan, out, core), stdin=subprocess.DEVNULL)
            for plan, out in zip(self.plans, self._outs, strict=True)
        ]

    def wait(self) -> Load:
        """Wait for every process (each ends by itself; killed if it has not well after)."""
        deadline = self.end_at + self.plans[0].timeout + 30
        try:
            errors = [_wait_child(child, deadline) for child in self._children]
            reports = [_read_report(out) for out in self._outs]
        finally:
            self._tmp.cleanup()
        return _merge(self.plans, reports, [e for e in errors if e])


def start_load(
    host: str,
    port: int,
    rate: float,
    duration: float,
    timeout: float,
    *,
    processes: int | None = None,
    core: int | None = None,
) -> LoadRun:
    """Start the generator processes (pinned to `core`); request 0 is due START_DELAY_S later.

    At least as many processes as the sockets need (see processes_needed), all sharing one
    schedule; `wait()` returns at most `timeout` + a moment after the last request is due.
    """
    count = max(processes or 0, processes_needed(rate, timeout))
    start_at = time.monotonic() + START_DELAY_S
    plans = [
        Plan((host, port), rate, duration, timeout, start_at, k, count, source_block(host, k))
        for k in range(count)
    ]
    return LoadRun(plans, core)


def run_load(
    host: str,
    port: int,
    rate: float,
    duration: float,
    timeout: float,
    *,
    processes: int | None = None,
    core: int | None = None,
) -> Load:
    """Run a whole open-loop load and return every request's record, in schedule order.

    A process that fails leaves its requests NOT_SENT and says why in the result.
    """
    run = start_load(host, port, rate, duration, timeout, processes=processes, core=core)
    return run.wait()


def _wait_child(child: subprocess.Popen[bytes], deadline: float) -> str:
    """Wait for a generator process (killed at `deadline`, monotonic); '' if it succeeded."""
    try:
        code = child.wait(max(deadline - time.monotonic(), 0.0))
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
        return f"generator process {child.pid} killed: still running well past its time-outs"
    return f"generator process {child.pid} exited with code {code}" if code else ""


def _read_report(out: Path) -> ProcessReport | None:
    try:
        return ProcessReport.from_json(json.loads(out.read_text()))
    except (OSError, ValueError, KeyError):
        return None


def _merge(
    plans: Sequence[Plan], reports: Sequence[ProcessReport | None], errors: list[str]
) -> Load:
    plan = plans[0]
    records = Records.empty(plan.total)
    for process_plan, report in zip(plans, reports, strict=True):
        if report is None:
            for index in range(process_plan.index, plan.total, process_plan.of):
                records.outcome[index] = Outcome.NOT_SENT
            continue
        _interleave(records, report.records, process_plan.index, process_plan.of)
    firsts = [r.sent_first for r in reports if r is not None and r.sent_first is not None]
    lasts = [r.sent_last for r in reports if r is not None and r.sent_last is not None]
    return Load(
        rate=plan.rate,
        duration=plan.duration,
        timeout=plan.timeout,
        start_at=plan.start_at,
        processes=len(plans),
        sent_first=min(firsts, default=None),
        sent_last=max(lasts, default=None),
        cpu_s=sum(r.cpu_s for r in reports if r is not None),
        records=records,
        generator_errors=errors,
    )


def _interleave(into: Records, part: Records, first: int, step: int) -> None:
    """Put one process's records (positions 0, 1, ...) at indices first, first + step, ..."""
    for name in ("lateness", "connected", "latency", "outcome", "status", "retry_after"):
        target: array.array[Any] = getattr(into, name)
        target[first::step] = getattr(part, name)


# ----------------------------------------------------------------------------- command line


def summary(load: Load) -> str:
    """A few lines: offered and achieved rates, lateness, outcomes."""
    r = load.records
    sent = sum(1 for o in r.outcome if o != Outcome.NOT_SENT)
    span = (load.sent_last or 0.0) - load.start_at
    achieved = sent / max(span, 1.0 / load.rate)
    late = sorted(r.lateness)
    p99 = late[min(len(late) - 1, int(len(late) * 0.99))] if late else math.nan
    counts: dict[str, int] = {}
    for outcome, status in zip(r.outcome, r.status, strict=True):
        key = str(status) if outcome == Outcome.ANSWERED else Outcome(outcome).name.lower()
        counts[key] = counts.get(key, 0) + 1
    return (
        f"offered {load.rate:,.0f}/s for {load.duration:g} s with {load.processes} processes: "
        f"sent {sent:,}/{load.total:,}, achieved {achieved:,.0f}/s, lateness p99 "
        f"{p99 * 1000:.2f} ms max {max(late, default=math.nan) * 1000:.2f} ms, "
        f"generator CPU {load.cpu_s:.2f} s\noutcomes: {counts}"
        + "".join(f"\n{error}" for error in load.generator_errors)
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: the harness's (--worker, one process) or a person's (a summary)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=4800.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of arrivals")
    parser.add_argument("--timeout", type=float, default=10.0, help="client time-out, seconds")
    parser.add_argument("--processes", type=int, help="default: enough for the sockets")
    parser.add_argument("--core", type=int, help="pin the generator processes to this core")
    worker = parser.add_argument_group("one process (used by run_load)")
    worker.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    worker.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    worker.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    worker.add_argument("--of", type=int, default=1, help=argparse.SUPPRESS)
    worker.add_argument("--source-block", type=int, help=argparse.SUPPRESS)
    worker.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run one generator process (--worker), or a whole load and print its summary."""
    args = parse_args(argv)
    raise_fd_limit()
    if not args.worker:
        load = run_load(
            args.host,
            args.port,
            args.rate,
            args.duration,
            args.timeout,
            processes=args.processes,
            core=args.core,
        )
        print(summary(load))
        return 0
    address = (socket.gethostbyname(args.host), args.port)
    plan = Plan(
        address,
        args.rate,
        args.duration,
        args.timeout,
        args.start_at,
        args.index,
        args.of,
        args.source_block,
    )
    report = run_process(plan)
    args.out.write_text(json.dumps(report.to_json()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
