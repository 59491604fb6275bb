"""CPU time that processes other than this benchmark, or the server measured, used meanwhile.

On a shared 2-core machine a test suite or another benchmark running beside can halve a
server's rate for a few seconds, and nothing in wrk's output would show it. So each window is
bracketed with two readings: the machine's busy time (/proc/stat) and the CPU time of this
process and all its descendants (/proc/PID/stat, children already reaped included). What the
machine spent beyond ours was spent by someone else.

Only user and system time count as busy: interrupt time is the network stack serving our own
loopback traffic, and the kernel does not charge it to any process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
KTHREADD = 2


@dataclass(frozen=True)
class _Process:
    ppid: int
    start: int  # boot-relative start time: tells a reused pid from the same process
    ticks: int  # its own CPU time plus that of its children it has reaped


@dataclass(frozen=True)
class Reading:
    """The machine's busy time and every process's CPU time, at one moment."""

    busy_ticks: int
    processes: dict[int, _Process]


def _machine_busy_ticks() -> int:
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    user, nice, system = (int(v) for v in fields[1:4])
    return user + nice + system


def _process(pid: int) -> _Process | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None  # it exited between listing and reading
    # The command name may hold spaces and parentheses: the fields start after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return _Process(
        ppid=int(fields[1]), start=int(fields[19]), ticks=utime + stime + cutime + cstime
    )


def read() -> Reading:
    """Read the machine's busy time and every process's CPU time now."""
    processes: dict[int, _Process] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (process := _process(int(entry.name))) is not None:
            processes[int(entry.name)] = process
    return Reading(busy_ticks=_machine_busy_ticks(), processes=processes)


def _ours(root: int, processes: dict[int, _Process]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, process in processes.items():
        children.setdefault(process.ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def _tree_ticks(before: Reading, after: Reading, root: int) -> int:
    ours_after = _ours(root, after.processes)
    ticks = 0
    for pid in ours_after:
        now = after.processes[pid]
        then = before.processes.get(pid)
        ticks += now.ticks - (then.ticks if then is not None and then.start == now.start else 0)
    # A descendant reaped in the window moved its whole time into its parent's: take off what
    # it had already spent before the window.
    for pid in _ours(root, before.processes) - ours_after:
        ticks -= before.processes[pid].ticks
    return ticks


def _kernel_ticks(before: Reading, after: Reading) -> int:
    # Kernel threads are not reaped into kthreadd's time: count only those alive at both ends.
    ticks = 0
    for pid in _ours(KTHREADD, after.processes):
        now, then = after.processes[pid], before.processes.get(pid)
        if then is not None and then.start == now.start:
            ticks += now.ticks - then.ticks
    return ticks


def foreign_cores(before: Reading, after: Reading, seconds: float) -> float:
    """CPU cores' worth of time that other processes used between two readings."""
    if seconds <= 0:
        return 0.0
    # Kernel threads (kthreadd, pid 2, and its children) count as ours: under load they are
    # mostly ksoftirqd, carrying our own loopback traffic.
    ours = _tree_ticks(before, after, os.getpid()) + _kernel_ticks(before, after)
    foreign = after.busy_ticks - before.busy_ticks - ours
    return max(foreign, 0) / (seconds * TICKS_PER_S)


def tree_cores(before: Reading, after: Reading, seconds: float, root: int) -> float:
    """CPU cores' worth of time that process `root` and its descendants used meanwhile."""
    if seconds <= 0:
        return 0.0
    return max(_tree_ticks(before, after, root), 0) / (seconds * TICKS_PER_S)
