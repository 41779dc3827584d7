"""``RateLimiter.peek(key, cost)``: the decision ``decide`` would make, consuming nothing.

Two properties, checked with hypothesis for every algorithm, in memory and on a real
``redis-server`` (the session's fixtures), on a ``ManualClock``:

- interleaving peeks into a sequence of decisions changes nothing: every decision, every
  ``remaining()`` and the statistics match a limiter that was never peeked at;
- a peek answers exactly the ``Decision`` that ``decide`` returns at the same instant.

And: peeks count in no statistic, follow the storage policies as a decision does, answer a
refusal of the local deny cache, and refuse bad input exactly as ``decide`` does.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_support import RedisServer, RespClient
from servers import free_port

from rust_py_rate_limit import ALGORITHMS, Decision, ManualClock, RateLimiter, StorageError

#: The `timeout` of limiters whose tests are not about timeouts (a loaded host can be slow).
SAFE = 5.0

BUCKETS = ("token_bucket", "leaky_bucket", "gcra")

_prefixes = itertools.count()


@dataclass(frozen=True)
class Setup:
    algorithm: str
    rate: str
    burst: int | None = None
    max_keys: int | None = None

    def build(self, clock: ManualClock, **storage: Any) -> RateLimiter:
        return RateLimiter.from_rate(
            self.rate,
            self.algorithm,
            burst=self.burst,
            max_keys=self.max_keys,
            clock=clock,
            **storage,
        )


SETUPS = [Setup(a, rate) for a in ALGORITHMS for rate in ("3/second", "3/second; 10/minute")] + [
    Setup(a, "2/second", burst=4) for a in BUCKETS
]
#: A full map: new keys are refused until a sweep (at most one a second) finds expired ones.
FULL_MAP_SETUPS = [Setup(a, "2/second", max_keys=2) for a in ALGORITHMS]


@dataclass(frozen=True)
class Step:
    """Advance the clock, then: "decide", "peek" (alone) or "peek+decide" (at one instant)."""

    advance: float
    action: str
    key: str
    cost: int


def steps(advances: st.SearchStrategy[float], costs: st.SearchStrategy[int]) -> Any:
    return st.lists(
        st.builds(
            Step,
            advance=advances,
            action=st.sampled_from(["decide", "peek", "peek+decide"]),
            key=st.sampled_from(["a", "b", "c"]),
            cost=costs,
        ),
        min_size=1,
        max_size=30,
    )


steps_strategy = steps(
    st.one_of(
        st.sampled_from([0.0, 0.0, 0.0, 1e-9, 0.1, 1 / 3, 0.5, 0.999999999, 1.0, 1.5, 61.0]),
        st.floats(min_value=0, max_value=3, allow_nan=False),
    ),
    st.integers(min_value=1, max_value=6),
)
#: For a full map: costs that fit, and time in steps around the window and the sweep interval.
full_map_steps = steps(st.sampled_from([0.0, 0.0, 0.0, 0.25, 0.5, 1.0]), st.integers(1, 2))


def replay(
    plain: RateLimiter, peeked: RateLimiter, clock: ManualClock, steps: Sequence[Step]
) -> int:
    """Runs the decisions of `steps` on both limiters and the peeks on `peeked` only; checks
    both properties at every step. Returns how many peeks were made."""
    keys: list[str] = []
    peeks = 0
    for i, step in enumerate(steps):
        where = f"step {i}: {step}"
        if step.advance:
            clock.advance(step.advance)
        if step.key not in keys:
            keys.append(step.key)
        if "peek" in step.action:
            peek = peeked.peek(step.key, step.cost)
            peeks += 1
            assert isinstance(peek, Decision)
            assert peeked.peek(step.key, step.cost) == peek, f"{where}: peeking again differs"
            if step.action == "peek+decide":
                assert peeked.decide(step.key, step.cost) == peek, f"{where}: peek != decide"
                plain.decide(step.key, step.cost)
        else:
            assert peeked.decide(step.key, step.cost) == plain.decide(step.key, step.cost), where
        for k in keys:
            assert peeked.remaining(k) == plain.remaining(k), f"{where}: remaining({k!r})"
    counts = ("allowed", "blocked", "total_checks", "rejected_full", "storage_errors")
    assert [peeked.stats()[n] for n in counts] == [plain.stats()[n] for n in counts]
    if peeked.storage == plain.storage:
        assert peeked.stats() == plain.stats(), "peeks count in no statistic"
    return peeks


# --- In memory --------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(setup=st.sampled_from(SETUPS), steps=steps_strategy)
def test_peeks_change_nothing_and_answer_what_decide_does(setup: Setup, steps: list[Step]) -> None:
    clock = ManualClock()
    replay(setup.build(clock), setup.build(clock), clock, steps)


@settings(max_examples=150, deadline=None)
@given(setup=st.sampled_from(FULL_MAP_SETUPS), steps=full_map_steps)
def test_on_a_full_map_peeks_change_nothing_and_answer_what_decide_does(
    setup: Setup, steps: list[Step]
) -> None:
    clock = ManualClock()
    replay(setup.build(clock), setup.build(clock), clock, steps)


@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: f"{s.algorithm}-{s.rate}-{s.burst}")
def test_peek_reports_a_spent_key_and_a_cost_that_never_fits(
    setup: Setup, clock: ManualClock
) -> None:
    limiter = setup.build(clock)
    capacity = setup.burst or 3
    fits = limiter.peek("k", capacity)
    assert fits and fits.remaining == 0 and fits.retry_after == 0.0
    assert limiter.remaining("k") == capacity, "the peek consumed nothing"
    never = limiter.peek("k", capacity + 1)
    assert not never and never.retry_after == float("inf")
    while limiter.allow("k"):
        pass
    spent = limiter.peek("k")
    assert not spent and spent.retry_after > 0
    assert spent == limiter.decide("k")
    stats = limiter.stats()
    assert (stats["allowed"], stats["blocked"]) == (capacity, 2), "only the decisions count"


def test_a_full_map_peek_answers_as_decide_would(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 0.5, max_keys=1, clock=clock)
    assert limiter.allow("a")
    refused = limiter.peek("b")
    assert not refused and refused == limiter.decide("b"), "the map is full"
    assert limiter.stats()["rejected_full"] == 1, "only the decision counts"
    clock.advance(0.5)  # "a" has expired, but the next sweep for room is only due in 0.5 s
    refused = limiter.peek("b")
    assert not refused and refused == limiter.decide("b")
    clock.advance(0.5)  # now it is due
    assert limiter.peek("b"), "decide would sweep and find room"
    assert limiter.stats()["active_keys"] == 1, "the peek swept nothing"
    assert limiter.decide("b")


def test_peek_takes_the_cost_as_decide_does(clock: ManualClock) -> None:
    limiter = RateLimiter(5, 10, clock=clock)
    assert limiter.peek("k") == limiter.peek("k", 1) == limiter.peek("k", None)
    assert limiter.peek(key="k", cost=5).allowed
    assert not limiter.peek("k", 10**30).allowed


BAD_CALLS: list[tuple[Any, Any]] = [
    (1, 1),
    (b"k", 1),
    (None, 1),
    ("k", 0),
    ("k", -1),
    ("k", 1.5),
    ("k", True),
    ("k", "1"),
    ("k", -(10**30)),
]


@pytest.mark.parametrize(("key", "cost"), BAD_CALLS)
def test_bad_input_is_refused_exactly_as_decide_refuses_it(key: Any, cost: Any) -> None:
    limiter = RateLimiter(5, 10)
    with pytest.raises(Exception) as by_decide:
        limiter.decide(key, cost)
    for call in (limiter.peek, limiter.apeek):
        with pytest.raises(Exception) as by_peek:
            call(key, cost)
        assert type(by_peek.value) is type(by_decide.value)
        assert str(by_peek.value) == str(by_decide.value)
        assert type(by_peek.value) in (TypeError, ValueError)


def test_apeek_is_ready_at_once_in_memory(clock: ManualClock) -> None:
    limiter = RateLimiter(2, 10, clock=clock)
    limiter.allow("k")

    async def run() -> Decision:
        return await limiter.apeek("k", 1)

    assert asyncio.run(run()) == limiter.peek("k", 1) == Decision(True, 2, 0, 10.0, 0.0)
    assert limiter.apeek("k", 2).result() == limiter.peek("k", 2)  # type: ignore[attr-defined]
    assert limiter.stats()["total_checks"] == 1


# --- On Redis ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(setup=st.sampled_from(SETUPS), steps=steps_strategy, start=st.floats(0, 1e6))
def test_on_redis_peeks_change_nothing_and_answer_what_decide_does(
    redis_server: RedisServer, setup: Setup, steps: list[Step], start: float
) -> None:
    clock = ManualClock(start)
    memory = setup.build(clock)
    on_redis = setup.build(
        clock, storage=redis_server.url, key_prefix=f"peek{next(_prefixes)}", timeout=SAFE
    )
    # The decisions without peeks are made in memory: Redis with peeks must match them (the
    # Redis backend decides as the memory store does, see test_redis_backend.py).
    replay(memory, on_redis, clock, steps)


def test_on_redis_a_peek_writes_nothing(redis_server: RedisServer, redis: RespClient) -> None:
    for algorithm in ALGORITHMS:
        limiter = RateLimiter(3, 60, algorithm, storage=redis_server.url, timeout=SAFE)
        assert limiter.peek("k", 3)
        assert not limiter.peek("k", 4)
        assert redis.call("DBSIZE") == 0, algorithm
        limiter.allow("k")
        assert redis.call("DBSIZE") >= 1, algorithm
        redis.call("FLUSHALL")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_on_redis_apeek_gives_peek(
    algorithm: str, redis_server: RedisServer, redis: RespClient
) -> None:
    clock = ManualClock()
    limiter = RateLimiter.from_rate(
        "3/second; 10/minute", algorithm, clock=clock, storage=redis_server.url, timeout=SAFE
    )

    async def run() -> None:
        for cost in (1, 2, 1, 5, 1):
            assert await limiter.apeek("k", cost) == limiter.peek("k", cost)
            assert await limiter.apeek("k", cost) == limiter.decide("k", cost)
            clock.advance(0.4)

    asyncio.run(run())
    assert limiter.stats()["total_checks"] == 5


def awaited(make: Callable[[], Any]) -> Any:
    async def run() -> Any:
        return await make()

    return asyncio.run(run())


@pytest.mark.parametrize("policy", ["allow", "deny", "raise"])
def test_a_failed_peek_follows_the_policy_as_a_decision_does(policy: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    limiter = RateLimiter(5, 60, storage=url, on_storage_error=policy)
    for peek in (lambda: limiter.peek("k", 2), lambda: awaited(lambda: limiter.apeek("k", 2))):
        try:
            got: Decision | StorageError = peek()
        except StorageError as error:
            got = error
        try:
            want: Decision | StorageError = limiter.decide("k", 2)
        except StorageError as error:
            want = error
        if policy == "raise":
            assert isinstance(got, StorageError) and str(got) == str(want)
        else:
            assert got == want and got.allowed is (policy == "allow")
    stats = limiter.stats()
    assert stats["storage_errors"] == 4, "every failed round trip counts, peeks included"
    assert stats["total_checks"] == 0 if policy == "raise" else 2


def test_a_peek_answers_a_cached_refusal_and_caches_none(
    redis_server: RedisServer, redis: RespClient
) -> None:
    clock = ManualClock()
    limiter = RateLimiter(
        2, 60, storage=redis_server.url, clock=clock, local_deny_cache=True, timeout=SAFE
    )
    assert [limiter.allow("k"), limiter.allow("k")] == [True, True]
    assert not limiter.peek("k"), "a refusal seen only by a peek is not cached"
    redis.call("DEL", *redis.call("KEYS", "*"))  # Redis forgets: only a cache could refuse now
    assert limiter.peek("k"), "no refusal was cached by the peek"
    assert [limiter.allow("j"), limiter.allow("j"), limiter.allow("j")] == [True, True, False]
    redis.call("DEL", *redis.call("KEYS", "*"))
    clock.advance(20)
    cached = limiter.decide("j")
    assert not cached and cached.retry_after == 40.0, "the refusal comes from the cache"
    assert limiter.peek("j") == cached == limiter.decide("j")
    assert limiter.stats()["blocked"] == 3, "the peeks counted nothing"
