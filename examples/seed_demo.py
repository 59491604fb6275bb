"""The seed's worker pool, run as a demo: 3 workers, a queue of 2, 10 jobs.

Each job logs "Worker N, processing job M" as the seed's workers do; `submit` blocks while
the pool is full, and `close()` runs every queued job before it returns.

    python examples/seed_demo.py
"""

from __future__ import annotations

import logging
import threading
import time

from poolserver.pool import WorkerPool

log = logging.getLogger("seed_demo")


def process(job_id: int) -> int:
    """Stand-in for the seed's request handling: a little work, logged as the seed logs it."""
    worker = threading.current_thread().name.rsplit("-", 1)[-1]
    log.info("Worker %s, processing job %d", worker, job_id)
    time.sleep(0.05)  # the job's own work
    return job_id


def main() -> None:
    """Submit ten jobs to a pool of capacity 3 + 2, then close it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    pool = WorkerPool(max_workers=3, queue_size=2, name="demo")
    futures = [pool.submit(process, job_id) for job_id in range(1, 11)]
    pool.close()
    stats = pool.statistics()
    log.info(
        "done: %d jobs, mean queue wait %.0f ms, mean run time %.0f ms",
        stats.completed,
        (stats.queue_wait.mean or 0) * 1000,
        (stats.run_time.mean or 0) * 1000,
    )
    assert [f.result() for f in futures] == list(range(1, 11))


if __name__ == "__main__":
    main()
