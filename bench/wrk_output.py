"""Parse what `wrk --latency` prints into numbers, errors included.

wrk prints its "Socket errors" and "Non-2xx or 3xx responses" lines only when there are
some, and writes times with a unit of its choosing (us, ms, s, m, h), so every field is
optional here and every time is turned into seconds.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_REQUESTS = re.compile(r"^\s*(\d+) requests in " + _TIME, re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_LATENCY = re.compile(r"^\s*Latency\s+" + _TIME + r"\s+" + _TIME + r"\s+" + _TIME, re.MULTILINE)
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+" + _TIME + r"\s*$", re.MULTILINE)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.MULTILINE)


class WrkOutputError(ValueError):
    """wrk's output lacks the summary lines every run prints (it failed or was cut)."""


@dataclass
class WrkResult:
    """One wrk run: counts, rates, latencies in seconds, and every kind of error."""

    requests: int
    duration_s: float
    requests_per_s: float
    latency_avg_s: float | None = None
    latency_max_s: float | None = None
    percentiles_s: dict[str, float] = field(default_factory=dict)
    connect_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0
    timeouts: int = 0
    non_2xx: int = 0

    @property
    def socket_errors(self) -> int:
        """Connect, read and write errors and timeouts, added up."""
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts

    @property
    def good_per_s(self) -> float:
        """Responses per second that were 2xx or 3xx: the rate that counts."""
        if self.duration_s <= 0:
            return 0.0
        return max(self.requests - self.non_2xx, 0) / self.duration_s

    def p99_s(self) -> float | None:
        """The 99th percentile latency, or None when no request completed."""
        if self.requests == 0:
            return None  # wrk prints 0.00us for an empty histogram
        return self.percentiles_s.get("99")

    def to_json(self) -> dict[str, Any]:
        """The fields, plus the derived figures, as JSON-ready values."""
        data = asdict(self)
        data["socket_errors"] = self.socket_errors
        data["good_per_s"] = self.good_per_s
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WrkResult:
        """The inverse of to_json (derived figures are recomputed, not read)."""
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def _seconds(value: str, unit: str) -> float:
    return float(value) * _TIME_UNITS[unit]


def _percentile_key(text: str) -> str:
    # "99.000" and "99" name the same percentile; keep keys short and stable for JSON.
    return f"{float(text):g}"


def parse_wrk(text: str) -> WrkResult:
    """Parse the output of one `wrk --latency` run; raise WrkOutputError if it is incomplete."""
    requests = _REQUESTS.search(text)
    rps = _RPS.search(text)
    if requests is None or rps is None:
        raise WrkOutputError("no 'requests in' or 'Requests/sec' line in wrk's output")
    result = WrkResult(
        requests=int(requests.group(1)),
        duration_s=_seconds(requests.group(2), requests.group(3)),
        requests_per_s=float(rps.group(1)),
    )
    latency = _LATENCY.search(text)
    if latency is not None:
        result.latency_avg_s = _seconds(latency.group(1), latency.group(2))
        result.latency_max_s = _seconds(latency.group(5), latency.group(6))
    for match in _PERCENTILE.finditer(text):
        key = _percentile_key(match.group(1))
        result.percentiles_s[key] = _seconds(match.group(2), match.group(3))
    errors = _SOCKET_ERRORS.search(text)
    if errors is not None:
        connect, read, write, timeout = (int(g) for g in errors.groups())
        result.connect_errors, result.read_errors = connect, read
        result.write_errors, result.timeouts = write, timeout
    non_2xx = _NON_2XX.search(text)
    if non_2xx is not None:
        result.non_2xx = int(non_2xx.group(1))
    return result


def run_and_parse(argv: Sequence[str], seconds: int) -> WrkResult:
    """Run the wrk command `argv` (measuring `seconds`) and parse what it prints.

    Raises:
        WrkOutputError: wrk failed, printed nothing usable, or ran 30 s past its time.
    """
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise WrkOutputError(f"wrk did not finish in {seconds + 30} s") from error
    try:
        return parse_wrk(done.stdout)
    except WrkOutputError as error:
        raise WrkOutputError(f"{error}; exit {done.returncode}: {done.stderr.strip()}") from None
