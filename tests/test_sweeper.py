"""``cleanup_interval``: a background thread sweeps expired keys, and stops with its limiter.

The sweeper runs on real time while the limiter's clock is a ManualClock. A sweep at a given
clock reading removes exactly the keys expired at that reading, however often it runs, so the
tests never sleep and then assert that nothing changed: they arrange for some keys to expire
at the very reading where others must be kept, and wait (a bounded poll, which returns as
soon as the condition holds) until the expired ones are gone. That proves a sweep ran at that
reading, and whatever it kept, every later sweep keeps too.

Threads are told apart by id and by name (``/proc/self/task``), never by counting all the
threads of the process, which other tests' threads also come and go from.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from collections.abc import Callable

import pytest

from rust_py_rate_limit import ALGORITHMS, ManualClock, RateLimiter

#: How long a poll waits at most: long, because a loaded machine may be slow; a passing test
#: waits only as long as the condition takes.
WAIT_SECONDS = 30.0
TASKS = "/proc/self/task"
#: The sweeper thread's name as the kernel keeps it (15 bytes of "rate-limit-sweeper").
SWEEPER_THREAD = "rate-limit-swee"

needs_proc = pytest.mark.skipif(not os.path.isdir(TASKS), reason="needs /proc/self/task (Linux)")


def wait_until(condition: Callable[[], bool], timeout: float = WAIT_SECONDS) -> bool:
    """Polls `condition` every 5 ms until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def active_keys(limiter: RateLimiter) -> int:
    return limiter.stats()["active_keys"]


def lifetime(algorithm: str, limit: int, window: float) -> float:
    """How long the state of one request of cost 1 matters, in seconds: the fixed window until
    its window ends, the sliding window for two windows (it weighs the previous one), the
    buckets until the request's emission interval (window / limit) has passed."""
    if algorithm == "fixed":
        return window
    if algorithm == "sliding":
        return 2 * window
    return window / limit


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_sweeper_removes_expired_keys_and_keeps_live_ones(
    algorithm: str, clock: ManualClock
) -> None:
    limiter = RateLimiter(1, 1, algorithm, cleanup_interval=0.01, clock=clock)
    twin = RateLimiter(1, 1, algorithm, clock=clock)  # no sweeper: says what has expired
    life = lifetime(algorithm, 1, 1)
    for i in range(50):
        assert limiter.allow(f"old-{i}") and twin.allow(f"old-{i}")
    clock.advance(life / 2)
    assert limiter.allow("young") and twin.allow("young")
    assert twin.cleanup_expired() == 0, "nothing has expired yet"
    clock.advance(life / 2)  # every "old-*" key expires now; "young" later
    assert twin.cleanup_expired() == 50
    # The old keys can only go in a sweep at this reading, which must keep "young".
    assert wait_until(lambda: active_keys(limiter) == 1), limiter.stats()
    assert limiter.remaining("young") == 0, "the live key is kept with its state"
    assert not limiter.allow("young")
    clock.advance(10)
    assert wait_until(lambda: active_keys(limiter) == 0), limiter.stats()
    assert limiter.allow("young")
    stats = limiter.stats()
    assert (stats["allowed"], stats["blocked"]) == (52, 1), "sweeping does not touch totals"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_sweeper_keeps_a_key_to_the_nanosecond_its_state_expires(
    algorithm: str, clock: ManualClock
) -> None:
    limiter = RateLimiter(5, 1, algorithm, cleanup_interval=0.01, clock=clock)
    life = lifetime(algorithm, 5, 1)
    for i in range(20):
        assert limiter.allow(f"canary-{i}")
    clock.advance(1e-9)
    for i in range(20):
        assert limiter.allow(f"k{i}")
    clock.advance(life - 1e-9)  # the canaries expire at this reading, the others 1 ns later
    assert wait_until(lambda: active_keys(limiter) == 20), limiter.stats()
    assert all(limiter.remaining(f"k{i}") == 4 for i in range(20)), "kept with their state"
    assert all(limiter.remaining(f"canary-{i}") == 5 for i in range(20))
    clock.advance(1e-9)
    assert wait_until(lambda: active_keys(limiter) == 0), limiter.stats()


def test_the_sweeper_frees_room_under_max_keys(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 1, max_keys=3, cleanup_interval=0.01, clock=clock)
    for key in ("a", "b", "c"):
        assert limiter.allow(key)
    clock.advance(0.5)
    # Full, nothing has expired: refused, after the one sweep for room a second allows.
    assert limiter.allow("d") is False
    clock.advance(0.5)
    # Expired now, but the next sweep for room is only due at 1.5 s: this is the sweeper's.
    assert wait_until(lambda: active_keys(limiter) == 0), limiter.stats()
    assert limiter.allow("d")
    assert limiter.stats()["rejected_full"] == 1


def test_a_limiter_without_cleanup_interval_keeps_expired_keys(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 1, clock=clock)
    witness = RateLimiter(1, 1, cleanup_interval=0.01, clock=clock)
    limiter.allow("k")
    witness.allow("k")
    clock.advance(5)
    # A sweeper has had the time to act: the witness's has.
    assert wait_until(lambda: active_keys(witness) == 0), witness.stats()
    assert active_keys(limiter) == 1
    assert limiter.cleanup_expired() == 1


def test_the_sweeper_holds_no_reference_to_the_limiter() -> None:
    with_sweeper = RateLimiter(1, 1, cleanup_interval=0.01)
    without = RateLimiter(1, 1)
    assert sys.getrefcount(with_sweeper) == sys.getrefcount(without)
    # RateLimiter takes no weak references; its settings keep the clock it was given (for
    # `with_rate`), so the clock's count shows when the limiter is freed.
    clock = ManualClock()
    alone = sys.getrefcount(clock)
    limiter = RateLimiter(1, 1, cleanup_interval=0.001, clock=clock)
    assert sys.getrefcount(clock) == alone + 1
    limiter.allow("k")
    del limiter  # freed at once, sweeper thread running or not
    assert sys.getrefcount(clock) == alone


def thread_ids() -> set[int]:
    return {int(tid) for tid in os.listdir(TASKS)}


def thread_name(tid: int) -> str | None:
    """The thread's name, or None once it has exited."""
    try:
        with open(f"{TASKS}/{tid}/comm") as comm:
            return comm.read().strip()
    except FileNotFoundError:
        return None


def sweepers_among(tids: set[int]) -> int:
    return sum(thread_name(tid) == SWEEPER_THREAD for tid in tids)


@needs_proc
def test_dropping_limiters_with_running_sweepers_does_not_crash(clock: ManualClock) -> None:
    before = thread_ids()
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
    # Every thread started here (one sweeper per limiter) has exited.
    assert wait_until(lambda: not thread_ids() - before), sorted(thread_ids() - before)


@needs_proc
@pytest.mark.parametrize("interval", [0.01, 3600], ids=["short-interval", "hour-interval"])
def test_dropped_limiters_stop_their_sweeper_threads(interval: float) -> None:
    before = thread_ids()
    limiters = [RateLimiter(3, 1, cleanup_interval=interval) for _ in range(200)]
    ours = thread_ids() - before  # each thread exists once its limiter is built
    # One sweeper thread per limiter (a thread names itself once it runs).
    assert wait_until(lambda: sweepers_among(ours) == 200), (len(ours), sweepers_among(ours))
    assert all(limiter.allow("k") for limiter in limiters)
    del limiters
    gc.collect()
    # A long interval must not delay the stop: the thread is woken, not left to time out.
    assert wait_until(lambda: not ours & thread_ids()), len(ours & thread_ids())


@needs_proc
def test_a_limiter_without_cleanup_interval_starts_no_thread() -> None:
    before = thread_ids()
    limiters = [RateLimiter(3, 1) for _ in range(50)]
    assert limiters[0].allow("k")
    assert thread_ids() - before == set()


def admitted_by_racing_threads(
    limiter: RateLimiter, keys: list[str], threads: int
) -> dict[str, int]:
    """Each of `threads` threads, released together, calls `allow` 3 times on every key."""
    admitted = dict.fromkeys(keys, 0)
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def hammer() -> None:
        start.wait(timeout=WAIT_SECONDS)
        for _ in range(3):
            for key in keys:
                if limiter.allow(key):
                    with lock:
                        admitted[key] += 1

    running = [threading.Thread(target=hammer) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join(timeout=WAIT_SECONDS)
    assert not any(t.is_alive() for t in running), "a thread hung"
    return admitted


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_sweeper_racing_live_traffic_never_changes_a_decision(
    algorithm: str, clock: ManualClock
) -> None:
    """Keys expire and are swept while 4 threads hammer them: every window still admits exactly
    the limit per key, because a swept key decides exactly like an expired one. Every other
    round starts once the sweeper has removed every key, so both cases surely happen."""
    limit, keys = 5, [f"k{i}" for i in range(40)]
    limiter = RateLimiter(limit, 1, algorithm, cleanup_interval=0.001, clock=clock)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for round in range(6):
            assert admitted_by_racing_threads(limiter, keys, 4) == dict.fromkeys(keys, limit)
            # Far enough for every algorithm's state to expire.
            clock.advance(3)
            if round % 2:
                assert wait_until(lambda: active_keys(limiter) == 0), limiter.stats()
            # Otherwise the sweeper races the next round.
    finally:
        sys.setswitchinterval(previous)
    assert wait_until(lambda: active_keys(limiter) == 0)
