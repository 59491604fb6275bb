"""Where the time of one keep-alive request goes, measured in one thread.

The HTTP benchmark measures the whole server, and its rates move by a few percent from run to
run: too much to see a change of a microsecond on the request path. This program takes the
threads away. One thread plays client and worker in turn over a real loopback connection: the
client sends a request, `Connection.run` (what a worker runs) reads it, parses it, calls the
application and writes the answer, and the client reads it. The same loop is then timed with
parts of the server's work taken out, so that the differences say what each part costs:

- floor: the four system calls of a request and no server code (client send, server recv,
  server send, client recv);
- no WSGI: `Connection.run` reads, parses and parks the connection as usual, but the request is
  answered with constant bytes: no environ, no application call;
- no books: `serve_request` is replaced by the WSGI call alone: no deadline, watchdog record,
  statistics or access log;
- full: `Connection.run` as the server runs it.

It also times the pool's hand-off of a job: `WorkerPool.post` of a no-op task to 16 workers,
beside a `queue.SimpleQueue` that feeds 16 threads (about the least a pool written in Python
can cost). What neither includes, the HTTP benchmark has: the poller thread, thread switches
and the GIL passing between threads. Pinned to core 0 where the machine allows.

    python bench/request_cost.py [--requests 20000] [--rounds 5]

Prints a Markdown table and writes bench/results/request_cost.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import queue
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

from apps import hello

from poolserver.config import Config
from poolserver.http import Request
from poolserver.pool import PoolError, Task, WorkerPool
from poolserver.server import _connection
from poolserver.server._connection import Connection
from poolserver.server._server import Server
from poolserver.wsgi import base_environ, build_environ, run_call

RESULTS = Path(__file__).parent / "results" / "request_cost.json"
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello world !\n"
POOL_WORKERS = 16

ServeRequest = Callable[[Connection, Request, float, float], bool]


class Rig:
    """A server (never started) and one connection to it, driven from this thread."""

    def __init__(self) -> None:
        self.server = Server(hello, Config(workers=POOL_WORKERS))
        self.server.base_environ = base_environ("127.0.0.1", 8000)
        with socket.create_server(("127.0.0.1", 0)) as listener:
            self.client = socket.create_connection(listener.getsockname()[:2])
            accepted, address = listener.accept()
        for sock in (self.client, accepted):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        accepted.setblocking(False)
        self.accepted = accepted
        self.conn = Connection(accepted, address, self.server)

    def close(self) -> None:
        """Close both ends."""
        self.client.close()
        self.conn.close()

    def floor(self, count: int) -> None:
        """The request's system calls alone."""
        send, recv = self.client.send, self.client.recv
        server_recv, server_send = self.accepted.recv, self.accepted.send
        for _ in range(count):
            send(REQUEST)
            server_recv(65536)
            server_send(ANSWER)
            recv(65536)

    def served(self, count: int) -> None:
        """`count` requests through `Connection.run`, as a worker runs it."""
        send, recv, run, conn = self.client.send, self.client.recv, self.conn.run, self.conn
        for _ in range(count):
            send(REQUEST)
            conn.ready_at = time.monotonic()  # as the poller sets it when it hands it over
            run()  # ends parking the connection: epoll armed, the poller (not started) idle
            recv(65536)


def answer_constant(conn: Connection, request: Request, waited: float, started: float) -> bool:
    """serve_request without WSGI: constant bytes, straight to the socket."""
    conn.requests += 1
    conn.send(ANSWER)
    return True


def wsgi_only(conn: Connection, request: Request, waited: float, started: float) -> bool:
    """serve_request without its books: the environ and the WSGI call."""
    server = conn.server
    conn.requests += 1
    environ = build_environ(request, server.base_environ, conn.remote_addr, conn.remote_port)
    run_call(server.app, environ, request, conn.send, server.date, keep_alive=True)
    return True


@contextlib.contextmanager
def serving_with(replacement: ServeRequest | None) -> Iterator[None]:
    """Run `Connection.run` with `replacement` for serve_request (None: the real one)."""
    # Connection.run looks serve_request up in its module's namespace on every call.
    namespace = vars(_connection)
    original = namespace["serve_request"]
    if replacement is not None:
        namespace["serve_request"] = replacement
    try:
        yield
    finally:
        namespace["serve_request"] = original


class _Noop(Task):
    """A task that only counts itself and says when the last one ran."""

    __slots__ = ("counter",)

    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def run(self) -> None:
        self.counter.tick()

    def discard(self, reason: PoolError) -> None:
        raise AssertionError(f"a no-op task was discarded: {reason}")


class Counter:
    """Counts runs; sets `done` at `target` (ticks come from many threads)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = threading.Event()
        self._lock = threading.Lock()

    def tick(self) -> None:
        """One more run."""
        with self._lock:
            self.count += 1
            if self.count == self.target:
                self.done.set()


def pool_handoff(jobs: int) -> float:
    """Seconds per job through WorkerPool.post, at most 32 jobs ahead of the workers."""
    pool = WorkerPool(POOL_WORKERS, 64)
    counter = Counter(jobs)
    tasks = [_Noop(counter) for _ in range(128)]
    try:
        started = time.perf_counter()
        for number in range(jobs):
            while pool.pending > 32:
                time.sleep(0)  # let the workers catch up, as a poller's batch would
            pool.post(tasks[number % len(tasks)])
        counter.done.wait(60)
        return (time.perf_counter() - started) / jobs
    finally:
        pool.close()


def simple_queue_handoff(jobs: int) -> float:
    """Seconds per job through a SimpleQueue feeding 16 threads, the same way."""
    jobs_queue: queue.SimpleQueue[_Noop | None] = queue.SimpleQueue()
    counter = Counter(jobs)

    def work() -> None:
        while (task := jobs_queue.get()) is not None:
            task.run()

    threads = [threading.Thread(target=work) for _ in range(POOL_WORKERS)]
    for thread in threads:
        thread.start()
    tasks = [_Noop(counter) for _ in range(128)]
    try:
        started = time.perf_counter()
        for number in range(jobs):
            while jobs_queue.qsize() > 32:
                time.sleep(0)
            jobs_queue.put(tasks[number % len(tasks)])
        counter.done.wait(60)
        return (time.perf_counter() - started) / jobs
    finally:
        for _ in threads:
            jobs_queue.put(None)
        for thread in threads:
            thread.join(10)


def per_request(rig: Rig, replacement: ServeRequest | None, count: int) -> float:
    """Seconds per request through `Connection.run` with `replacement` for serve_request."""
    with serving_with(replacement):
        started = time.perf_counter()
        rig.served(count)
        return (time.perf_counter() - started) / count


def measure(requests: int, rounds: int) -> dict[str, float]:
    """Median µs per request (or job) of each variant, interleaved round by round."""
    rig = Rig()
    variants: dict[str, Callable[[], float]] = {
        "floor": lambda: _timed(rig.floor, requests),
        "no WSGI": lambda: per_request(rig, answer_constant, requests),
        "no books": lambda: per_request(rig, wsgi_only, requests),
        "full": lambda: per_request(rig, None, requests),
        "SimpleQueue hand-off": lambda: simple_queue_handoff(requests * 5),
        "WorkerPool hand-off": lambda: pool_handoff(requests * 5),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for variant in variants.values():
            variant()  # warm up
        for _ in range(rounds):
            for name, variant in variants.items():
                samples[name].append(variant() * 1e6)
    finally:
        rig.close()
    return {name: statistics.median(values) for name, values in samples.items()}


def _timed(loop: Callable[[int], None], count: int) -> float:
    started = time.perf_counter()
    loop(count)
    return (time.perf_counter() - started) / count


def report(cost: dict[str, float]) -> str:
    """The Markdown table: each variant, and what each part adds."""
    rows = [
        ("the request's system calls (floor)", cost["floor"], None),
        ("+ read, parse, park (no WSGI)", cost["no WSGI"], cost["no WSGI"] - cost["floor"]),
        (
            "+ environ and WSGI call (no books)",
            cost["no books"],
            cost["no books"] - cost["no WSGI"],
        ),
        ("+ deadline, watchdog, statistics (full)", cost["full"], cost["full"] - cost["no books"]),
        ("hand-off of a job: SimpleQueue, 16 threads", cost["SimpleQueue hand-off"], None),
        (
            "hand-off of a job: WorkerPool.post, 16 workers",
            cost["WorkerPool hand-off"],
            cost["WorkerPool hand-off"] - cost["SimpleQueue hand-off"],
        ),
    ]
    lines = ["| step | µs per request | adds µs |", "|---|---:|---:|"]
    for label, value, added in rows:
        lines.append(f"| {label} | {value:.2f} | {'' if added is None else f'{added:.2f}'} |")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, measure, print and save."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    pinned = hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1
    if pinned:
        os.sched_setaffinity(0, {0})
    cost = measure(args.requests, args.rounds)
    header = (
        f"request cost, {date.today().isoformat()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, {'pinned to core 0' if pinned else 'unpinned'}; "
        f"median of {args.rounds} rounds of {args.requests:,} requests"
    )
    print(header)
    print()
    print(report(cost))
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": date.today().isoformat(),
                "python": platform.python_version(),
                "cores": os.cpu_count(),
                "pinned": pinned,
                "requests": args.requests,
                "rounds": args.rounds,
                "microseconds": cost,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
