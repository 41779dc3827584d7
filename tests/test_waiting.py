"""Waiting for a permit: acquire, aacquire, throttle and the decorator's wait=True, on
RateLimiter and on the unkeyed limiters. Time is a ManualClock the tests advance (a sleeper
wakes when the clock passes its time), except for one real-time check bounded under 1.5 s
per run and the Redis checks."""

from __future__ import annotations

import _thread
import asyncio
import math
import pathlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from redis_support import RedisServer

from rust_py_rate_limit import (
    FixedWindow,
    Gcra,
    ManualClock,
    RateLimiter,
    RateLimitExceeded,
    SlidingWindow,
    TokenBucket,
    rate_limit,
)

#: The longest a test waits (in real time) for a thread to reach a state it must reach.
PATIENCE = 5.0


def eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


def start(target: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Runs ``target`` in a thread; its result lands in the list."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(target()), daemon=True)
    thread.start()
    return thread, out


def one_per_second(clock: ManualClock, keyed: bool) -> Any:
    """1 a second, burst 1: the n-th waiter's turn is n seconds away."""
    if keyed:
        return RateLimiter(1, 1, "token_bucket", clock=clock)
    return Gcra(limit=1, period_secs=1, burst=1, clock=clock)


def acquire(limiter: Any, keyed: bool, **kwargs: Any) -> bool:
    return bool(limiter.acquire("k", **kwargs) if keyed else limiter.acquire(**kwargs))


def waiting_for(limiter: Any, keyed: bool) -> float:
    """How far ahead the reservations run: the wait a new caller would get."""
    return float(limiter.peek("k").retry_after if keyed else limiter.peek().retry_after)


@pytest.mark.parametrize("keyed", [True, False], ids=["RateLimiter", "Gcra"])
def test_waiting_threads_go_in_arrival_order_at_their_reserved_instants(
    clock: ManualClock, keyed: bool
) -> None:
    limiter = one_per_second(clock, keyed)
    assert acquire(limiter, keyed), "the first goes at once"
    done: list[int] = []
    threads = []
    for i in range(3):
        thread, _ = start(lambda i=i: done.append(i) if acquire(limiter, keyed) else None)
        threads.append(thread)
        # each reserves the next second before the next one starts
        eventually(lambda i=i: waiting_for(limiter, keyed) == i + 2, f"waiter {i} reserved")
    time.sleep(0.02)
    assert done == [], "all three sleep"
    for second in range(3):
        clock.advance(1)
        threads[second].join(PATIENCE)
        time.sleep(0.02)
        assert done == list(range(second + 1)), "one more each second, in arrival order"


def test_a_waiter_with_too_short_a_timeout_returns_false_at_once(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 1, "gcra", clock=clock)
    assert limiter.acquire("k")
    thread, out = start(lambda: limiter.acquire("k", timeout=0.5))
    thread.join(PATIENCE)
    assert out == [False], "no sleeping for nothing: the wait (1 s) exceeds the timeout"
    assert limiter.peek("k").retry_after == 1.0, "nothing was reserved"
    thread, out = start(lambda: limiter.acquire("k", timeout=1))
    eventually(lambda: limiter.peek("k").retry_after == 2.0, "the waiter reserved")
    clock.advance(1)
    thread.join(PATIENCE)
    assert out == [True]


@pytest.mark.parametrize(
    "limiter",
    [
        lambda c: RateLimiter(3, 1, "token_bucket", clock=c),
        lambda c: RateLimiter(3, 1, "fixed", clock=c),
        lambda c: TokenBucket(capacity=3, increment=1, period_secs=1, clock=c),
        lambda c: SlidingWindow(capacity=3, interval_secs=1, clock=c),
    ],
    ids=["keyed bucket", "keyed window", "TokenBucket", "SlidingWindow"],
)
def test_a_cost_above_the_capacity_returns_false_at_once_without_a_timeout(
    clock: ManualClock, limiter: Callable[[ManualClock], Any]
) -> None:
    made = limiter(clock)
    keyed = isinstance(made, RateLimiter)
    thread, out = start(lambda: acquire(made, keyed, cost=4))
    thread.join(PATIENCE)
    assert out == [False]
    assert acquire(made, keyed, cost=3), "and it took nothing"


@pytest.mark.parametrize(
    "make",
    [
        lambda c: RateLimiter(2, 1, "fixed", clock=c),
        lambda c: RateLimiter(2, 1, "sliding", clock=c),
        lambda c: RateLimiter.from_rate("2/second; 10/minute", algorithm="gcra", clock=c),
        lambda c: FixedWindow(capacity=2, interval_secs=1, clock=c),
        lambda c: SlidingWindow(capacity=2, interval_secs=1, clock=c),
    ],
    ids=["fixed", "sliding", "two bucket rates", "FixedWindow", "SlidingWindow"],
)
def test_a_limiter_that_cannot_reserve_sleeps_until_the_retry_time_and_decides_again(
    clock: ManualClock, make: Callable[[ManualClock], Any]
) -> None:
    limiter = make(clock)
    keyed = isinstance(limiter, RateLimiter)
    assert acquire(limiter, keyed) and acquire(limiter, keyed)
    thread, out = start(lambda: acquire(limiter, keyed))
    time.sleep(0.05)
    assert thread.is_alive() and out == [], "it waits"
    # Until the retry time: 1 s for a fixed window, longer for a sliding one.
    clock.advance(limiter.peek("k").retry_after if keyed else limiter.peek().retry_after)
    thread.join(PATIENCE)
    assert out == [True]


def test_the_gil_is_free_while_a_thread_waits(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 1, "gcra", clock=clock)
    limiter.acquire("k")
    thread, _ = start(lambda: limiter.acquire("k"))
    eventually(lambda: limiter.peek("k").retry_after == 2.0, "the waiter reserved")
    counted = 0
    deadline = time.monotonic() + 0.1
    while time.monotonic() < deadline:
        counted += 1
    assert counted > 10_000, "this thread ran while the other slept"
    clock.advance(1)
    thread.join(PATIENCE)


def test_ctrl_c_while_waiting_gives_the_reservation_back(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 1, "token_bucket", clock=clock)
    limiter.acquire("k")
    timer = threading.Timer(0.1, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        limiter.acquire("k")
    timer.join()
    assert limiter.peek("k").retry_after == 1.0, "the turn it had reserved is free again"


@pytest.mark.parametrize("keyed", [True, False], ids=["RateLimiter", "Gcra"])
def test_tasks_wait_on_the_loop_in_order_and_a_cancelled_one_gives_its_turn_back(
    keyed: bool,
) -> None:
    clock = ManualClock()
    limiter = one_per_second(clock, keyed)

    def aacquire() -> Any:
        return limiter.aacquire("k") if keyed else limiter.aacquire()

    async def run() -> None:
        assert await aacquire()
        first = asyncio.ensure_future(aacquire())
        second = asyncio.ensure_future(aacquire())
        ticks = 0
        while waiting_for(limiter, keyed) < 3:
            await asyncio.sleep(0)  # the loop is free: this runs while they wait
            ticks += 1
        assert ticks >= 1
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert waiting_for(limiter, keyed) == 2, "the cancelled turn is free again"
        clock.advance(1)
        await asyncio.sleep(0.01)
        assert not second.done(), "the second waiter's turn was 2 s away"
        clock.advance(1)
        assert await asyncio.wait_for(second, PATIENCE) is True

    asyncio.run(run())


def test_aacquire_with_a_timeout_too_short_returns_false_at_once() -> None:
    clock = ManualClock()
    bucket = TokenBucket(capacity=1, increment=1, period_secs=10, clock=clock)

    async def run() -> list[bool]:
        return [await bucket.aacquire(), await bucket.aacquire(timeout=9.5)]

    assert asyncio.run(run()) == [True, False]


def test_throttle_as_a_context_manager_with_and_async_with(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 1, "gcra", clock=clock)
    with limiter.throttle("k") as decision:
        assert decision.allowed
    thread, out = start(lambda: limiter.throttle("k").__enter__().allowed)
    eventually(lambda: limiter.peek("k").retry_after == 2.0, "the waiter reserved")
    clock.advance(1)
    thread.join(PATIENCE)
    assert out == [True]
    window = FixedWindow(capacity=1, interval_secs=1, clock=clock)

    async def run() -> None:
        async with window.throttle():
            pass
        waiting = asyncio.ensure_future(window.throttle().__aenter__())
        await asyncio.sleep(0.01)
        assert not waiting.done()
        clock.advance(1)
        assert (await asyncio.wait_for(waiting, PATIENCE)).allowed

    asyncio.run(run())
    with pytest.raises(RateLimitExceeded), limiter.throttle("k", cost=2):
        pytest.fail("a cost above the capacity never runs the block")


def test_the_decorator_waits_with_wait_true_and_refuses_past_its_timeout(
    clock: ManualClock,
) -> None:
    limiter = RateLimiter(1, 1, "token_bucket", clock=clock)
    calls: list[str] = []

    @limiter.limit("job", wait=True, timeout=5)
    def job(name: str) -> str:
        calls.append(name)
        return name

    @rate_limit(limiter, "job", wait=True, timeout=0.5)
    def impatient() -> None:
        calls.append("impatient")

    assert job("a") == "a"
    with pytest.raises(RateLimitExceeded):
        impatient()
    thread, out = start(lambda: job("b"))
    eventually(lambda: limiter.peek("job").retry_after == 2.0, "the call reserved")
    clock.advance(1)
    thread.join(PATIENCE)
    assert out == ["b"] and calls == ["a", "b"]

    @limiter.limit("async-job", wait=True)
    async def async_job() -> int:
        return 7

    async def run() -> list[int]:
        first = await async_job()
        later = asyncio.ensure_future(async_job())
        await asyncio.sleep(0.01)
        assert not later.done()
        clock.advance(1)
        return [first, await asyncio.wait_for(later, PATIENCE)]

    assert asyncio.run(run()) == [7, 7]


@pytest.mark.parametrize(
    ("timeout", "error", "named"),
    [
        (-1, ValueError, "-1"),
        (math.nan, ValueError, "nan"),
        (True, TypeError, "bool"),
        ("1", TypeError, "str"),
    ],
)
def test_a_bad_timeout_is_refused_by_name(
    clock: ManualClock, timeout: object, error: type[Exception], named: str
) -> None:
    limiter = RateLimiter(1, 1, clock=clock)
    bucket = TokenBucket(capacity=1, increment=1, period_secs=1, clock=clock)
    for call in (
        lambda: limiter.acquire("k", timeout=timeout),
        lambda: bucket.acquire(timeout=timeout),
        lambda: asyncio.run(limiter.aacquire("k", timeout=timeout)),
        lambda: limiter.limit("k", wait=True, timeout=timeout),
    ):
        with pytest.raises(error) as raised:
            call()
        assert "`timeout`" in str(raised.value) and named in str(raised.value)
    assert limiter.remaining("k") == 1 and bucket.remaining() == 1, "nothing consumed"
    with pytest.raises(ValueError, match="wait=True"):
        limiter.limit("k", timeout=1)
    with pytest.raises(TypeError, match="`wait`"):
        limiter.limit("k", wait="yes")
    with pytest.raises(TypeError, match="key must be str, not int"):
        limiter.acquire(42)  # type: ignore[arg-type]


# Real time: 20 calls through 10/second (burst 10) go in 1.0 s: ten at once, then one every
# 0.1 s. Bounded at 1.3 s.


def test_twenty_calls_through_ten_a_second_take_a_second_in_threads() -> None:
    limiter = RateLimiter.from_rate("10/second", algorithm="token_bucket")
    began = time.monotonic()
    threads = [threading.Thread(target=lambda: [limiter.acquire("k") for _ in range(5)])]
    threads += [
        threading.Thread(target=lambda: [limiter.acquire("k") for _ in range(5)]) for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - began
    assert 0.995 <= took <= 1.3, took
    assert limiter.remaining("k") == 0


def test_twenty_calls_through_ten_a_second_take_a_second_in_asyncio() -> None:
    bucket = TokenBucket(capacity=10, increment=10, period_secs=1)

    async def run() -> float:
        began = time.monotonic()
        assert all(await asyncio.gather(*(bucket.aacquire() for _ in range(20))))
        return time.monotonic() - began

    took = asyncio.run(run())
    assert 0.995 <= took <= 1.3, took


def test_acquire_and_aacquire_on_redis_wait_for_the_servers_retry_time(
    redis_server: RedisServer,
) -> None:
    limiter = RateLimiter.from_rate(
        "20/second", algorithm="gcra", burst=1, storage=redis_server.url, key_prefix="waiting"
    )
    limiter.reset("k")
    began = time.monotonic()
    assert all(limiter.acquire("k") for _ in range(4))
    took = time.monotonic() - began
    assert 0.14 <= took <= 1.0, took  # three waits of 0.05 s

    async def run() -> float:
        began = time.monotonic()
        assert all(await asyncio.gather(*(limiter.aacquire("k2") for _ in range(4))))
        return time.monotonic() - began

    assert 0.14 <= asyncio.run(run()) <= 1.0
    assert not limiter.acquire("k", cost=2), "more than the burst never goes"


def test_acquire_on_shared_memory_waits_for_the_retry_time_and_decides_again(
    tmp_path: pathlib.Path,
) -> None:
    directory = tmp_path / "shm"
    directory.mkdir(mode=0o700)
    limiter = RateLimiter.from_rate(
        "20/second", algorithm="gcra", burst=1, storage=f"shm://waiting?path={directory}"
    )
    began = time.monotonic()
    assert all(limiter.acquire("k") for _ in range(4))
    took = time.monotonic() - began
    assert 0.14 <= took <= 1.0, took  # three waits of 0.05 s
    assert not limiter.acquire("k", timeout=0.01), "the next turn is 0.05 s away"
