"""The guest's halt polling: how long an idle vCPU spins before it halts, on a KVM guest.

With the haltpoll cpuidle driver, an idle vCPU polls for `guest_halt_poll_ns` before it halts.
Once it has halted, waking a task on it takes an inter-processor interrupt, which on a VM is a
hypercall, and it is paid on the core that wakes: here the server's, in the softirq of the send
that hands wrk its response. The benchmarks run wrk on the machine's other core, so with
polling off every response that finds wrk asleep costs the server that hypercall: a cost of the
load generator sharing the VM, which a client on another machine would not charge it.

Measured on this machine with polling off (its setting, 0) and at the kernel's default
(200,000 ns), hello keep-alive, 50 connections: poolserver 35,805 → 40,974 req/s, interrupts
to wrk's core 0.220 → 0.005 per response; uvicorn 38,709 → 38,446, 0.126 → 0.036. A server
that sends its responses in bursts (one event-loop pass writes many) wakes wrk less often per
response than one whose workers send one at a time; the setting changes the ratio between them.

The harnesses (http_bench, overload_bench) leave the setting alone unless told
(`--guest-halt-poll-ns`), restore it after (on a normal end or Ctrl-C; not if killed), and
record it in their report.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

PARAMETER = Path("/sys/module/haltpoll/parameters/guest_halt_poll_ns")
KERNEL_DEFAULT_NS = 200_000


def current() -> int | None:
    """The setting now, in ns; None where the machine has no haltpoll driver."""
    try:
        return int(PARAMETER.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def set_to(ns: int | None) -> Iterator[None]:
    """Within the block, halt polling is `ns` (unchanged if None).

    Raises SystemExit if asked to change a setting that is missing or not writable (root only).
    """
    before = current()
    if ns is None or ns == before:
        yield
        return
    if before is None:
        raise SystemExit(f"--guest-halt-poll-ns: {PARAMETER} is missing (no haltpoll driver)")
    try:
        PARAMETER.write_text(str(ns))
    except OSError as error:
        raise SystemExit(f"--guest-halt-poll-ns: cannot write {PARAMETER}: {error}") from error
    try:
        yield
    finally:
        PARAMETER.write_text(str(before))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The harnesses' option: `--guest-halt-poll-ns`."""
    parser.add_argument(
        "--guest-halt-poll-ns",
        type=int,
        metavar="NS",
        help="set the KVM guest's halt polling for the run, then restore it (root; "
        f"{KERNEL_DEFAULT_NS} is the kernel's default); default: leave it as the machine has it",
    )


def describe(requested: int | None) -> str:
    """The setting in force now, as a report's header says it; `requested` is the run's
    `--guest-halt-poll-ns` (None: the machine's own setting)."""
    ns = current()
    if ns is None:
        return "no guest halt polling driver"
    origin = "the machine's setting" if requested is None else "set for this run"
    return f"guest halt polling {ns:,} ns ({origin})"
