"""Threads racing on one limiter: with the clock frozen, exactly the capacity is admitted.

``allow`` keeps the GIL, so on a GIL build these threads interleave between calls but never
inside the store: they never contend a shard lock. The store's own concurrency (many OS
threads deciding, sweeping and filling one store at once, as a free-threaded CPython would)
is tested in Rust, in ``src/store/threaded_tests.rs``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from rust_py_rate_limit import ALGORITHMS, ManualClock, RateLimiter

THREADS = 8


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    """Makes the interpreter switch threads every microsecond, so that the racers interleave
    call by call instead of each finishing its loop within one time slice."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def race(work: Callable[[int], int], threads: int = THREADS) -> list[int]:
    """Runs `work(thread_index)` on `threads` threads released together; returns the results."""
    barrier = threading.Barrier(threads)
    results = [0] * threads
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = work(index)
        except BaseException as error:
            errors.append(error)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in pool), "a thread hung"
    assert not errors, errors
    return results


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("cost", [1, 3])
def test_racing_threads_admit_exactly_the_capacity(
    algorithm: str, cost: int, clock: ManualClock
) -> None:
    limit = 301
    limiter = RateLimiter(limit, 60, algorithm, clock=clock)
    attempts = 100  # per thread: 800 * cost requested of 301

    def work(_: int) -> int:
        return sum(limiter.allow("shared", cost) for _ in range(attempts))

    admitted = race(work)
    assert sum(admitted) == limit // cost
    stats = limiter.stats()
    assert stats["allowed"] == limit // cost
    assert stats["allowed"] + stats["blocked"] == THREADS * attempts
    assert stats["active_keys"] == 1
    assert limiter.remaining("shared") == limit % cost


@pytest.mark.parametrize("algorithm", ["token_bucket", "leaky_bucket", "gcra"])
def test_racing_threads_admit_exactly_the_burst(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(1000, 60, algorithm, burst=77, clock=clock)
    admitted = race(lambda _: sum(limiter.allow("shared") for _ in range(50)))
    assert sum(admitted) == 77


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_racing_threads_on_several_rates(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate("50/second; 120/hour", algorithm, clock=clock)

    def work(_: int) -> int:
        return sum(limiter.allow("shared") for _ in range(40))

    assert sum(race(work)) == 50, "the per-second rate binds first"
    clock.advance(2)
    assert sum(race(work)) == 50
    clock.advance(2)
    # Only what is left of the hour: a denial consumed from neither rate.
    assert sum(race(work)) == 20
    stats = limiter.stats()
    assert stats["allowed"] == 120
    assert stats["allowed"] + stats["blocked"] == 3 * THREADS * 40


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_racing_threads_over_many_keys_keep_consistent_totals(
    algorithm: str, clock: ManualClock
) -> None:
    limit, keys, calls = 5, 200, 2000
    limiter = RateLimiter(limit, 60, algorithm, clock=clock)

    def work(index: int) -> int:
        admitted = 0
        for i in range(calls):
            n = (i // 2 + index) % keys  # every thread asks every key of both kinds
            key = f"user:{n}" if i % 2 else f"a-much-longer-key-than-fifteen-bytes-{n}"
            admitted += limiter.allow(key)
            if i % 100 == 0:
                limiter.stats()  # reading totals while others write
        return admitted

    admitted = sum(race(work))
    stats = limiter.stats()
    assert stats["allowed"] == admitted
    assert stats["allowed"] + stats["blocked"] == THREADS * calls
    assert stats["total_checks"] == THREADS * calls
    assert stats["active_keys"] == 2 * keys
    # Every key was asked far more often than its limit, so each got exactly the limit.
    assert admitted == 2 * keys * limit
    assert all(limiter.remaining(f"user:{k}") == 0 for k in range(keys))


def test_racing_threads_with_max_keys_never_overfill(clock: ManualClock) -> None:
    max_keys = 100
    limiter = RateLimiter(1, 60, max_keys=max_keys, clock=clock)

    def work(index: int) -> int:
        return sum(limiter.allow(f"t{index}-k{i}") for i in range(50))

    admitted = sum(race(work))
    stats = limiter.stats()
    assert admitted == max_keys
    assert stats["active_keys"] == max_keys
    assert stats["rejected_full"] == THREADS * 50 - max_keys
    assert stats["allowed"] + stats["blocked"] == THREADS * 50


def test_threads_racing_resets_cleanups_and_checks(clock: ManualClock) -> None:
    """Mixed operations from many threads: no crash, no deadlock, totals add up."""
    limiter = RateLimiter(3, 1, "sliding", clock=clock)
    checks_per_thread = 500

    def work(index: int) -> int:
        checks = 0
        for i in range(checks_per_thread):
            key = f"k{i % 17}"
            limiter.decide(key)
            checks += 1
            if index == 0 and i % 50 == 0:
                clock.advance(0.3)
            elif index == 1 and i % 40 == 0:
                limiter.cleanup_expired()
            elif index == 2 and i % 30 == 0:
                limiter.reset(key)
            elif index == 3 and i % 200 == 0:
                limiter.clear()
            else:
                limiter.remaining(key)
        return checks

    assert sum(race(work)) == THREADS * checks_per_thread
    stats = limiter.stats()
    assert stats["total_checks"] == THREADS * checks_per_thread
    assert 0 <= stats["active_keys"] <= 17
