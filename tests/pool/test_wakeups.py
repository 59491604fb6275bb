"""How queued jobs find workers: no job is stranded, and a burst of blocking jobs is spread
over every idle worker, each woken by the one before it as soon as that one has its job (a
woken worker is not bound to the job it was woken for)."""

from __future__ import annotations

import threading

from poolserver.pool import WorkerPool
from tests.waiting import wait_for

from .helpers import warm_up


def test_a_burst_of_blocking_jobs_runs_on_every_idle_worker_at_once() -> None:
    # Each job blocks until all of them run: if the burst left an idle worker asleep while
    # jobs waited (a broken chain of wake-ups, or a wake-up only when another job arrives),
    # the barrier would time out.
    workers = 8
    with WorkerPool(workers, 64) as pool:
        warm_up(pool, workers)
        barrier = threading.Barrier(workers, timeout=10)
        futures = [pool.submit(barrier.wait) for _ in range(workers)]
        assert sorted(f.result(10) for f in futures) == list(range(workers))
        assert pool.statistics().workers == workers  # the idle threads ran them: none new


def test_jobs_posted_from_several_threads_all_run_and_leave_the_pool_at_rest() -> None:
    # Many short jobs from two submitters, with the pool shrinking and growing between rounds:
    # a job left queued with every worker asleep (a lost wake-up) would never run.
    pool = WorkerPool(4, 10_000)
    ran = threading.Semaphore(0)
    per_thread, rounds = 500, 6
    try:
        for round_number in range(rounds):
            pool.resize(2 if round_number % 2 else 4)

            def post_many() -> None:
                for _ in range(per_thread):
                    pool.submit(ran.release)

            posters = [threading.Thread(target=post_many) for _ in range(2)]
            for poster in posters:
                poster.start()
            for poster in posters:
                poster.join(10)
            for _ in range(2 * per_thread):
                assert ran.acquire(timeout=10), "a queued job never ran"
        stats = pool.statistics()
        assert stats.completed == rounds * 2 * per_thread
        assert (stats.queued, stats.running) == (0, 0)
    finally:
        pool.close()
    assert pool.statistics().workers == 0


def test_a_shutdown_without_wait_lets_idle_workers_exit_once_the_queue_is_done() -> None:
    # Right after a post, the job is queued with one worker woken for it and the others still
    # idle: a drain that starts then must still end with every thread gone.
    pool = WorkerPool(3, 8)
    warm_up(pool, 3)
    future = pool.submit(lambda: "done")
    pool.shutdown(wait=False)
    assert future.result(10) == "done"
    wait_for("the idle workers to exit", lambda: pool.statistics().workers == 0, 10)
