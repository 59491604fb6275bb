"""Slow clients ("slowloris"): many connections, each sending its request headers 1 byte/s.

The headers never end (`X-a: b` lines follow one another), so no request ever completes: a
server that gives a thread to each connection, or reads a request in a thread, runs out of
threads; one that reads headers without blocking keeps serving other clients. A connection
the server closes (or answers, e.g. with 408) is opened again at once.

One process, one asyncio loop. Writes to stdout, one line each, so that a harness can follow:
- `READY open=N failed=F` once every connection has been tried once;
- `STATUS t=T open=N connects=C failed=F closed=X` every second;
- `DONE ...` (same fields) when the run ends after --duration seconds.
"open" counts connections established from the client's side, accepted or still in the
server's listen backlog.

    python bench/slow_clients.py --port 8000 [--connections 1000] [--duration 60]
    python bench/slow_clients.py --sink [--connections 1000] [--duration 60]

`--sink` is the control: the same clients, but trickling into a listening socket of their own
that never accepts (the kernel completes each handshake and holds the bytes), so that no server
does anything for them. Beside it, wrk shows what the generator alone costs the core it shares
with wrk; beside the real run, what the slow clients cost the server on top.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import random
import resource
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

CONNECT_TIMEOUT_S = 5.0
REQUEST_HEAD = b"GET / HTTP/1.1\r\nHost: x\r\n"
ENDLESS_HEADER = b"X-a: b\r\n"


@dataclass
class Counters:
    """What the clients have done so far; one instance shared by all of them."""

    started: float
    open: int = 0
    connects: int = 0
    failed: int = 0
    closed_by_server: int = 0
    tried: int = 0

    def line(self, kind: str) -> str:
        """A status line that the harness parses: `KIND t=... open=... ...`."""
        elapsed = time.monotonic() - self.started
        return (
            f"{kind} t={elapsed:.1f} open={self.open} connects={self.connects} "
            f"failed={self.failed} closed={self.closed_by_server}"
        )


def request_bytes() -> Iterator[bytes]:
    """The bytes of a request whose headers never end, one at a time."""
    head = (REQUEST_HEAD[i : i + 1] for i in range(len(REQUEST_HEAD)))
    tail = itertools.cycle([ENDLESS_HEADER[i : i + 1] for i in range(len(ENDLESS_HEADER))])
    return itertools.chain(head, tail)


def raise_fd_limit() -> None:
    """Raise the soft limit on open files to the hard limit: each client is one descriptor."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _connect(
    host: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    try:
        return await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError):
        return None


async def _trickle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deadline: float, interval: float
) -> bool:
    """Send one byte per interval until the deadline; False if the server closed or answered."""
    # Whatever the server sends back (EOF, a reset, a 408 or 400) means it gave up on this
    # request: reading is how that is noticed without waiting for a write to fail.
    answer = asyncio.ensure_future(reader.read(4096))
    try:
        # Start at a random point of the interval, so that the server sees a steady stream of
        # single bytes rather than a burst from every client at once each second.
        delay = random.uniform(0, interval)
        for byte in request_bytes():
            done, _ = await asyncio.wait({answer}, timeout=min(delay, deadline - time.monotonic()))
            if done:
                return False
            if time.monotonic() >= deadline:
                return True
            writer.write(byte)
            await writer.drain()
            delay = interval
        return True  # unreachable: request_bytes() never ends
    except OSError:
        return False
    finally:
        answer.cancel()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def slow_client(
    host: str, port: int, counters: Counters, deadline: float, interval: float
) -> None:
    """Keep one connection open and trickling until the deadline, reconnecting as needed."""
    first = True
    while time.monotonic() < deadline:
        streams = await _connect(host, port)
        if first:
            counters.tried += 1
            first = False
        if streams is None:
            counters.failed += 1
            await asyncio.sleep(min(interval, max(deadline - time.monotonic(), 0)))
            continue
        counters.connects += 1
        counters.open += 1
        try:
            finished = await _trickle(*streams, deadline, interval)
        finally:
            counters.open -= 1
        if not finished:
            counters.closed_by_server += 1


async def report(counters: Counters, total: int, deadline: float) -> None:
    """Print READY once every client tried to connect, then a STATUS line every second."""
    while counters.tried < total and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    print(f"READY open={counters.open} failed={counters.failed}", flush=True)
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        print(counters.line("STATUS"), flush=True)


async def run(host: str, port: int, connections: int, duration: float, interval: float) -> None:
    """Run `connections` slow clients against host:port for `duration` seconds."""
    started = time.monotonic()
    deadline = started + duration
    counters = Counters(started=started)
    reporter = asyncio.create_task(report(counters, connections, deadline))
    await asyncio.gather(
        *(slow_client(host, port, counters, deadline, interval) for _ in range(connections))
    )
    reporter.cancel()
    print(counters.line("DONE"), flush=True)


def sink(host: str, connections: int) -> socket.socket:
    """A listening socket that never accepts, with room in its backlog for every client."""
    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.bind((host, 0))
    listener.listen(connections + 64)
    return listener


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the clients until --duration has passed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--port", type=int, help="the server's port")
    target.add_argument("--sink", action="store_true", help="trickle into a socket nobody reads")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds, then exit")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between bytes")
    args = parser.parse_args(argv)
    raise_fd_limit()
    listener = sink(args.host, args.connections) if args.sink else None
    port = args.port if listener is None else listener.getsockname()[1]
    try:
        asyncio.run(run(args.host, port, args.connections, args.duration, args.interval))
    except KeyboardInterrupt:
        return 130
    finally:
        if listener is not None:
            listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
