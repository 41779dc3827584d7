"""The unkeyed limiters (TokenBucket, Gcra, FixedWindow, SlidingWindow): the same decisions as
a RateLimiter of the matching algorithm on one key, exact under threads, bad settings named."""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rust_py_rate_limit import (
    Decision,
    FixedWindow,
    Gcra,
    ManualClock,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
)

Unkeyed = TokenBucket | Gcra | FixedWindow | SlidingWindow

# (unkeyed, its keyed twin) from (capacity, rate limit, period seconds, clock)
Pair = Callable[[int, int, float, ManualClock], "tuple[Unkeyed, RateLimiter]"]


def token_bucket(capacity: int, limit: int, period: float, clock: ManualClock) -> Any:
    return (
        TokenBucket(capacity=capacity, increment=limit, period_secs=period, clock=clock),
        RateLimiter(limit, period, "token_bucket", burst=capacity, clock=clock),
    )


def gcra(capacity: int, limit: int, period: float, clock: ManualClock) -> Any:
    return (
        Gcra(limit=limit, period_secs=period, burst=capacity, clock=clock),
        RateLimiter(limit, period, "gcra", burst=capacity, clock=clock),
    )


def fixed(capacity: int, limit: int, period: float, clock: ManualClock) -> Any:
    return (
        FixedWindow(capacity=limit, interval_secs=period, clock=clock),
        RateLimiter(limit, period, "fixed", clock=clock),
    )


def sliding(capacity: int, limit: int, period: float, clock: ManualClock) -> Any:
    return (
        SlidingWindow(capacity=limit, interval_secs=period, clock=clock),
        RateLimiter(limit, period, "sliding", clock=clock),
    )


PAIRS: dict[str, Pair] = {
    "token_bucket": token_bucket,
    "gcra": gcra,
    "fixed": fixed,
    "sliding": sliding,
}

Op = tuple[str, float]


@pytest.mark.parametrize("kind", PAIRS)
@settings(max_examples=120, deadline=None)
@given(
    capacity=st.integers(1, 40),
    limit=st.integers(1, 40),
    period=st.sampled_from([0.001, 0.5, 1, 7.25, 3600]),
    ops=st.lists(
        st.one_of(
            st.tuples(st.just("advance"), st.floats(0, 2)),
            st.tuples(st.just("decide"), st.integers(0, 45).map(float)),
            st.tuples(st.just("process"), st.just(1.0)),
            st.tuples(st.just("peek"), st.just(0.0)),
            st.tuples(st.just("reset"), st.just(0.0)),
        ),
        max_size=60,
    ),
)
def test_each_decides_as_the_rate_limiter_of_its_algorithm_on_one_key(
    kind: str, capacity: int, limit: int, period: float, ops: list[Op]
) -> None:
    clock = ManualClock(1000)
    one, keyed = PAIRS[kind](capacity, limit, period, clock)
    for op, value in ops:
        if op == "advance":
            clock.advance(value * period)
        elif op == "decide":
            cost = int(value)
            if cost == 0:
                continue  # cost 0 is refused by both (checked in the bad-input test)
            assert one.decide(cost) == keyed.decide("k", cost), (op, value)
        elif op == "process":
            assert one.process() == keyed.allow("k"), op
        elif op == "peek":
            assert one.peek() == keyed.peek("k"), op
            assert one.remaining() == keyed.remaining("k"), op
        else:
            one.reset()
            keyed.reset("k")


def test_token_bucket_refills_continuously_at_increment_per_period(clock: ManualClock) -> None:
    bucket = TokenBucket(capacity=2, increment=1, period_secs=5, clock=clock)
    assert [bucket.process() for _ in range(3)] == [True, True, False]
    refused = bucket.decide()
    assert not refused and refused.retry_after == 5.0
    clock.advance(2.5)
    assert not bucket.process(), "half a token is not a token"
    clock.advance(2.5)
    assert bucket.process()
    clock.advance(100)
    assert bucket.remaining() == 2, "never more than the capacity"
    bucket.reset()
    assert bucket.remaining() == 2


@pytest.mark.parametrize("kind", PAIRS)
def test_threads_on_one_limiter_admit_exactly_its_capacity(kind: str) -> None:
    clock = ManualClock()
    one, _ = PAIRS[kind](20_000, 20_000, 86_400, clock)
    barrier = threading.Barrier(8)
    counts: list[int] = []

    def hammer() -> None:
        barrier.wait()
        counts.append(sum(one.process() for _ in range(5_000)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(counts) == 20_000
    assert not one.allow()


def test_repr_and_settings_read_back(clock: ManualClock) -> None:
    assert repr(TokenBucket(capacity=2, increment=1, period_secs=5)) == (
        "TokenBucket(capacity=2, increment=1, period_secs=5)"
    )
    assert repr(Gcra(limit=10, period_secs=0.5, burst=3, clock=clock)) == (
        "Gcra(limit=10, period_secs=0.5, burst=3, clock=ManualClock(...))"
    )
    assert repr(FixedWindow(capacity=3, interval_secs=1.5)) == (
        "FixedWindow(capacity=3, interval_secs=1.5)"
    )
    assert SlidingWindow(capacity=4, interval_secs=1).capacity == 4
    assert TokenBucket(capacity=2, increment=1, period_secs=5).capacity == 2
    assert Gcra(limit=10, period_secs=1).limit == 10
    assert isinstance(FixedWindow(capacity=3, interval_secs=1).decide(), Decision)


BAD_SETTINGS: list[tuple[Callable[..., object], dict[str, object], type[Exception], str]] = [
    (TokenBucket, {"capacity": 0, "increment": 1, "period_secs": 1}, ValueError, "`capacity`"),
    (TokenBucket, {"capacity": -2, "increment": 1, "period_secs": 1}, ValueError, "-2"),
    (TokenBucket, {"capacity": True, "increment": 1, "period_secs": 1}, TypeError, "bool"),
    (TokenBucket, {"capacity": 2.0, "increment": 1, "period_secs": 1}, TypeError, "float"),
    (TokenBucket, {"capacity": 2, "increment": 0, "period_secs": 1}, ValueError, "`increment`"),
    (TokenBucket, {"capacity": 2, "increment": 1, "period_secs": 0}, ValueError, "`period_secs`"),
    (TokenBucket, {"capacity": 2, "increment": 1, "period_secs": -1}, ValueError, "-1"),
    (TokenBucket, {"capacity": 2, "increment": 1, "period_secs": math.nan}, ValueError, "nan"),
    (TokenBucket, {"capacity": 2, "increment": 1, "period_secs": math.inf}, ValueError, "inf"),
    (TokenBucket, {"capacity": 2, "increment": 1, "period_secs": "1"}, TypeError, "'1'"),
    (TokenBucket, {"capacity": 2, "increment": 10**4, "period_secs": 1e-6}, ValueError, "nano"),
    (Gcra, {"limit": 0, "period_secs": 1}, ValueError, "`limit`"),
    (Gcra, {"limit": 5, "period_secs": 1, "burst": 0}, ValueError, "`burst`"),
    (Gcra, {"limit": 5, "period_secs": 1, "burst": 1.5}, TypeError, "`burst`"),
    (FixedWindow, {"capacity": 2**32, "interval_secs": 1}, ValueError, "`capacity`"),
    (FixedWindow, {"capacity": 3, "interval_secs": -0.5}, ValueError, "`interval_secs`"),
    (SlidingWindow, {"capacity": None, "interval_secs": 1}, TypeError, "`capacity`"),
    (SlidingWindow, {"capacity": 3, "interval_secs": math.nan}, ValueError, "`interval_secs`"),
    (SlidingWindow, {"capacity": 3, "interval_secs": 1, "clock": "now"}, TypeError, "`clock`"),
]


@pytest.mark.parametrize(("cls", "kwargs", "error", "named"), BAD_SETTINGS)
def test_bad_settings_are_refused_by_name(
    cls: Callable[..., object], kwargs: dict[str, object], error: type[Exception], named: str
) -> None:
    with pytest.raises(error) as raised:
        cls(**kwargs)
    assert named in str(raised.value)


@pytest.mark.parametrize("kind", PAIRS)
@pytest.mark.parametrize(
    ("cost", "error", "named"),
    [
        (0, ValueError, "`cost`"),
        (-1, ValueError, "-1"),
        (True, TypeError, "bool"),
        (1.0, TypeError, "float"),
    ],
)
def test_a_bad_cost_is_refused_by_name(
    kind: str, cost: object, error: type[Exception], named: str, clock: ManualClock
) -> None:
    one, _ = PAIRS[kind](3, 3, 1, clock)
    for call in (one.allow, one.decide, one.acquire):
        with pytest.raises(error) as raised:
            call(cost)  # type: ignore[arg-type]
        assert named in str(raised.value)
    assert one.remaining() == 3, "a refused call consumes nothing"


def test_a_cost_above_the_capacity_never_goes(clock: ManualClock) -> None:
    bucket = TokenBucket(capacity=3, increment=1, period_secs=1, clock=clock)
    refused = bucket.decide(4)
    assert not refused and refused.retry_after == math.inf
    assert not bucket.allow(2**70), "a cost beyond 64 bits is simply more than any capacity"
    assert bucket.remaining() == 3


@pytest.mark.parametrize("kind", PAIRS)
def test_process_takes_no_arguments_and_keeps_its_signature(kind: str, clock: ManualClock) -> None:
    one, _ = PAIRS[kind](1, 1, 60, clock)
    assert str(inspect.signature(one.process)) == "()"
    assert "one request" in (type(one).process.__doc__ or "")
    for call in (lambda: one.process(1), lambda: one.process(cost=1)):
        with pytest.raises(TypeError, match="argument"):
            call()
    assert one.process() is True and one.process() is False, "the refused calls took nothing"
