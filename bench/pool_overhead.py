"""Cost per job of submitting and running a no-op job: WorkerPool beside ThreadPoolExecutor.

Both executors run the same workload in the same process, interleaved round by round so that
drift on a shared machine hits both alike; each figure is the median over the rounds.
Prints a Markdown table and writes bench/results/pool_overhead.json.

    python bench/pool_overhead.py [--jobs 50000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import date
from pathlib import Path

from poolserver.pool import WorkerPool

RESULTS = Path(__file__).parent / "results" / "pool_overhead.json"


def noop() -> None:
    """The job: nothing, so only the pool's own cost is measured."""


def cost_per_job(make: Callable[[int], Executor], workers: int, jobs: int) -> float:
    """Seconds per job to submit `jobs` no-op jobs and wait for all their results."""
    executor = make(workers)
    try:
        for future in [executor.submit(noop) for _ in range(workers * 4)]:
            future.result()  # warm up: every thread started
        gc.collect()
        started = time.perf_counter()
        futures = [executor.submit(noop) for _ in range(jobs)]
        for future in futures:
            future.result()
        return (time.perf_counter() - started) / jobs
    finally:
        executor.shutdown(wait=True)


EXECUTORS: dict[str, Callable[[int], Executor]] = {
    "ThreadPoolExecutor": lambda n: ThreadPoolExecutor(max_workers=n),
    # A queue as deep as the burst, so that submit never blocks: the same work as the
    # executor beside it, which queues without bound.
    "WorkerPool": lambda n: WorkerPool(n, queue_size=1_000_000),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args(argv)

    rows = []
    for workers in args.workers:
        samples: dict[str, list[float]] = {name: [] for name in EXECUTORS}
        for _ in range(args.rounds):
            for name, make in EXECUTORS.items():
                samples[name].append(cost_per_job(make, workers, args.jobs))
        medians = {name: statistics.median(values) for name, values in samples.items()}
        ratio = medians["WorkerPool"] / medians["ThreadPoolExecutor"]
        rows.append(
            {
                "workers": workers,
                "us_per_job": {k: v * 1e6 for k, v in medians.items()},
                "ratio": ratio,
            }
        )

    print(
        f"pool overhead, {date.today()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"median of {args.rounds} rounds of {args.jobs} no-op jobs\n")
    print("| workers | ThreadPoolExecutor µs/job | WorkerPool µs/job | WorkerPool / TPE |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        cost = row["us_per_job"]
        print(
            f"| {row['workers']} | {cost['ThreadPoolExecutor']:.2f} | {cost['WorkerPool']:.2f} "
            f"| {row['ratio']:.2f}x |"
        )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "date": str(date.today()),
                "cores": os.cpu_count(),
                "python": sys.version.split()[0],
                "rows": rows,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
