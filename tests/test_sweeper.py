"""``cleanup_interval``: a background thread sweeps expired keys, and stops with its limiter.

The sweeper runs on real time while the limiter's clock is a ManualClock, so the tests poll
(in 10 ms steps, for at most ~2 s) instead of sleeping once for long.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable

import pytest

from rust_py_rate_limit import ALGORITHMS, ManualClock, RateLimiter

POLL_SECONDS = 2.0
TASKS = "/proc/self/task"


def wait_until(condition: Callable[[], bool], timeout: float = POLL_SECONDS) -> bool:
    """Polls `condition` every 10 ms until it holds or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def active_keys(limiter: RateLimiter) -> int:
    return limiter.stats()["active_keys"]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_sweeper_removes_expired_keys_and_keeps_live_ones(
    algorithm: str, clock: ManualClock
) -> None:
    limiter = RateLimiter(1, 1, algorithm, cleanup_interval=0.01, clock=clock)
    for i in range(50):
        assert limiter.allow(f"old-{i}")
    clock.advance(1.5)
    assert limiter.allow("young")
    clock.advance(0.5)  # t=2: every "old-*" key has expired; "young" (t=1.5) has not
    assert wait_until(lambda: active_keys(limiter) == 1), limiter.stats()
    time.sleep(0.05)
    assert active_keys(limiter) == 1, "the live key is kept"
    assert limiter.remaining("young") == 0, "with its state"
    assert not limiter.allow("young")
    clock.advance(10)
    assert wait_until(lambda: active_keys(limiter) == 0), limiter.stats()
    assert limiter.allow("young")
    stats = limiter.stats()
    assert (stats["allowed"], stats["blocked"]) == (52, 1), "sweeping does not touch totals"


def test_the_sweeper_does_nothing_while_the_clock_stands_still(clock: ManualClock) -> None:
    limiter = RateLimiter(5, 1, cleanup_interval=0.01, clock=clock)
    for i in range(20):
        limiter.allow(f"k{i}")
    time.sleep(0.1)  # about ten sweeps
    assert active_keys(limiter) == 20
    assert limiter.remaining("k0") == 4


def test_the_sweeper_frees_room_under_max_keys(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 1, max_keys=3, cleanup_interval=0.01, clock=clock)
    for key in ("a", "b", "c"):
        assert limiter.allow(key)
    clock.advance(0.5)
    assert limiter.allow("d") is False, "full: nothing has expired yet"
    clock.advance(0.5)
    assert wait_until(lambda: active_keys(limiter) == 0), limiter.stats()
    assert limiter.allow("d")
    assert limiter.stats()["rejected_full"] == 1


def test_a_limiter_without_cleanup_interval_keeps_expired_keys(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 1, clock=clock)
    limiter.allow("k")
    clock.advance(5)
    time.sleep(0.05)
    assert active_keys(limiter) == 1
    assert limiter.cleanup_expired() == 1


def test_the_sweeper_holds_no_reference_to_the_limiter() -> None:
    with_sweeper = RateLimiter(1, 1, cleanup_interval=0.01)
    without = RateLimiter(1, 1)
    assert sys.getrefcount(with_sweeper) == sys.getrefcount(without)
    try:
        ref = weakref.ref(with_sweeper)
    except TypeError:
        return  # the class does not support weak references; the refcount check must do
    del with_sweeper
    gc.collect()
    assert ref() is None


def test_dropping_limiters_with_running_sweepers_does_not_crash(clock: ManualClock) -> None:
    for i in range(200):
        limiter = RateLimiter(3, 0.001, cleanup_interval=0.001, clock=clock)
        for k in range(20):
            limiter.allow(f"key-{k}")
        clock.advance(0.002)
        if i % 20 == 0:
            time.sleep(0.002)  # let some sweeps run into the drop
        del limiter
    gc.collect()
    assert RateLimiter(1, 1).allow("still alive")


def thread_count() -> int:
    return len(os.listdir(TASKS))


def settled_thread_count() -> int:
    """The thread count once threads of earlier tests have finished exiting."""
    last = thread_count()
    deadline = time.monotonic() + POLL_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = thread_count()
        if now == last:
            break
        last = now
    return last


@pytest.mark.skipif(not os.path.isdir(TASKS), reason="needs /proc/self/task (Linux)")
@pytest.mark.parametrize("interval", [0.01, 3600], ids=["short-interval", "hour-interval"])
def test_dropped_limiters_stop_their_sweeper_threads(interval: float) -> None:
    gc.collect()
    baseline = settled_thread_count()
    limiters = [RateLimiter(3, 1, cleanup_interval=interval) for _ in range(200)]
    assert thread_count() >= baseline + 200, "one sweeper thread per limiter"
    assert all(limiter.allow("k") for limiter in limiters)
    del limiters
    gc.collect()
    # A long interval must not delay the stop: the thread is woken, not left to time out.
    assert wait_until(lambda: thread_count() <= baseline + 2), (thread_count(), baseline)


@pytest.mark.skipif(not os.path.isdir(TASKS), reason="needs /proc/self/task (Linux)")
def test_a_limiter_without_cleanup_interval_starts_no_thread() -> None:
    baseline = settled_thread_count()
    limiters = [RateLimiter(3, 1) for _ in range(50)]
    assert thread_count() == baseline
    del limiters


def admitted_by_racing_threads(
    limiter: RateLimiter, keys: list[str], threads: int
) -> dict[str, int]:
    """Each of `threads` threads, released together, calls `allow` 3 times on every key."""
    admitted = dict.fromkeys(keys, 0)
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def hammer() -> None:
        start.wait()
        for _ in range(3):
            for key in keys:
                if limiter.allow(key):
                    with lock:
                        admitted[key] += 1

    running = [threading.Thread(target=hammer) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return admitted


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_sweeper_racing_live_traffic_never_changes_a_decision(
    algorithm: str, clock: ManualClock
) -> None:
    """Keys expire and are swept while 4 threads hammer them: every window still admits exactly
    the limit per key, because a swept key decides exactly like an expired one."""
    limit, keys = 5, [f"k{i}" for i in range(40)]
    limiter = RateLimiter(limit, 1, algorithm, cleanup_interval=0.001, clock=clock)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for _ in range(6):
            assert admitted_by_racing_threads(limiter, keys, 4) == dict.fromkeys(keys, limit)
            # Far enough for every algorithm's state to expire; the sweeper races the next round.
            clock.advance(3)
    finally:
        sys.setswitchinterval(previous)
    assert wait_until(lambda: active_keys(limiter) == 0)
