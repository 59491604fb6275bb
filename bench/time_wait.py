"""TCP sockets in TIME_WAIT on this machine, and a bounded wait until few are left.

Every connection closed with `Connection: close` leaves a socket in TIME_WAIT for 60 s (on the
side that closed first: here, the server's). A 10 s run at ~10,000 connections/s leaves
~100,000 of them; while they last, every new connection pays for them (the kernel searches a
fuller table for a free port and a free 4-tuple), so a server measured right after such a run
is penalised. The harnesses wait before each measurement that opens a connection per request
until the count is below a threshold, for a bounded time, and record the count they started
with.

The count is the kernel's own (`tw` in /proc/net/sockstat, which `ss -s` shows); where that
line is missing, the sockets in state 06 in /proc/net/tcp and /proc/net/tcp6 are counted.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

TIME_WAIT_STATE = "06"
THRESHOLD = 2_000
MAX_WAIT_S = 70.0  # TIME_WAIT lasts 60 s on Linux: past this, waiting longer will not help


def _from_sockstat() -> int | None:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()[1:]
            for name, value in zip(fields[::2], fields[1::2], strict=False):
                if name == "tw":
                    return int(value)
    return None


def _from_tables() -> int:
    count = 0
    for name in ("tcp", "tcp6"):
        try:
            with Path(f"/proc/net/{name}").open() as table:
                next(table, None)  # the header
                count += sum(1 for row in table if row.split(maxsplit=4)[3] == TIME_WAIT_STATE)
        except OSError:
            continue
    return count


def count() -> int | None:
    """Sockets in TIME_WAIT now; None where /proc/net cannot be read."""
    try:
        found = _from_sockstat()
        return found if found is not None else _from_tables()
    except (OSError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class Waited:
    """What a wait found: the count when it began and when it ended, and how long it took."""

    before: int | None
    after: int | None
    seconds: float

    def describe(self, threshold: int) -> str:
        """A short progress note; empty when there was nothing to wait for."""
        if self.before is None or self.before < threshold:
            return ""
        outcome = "" if (self.after or 0) < threshold else ", still over"
        return (
            f"(TIME_WAIT {self.before:,} → {self.after or 0:,} in {self.seconds:.0f} s{outcome}) "
        )


def wait_below(threshold: int = THRESHOLD, max_wait: float = MAX_WAIT_S) -> Waited:
    """Sleep until fewer than `threshold` sockets are in TIME_WAIT, for at most `max_wait` s."""
    started = time.monotonic()
    before = now = count()
    while now is not None and now >= threshold and time.monotonic() - started < max_wait:
        time.sleep(1.0)
        now = count()
    return Waited(before, now, time.monotonic() - started)


def add_arguments(parser: argparse.ArgumentParser, before: str) -> None:
    """The harnesses' two options: `--time-wait-threshold` and `--time-wait-max`.

    Args:
        before: when the harness waits ("before each server", ...), for the help text.
    """
    parser.add_argument(
        "--time-wait-threshold",
        type=int,
        default=THRESHOLD,
        help=f"{before}, wait until fewer sockets than this are in TIME_WAIT",
    )
    parser.add_argument(
        "--time-wait-max",
        type=float,
        default=MAX_WAIT_S,
        help="seconds to wait for TIME_WAIT at most",
    )
