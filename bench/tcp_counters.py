"""The kernel's TCP counters that tell where a connection's time went, read around a run.

A client that waits a whole second to connect met a dropped SYN: the server's accept queue
was full (ListenOverflows), or the kernel's per-CPU input queue was (softnet drops, the
machine's fault rather than the server's). The counters are machine-wide: on a quiet machine
they are this benchmark's; other processes' traffic may add to them.
"""

from __future__ import annotations

from pathlib import Path

# (file, protocol line prefix, counter) -> the name shown
_COUNTERS = {
    ("netstat", "TcpExt", "ListenOverflows"): "listen_overflows",
    ("netstat", "TcpExt", "TCPSynRetrans"): "syn_retransmits",
    ("netstat", "TcpExt", "TCPAbortOnData"): "aborts_with_data",
}


def _table(name: str) -> dict[tuple[str, str], int]:
    """/proc/net/netstat or snmp as {(protocol, counter): value}."""
    values: dict[tuple[str, str], int] = {}
    lines = Path(f"/proc/net/{name}").read_text().splitlines()
    # Each protocol has two lines: its counters' names, then their values.
    for header, numbers in zip(lines[::2], lines[1::2], strict=False):
        protocol, _, names = header.partition(":")
        for counter, value in zip(names.split(), numbers.split(":", 1)[1].split(), strict=False):
            values[(protocol, counter)] = int(value)
    return values


def _softnet_drops() -> int:
    """Packets dropped because a CPU's input backlog (netdev_max_backlog) was full."""
    rows = Path("/proc/net/softnet_stat").read_text().split("\n")
    return sum(int(row.split()[1], 16) for row in rows if row.strip())


def read() -> dict[str, int]:
    """The counters now; an empty dict where /proc/net cannot be read."""
    try:
        tables = {"netstat": _table("netstat")}
        found = {
            shown: tables[file].get((protocol, counter), 0)
            for (file, protocol, counter), shown in _COUNTERS.items()
        }
        found["softnet_drops"] = _softnet_drops()
    except (OSError, ValueError, IndexError):
        return {}
    return found


def difference(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """How much each counter grew between two readings."""
    return {name: after[name] - before[name] for name in after if name in before}
