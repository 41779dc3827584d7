"""The async twins (aallow, acheck, adecide, aremaining, areset) give what the sync methods
give; on the in-memory limiter they are ready at once, with no event-loop round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from rust_py_rate_limit import ALGORITHMS, ManualClock, RateLimiter


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_twin_gives_what_its_sync_method_gives(algorithm: str) -> None:
    clock = ManualClock()
    twin = RateLimiter(3, 10, algorithm, clock=clock)
    sync = RateLimiter(3, 10, algorithm, clock=clock)

    async def run() -> None:
        for cost in (1, 2, 1, 5):
            assert await twin.aallow("a", cost) == sync.allow("a", cost)
            assert await twin.adecide("b", cost) == sync.decide("b", cost)
            assert await twin.acheck("c", cost) == sync.check("c", cost)
            assert await twin.aremaining("a") == sync.remaining("a")
            clock.advance(1.5)
        assert await twin.areset("a") is True
        assert await twin.areset("never-seen") is False
        assert await twin.aremaining("a") == 3

    asyncio.run(run())


def test_the_twins_count_like_the_sync_calls() -> None:
    limiter = RateLimiter(2, 60, clock=ManualClock())

    async def run() -> list[bool]:
        return [await limiter.aallow("k") for _ in range(3)]

    assert asyncio.run(run()) == [True, True, False]
    assert limiter.stats()["total_checks"] == 3


def test_ready_awaitables_work_with_gather_and_tasks() -> None:
    limiter = RateLimiter(5, 60, clock=ManualClock())

    async def run() -> tuple[list[bool], bool]:
        many = await asyncio.gather(*(limiter.aallow("k") for _ in range(6)))
        task = asyncio.ensure_future(limiter.aallow("other"))
        return list(many), await task

    assert asyncio.run(run()) == ([True] * 5 + [False], True)


def test_a_ready_value_is_there_before_any_await() -> None:
    limiter = RateLimiter(1, 60, clock=ManualClock())
    ready = limiter.aallow("k")
    assert ready.result() is True
    assert limiter.remaining("k") == 0  # counted by the call, as an awaited coroutine would be
    assert repr(ready) == "Ready(True)"


def test_throw_into_a_ready_awaitable_raises_it() -> None:
    ready = RateLimiter(1, 60).aallow("k")
    with pytest.raises(KeyError):
        ready.throw(KeyError("x"))


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda lim: lim.aallow(5), TypeError),
        (lambda lim: lim.aallow("k", 0), ValueError),
        (lambda lim: lim.adecide("k", True), TypeError),
        (lambda lim: lim.acheck(b"k"), TypeError),
        (lambda lim: lim.aremaining(None), TypeError),
        (lambda lim: lim.areset(1.0), TypeError),
    ],
)
def test_bad_arguments_raise_at_the_call(
    call: Callable[[RateLimiter], Awaitable[Any]], error: type[Exception]
) -> None:
    with pytest.raises(error):
        call(RateLimiter(1, 60))
