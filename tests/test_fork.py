"""A limiter made before a fork (gunicorn --preload, multiprocessing) keeps its background
sweeper in the parent and in every child, and no child inherits a lock held by a sweep."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from rust_py_rate_limit import ManualClock, RateLimiter

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="this platform has no fork()"),
    # Python 3.12+ warns about forking a process that has threads: the point of this file.
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

CHILD_DEADLINE_SECONDS = 20.0


def in_child(body: Callable[[], bool]) -> int:
    """Run ``body`` in a forked child; its exit code (0 when it returned True), or -1 if it hung."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 2
        try:
            code = 0 if body() else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + CHILD_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


def swept_within(limiter: RateLimiter, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while limiter.stats()["active_keys"] and time.monotonic() < deadline:
        time.sleep(0.002)
    return limiter.stats()["active_keys"] == 0


def test_the_sweeper_runs_in_the_child_and_in_the_parent_after_a_fork() -> None:
    clock = ManualClock()
    limiter = RateLimiter(1, 1, cleanup_interval=0.001, clock=clock)
    for n in range(1000):
        limiter.allow(f"user:{n}")

    def child() -> bool:
        clock.advance(2)  # the child's own copy of the clock
        return swept_within(limiter)

    assert in_child(child) == 0
    assert limiter.stats()["active_keys"] == 1000  # the parent's keys are its own
    clock.advance(2)
    assert swept_within(limiter)


def test_a_fork_in_the_middle_of_sweeps_leaves_no_lock_held_in_the_child() -> None:
    # Enough live keys that the sweeper is nearly always inside a shard when the fork comes.
    limiter = RateLimiter(10, 3600, cleanup_interval=0.001)
    for n in range(200_000):
        limiter.allow(f"user:{n}")

    def child() -> bool:
        # Touch every shard: a lock inherited in the held state would hang here.
        return all(limiter.allow(f"user:{n}") for n in range(0, 200_000, 50))

    codes = [in_child(child) for _ in range(20)]
    assert codes == [0] * 20, "a child hung (-1) or failed"
    assert limiter.stats()["active_keys"] == 200_000
