"""Every algorithm of the Rust core against the pure-Python reference models.

Random sequences of (time step, key, cost) run through a `RateLimiter` on a `ManualClock` and
through the model (`reference_models.py`); every field of every decision must agree (whether
asked through `decide()`, `check()` or `allow()`), and so must `remaining()` of every key.
`cleanup_expired()` at random points must never change a later decision, and must remove
exactly the keys whose past no longer matters.

The configurations reach the edges of the core: limits above 65,535 (where the single-rate
sliding window stores its counts as `u32` instead of `u16`) and up to 2**32 - 1, windows of
hours, days and a month, and so products `count * window_ns` far beyond 2**53 (and 2**64).
`event()` counts how often each edge is reached (`pytest --hypothesis-show-statistics`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from reference_models import (
    ALGORITHMS,
    BUCKET_ALGORITHMS,
    NS_PER_SECOND,
    Decision,
    Model,
    all_rates,
    reference_model,
)
from time_steps import Advance, advances

from rust_py_rate_limit import Decision as CoreDecision
from rust_py_rate_limit import ManualClock, RateLimiter

S = NS_PER_SECOND
KEYS = ("a", "b", "c")
#: The largest limit; above `NARROW` the sliding window stores its counts in a wider form.
MAX_COUNT = 2**32 - 1
NARROW = 2**16 - 1


def to_ns(seconds: float) -> int:
    """Seconds (int or float) to whole nanoseconds, as the core converts them."""
    return round(seconds * NS_PER_SECOND)


def as_seconds(ns: int | None) -> float:
    """How `Decision` reports nanoseconds: float seconds, `inf` for never."""
    return math.inf if ns is None else ns / NS_PER_SECOND


Fields = tuple[bool, int, int, float, float]


def core_fields(d: CoreDecision) -> Fields:
    return (d.allowed, d.limit, d.remaining, d.reset_after, d.retry_after)


def model_fields(d: Decision) -> Fields:
    retry = as_seconds(d.retry_after_ns)
    return (d.allowed, d.limit, d.remaining, as_seconds(d.reset_after_ns), retry)


def whole_seconds(ns: int | None) -> int | None:
    """How `check()` reports nanoseconds: whole seconds rounded up, None (JSON null) for never."""
    return None if ns is None else -(-ns // NS_PER_SECOND)


def model_check(d: Decision) -> dict[str, object]:
    return {
        "allowed": d.allowed,
        "limit": d.limit,
        "remaining": d.remaining,
        "reset_after_seconds": whole_seconds(d.reset_after_ns),
        "retry_after_seconds": whole_seconds(d.retry_after_ns),
    }


# --- Configurations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """One limiter configuration, buildable both as a `RateLimiter` and as a model."""

    algorithm: str
    #: `(limit, window_ns)` of each rate, in order.
    rates: tuple[tuple[int, int], ...]
    burst: int | None = None
    #: The `from_rate` string for several rates; None for `RateLimiter(limit, window_seconds)`.
    rate_text: str | None = None
    window_seconds: float = 0

    @classmethod
    def single(
        cls, algorithm: str, limit: int, window_seconds: float, burst: int | None = None
    ) -> Setup:
        rates = ((limit, to_ns(window_seconds)),)
        return cls(algorithm, rates, burst=burst, window_seconds=window_seconds)

    @classmethod
    def several(cls, algorithm: str, rate_text: str, rates: tuple[tuple[int, int], ...]) -> Setup:
        return cls(algorithm, rates, rate_text=rate_text)

    def limiter(self, clock: ManualClock) -> RateLimiter:
        if self.rate_text is not None:
            return RateLimiter.from_rate(self.rate_text, algorithm=self.algorithm, clock=clock)
        ((limit, _),) = self.rates
        return RateLimiter(
            limit, self.window_seconds, self.algorithm, burst=self.burst, clock=clock
        )

    def model(self) -> Model:
        if self.rate_text is not None:
            return all_rates(self.algorithm, self.rates)
        ((limit, window),) = self.rates
        return reference_model(self.algorithm, limit, window, burst=self.burst)

    def capacities(self) -> list[int]:
        """The largest cost each rate can ever admit."""
        if self.burst is not None:
            return [self.burst]
        return [limit for limit, _ in self.rates]


#: How the clock moves before a request: `("ns", n)` by n ns; `("retry", d)` / `("reset", d)`
#: by the key's last retry_after / reset_after plus d (never below 0).


@dataclass(frozen=True)
class Op:
    advance: Advance
    key: str
    cost: int
    #: Call `cleanup_expired()` after advancing, before the request.
    sweep: bool
    #: How the request is made: `decide`, `check` or `allow`.
    call: str = "decide"


@dataclass(frozen=True)
class Scenario:
    setup: Setup
    ops: list[Op]


def ops(setup: Setup) -> st.SearchStrategy[list[Op]]:
    # Costs from 1 to one above the largest capacity, biased to those every rate can admit.
    capacities = setup.capacities()
    costs = st.integers(1, min(capacities)) | st.integers(1, max(capacities) + 1)
    calls = st.sampled_from(["decide", "decide", "check", "allow"])
    op = st.builds(Op, advances(setup.rates), st.sampled_from(KEYS), costs, st.booleans(), calls)
    return st.lists(op, min_size=4, max_size=40)


#: Windows of a few thousand ns (exactly representable as `ns / 1e9` seconds), of a few
#: seconds, and of hours, days and a month.
window_seconds = st.one_of(
    st.integers(1_000, 5_000).map(lambda ns: ns / NS_PER_SECOND),
    st.sampled_from([0.001, 0.0025, 0.5, 1, 1.5, 2, 3]),
    st.sampled_from([3_600, 7_200, 86_400, 2 * 86_400, 30 * 86_400]),
)


def limits(algorithm: str, window_ns: int) -> st.SearchStrategy[int]:
    """Small limits, limits on either side of 65,535, and large ones up to 2**32 - 1 (for the
    bucket algorithms at most one request per nanosecond: at most `window_ns`)."""
    top = MAX_COUNT if algorithm not in BUCKET_ALGORITHMS else min(MAX_COUNT, window_ns)
    choices = [st.integers(1, 6), st.integers(1, 6)]  # the small ones reach every instant
    if top > NARROW:
        choices += [st.integers(NARROW - 4, NARROW + 4), st.integers(NARROW + 1, top)]
    return st.one_of(choices)


def note_edges(setup: Setup) -> None:
    """Counts the configurations at the edges the module doc names."""
    top = max(limit for limit, _ in setup.rates)
    longest = max(window for _, window in setup.rates)
    event(f"limit {'> 65,535' if top > NARROW else '<= 65,535'}")
    event(f"longest window {'>= 1 hour' if longest >= 3_600 * S else '< 1 hour'}")
    products = max(limit * window for limit, window in setup.rates)
    event(f"limit * window_ns {'> 2**53' if products > 2**53 else '<= 2**53'}")


@st.composite
def single_setups(draw: st.DrawFn, algorithm: str) -> Setup:
    window = draw(window_seconds)
    limit = draw(limits(algorithm, to_ns(window)))
    burst = None
    if algorithm in BUCKET_ALGORITHMS:
        burst = draw(st.none() | st.integers(1, 8))
    return Setup.single(algorithm, limit, window, burst)


#: `(seconds, spellings of "<limit> per that many seconds")` for the rate grammar.
PERIODS: list[tuple[int, list[str]]] = [
    (1, ["{}/second", "{} per second", "{}/1 seconds", "{}/s"]),
    (2, ["{}/2 seconds", "{} per 2 seconds", "{}/2s"]),
    (3, ["{}/3 seconds"]),
    (5, ["{} / 5 seconds"]),
    (60, ["{}/minute", "{}/60 seconds", "{}/m"]),
    (3_600, ["{}/hour", "{} per 60 minutes", "{}/h"]),
    (86_400, ["{}/day", "{} per 24 hours", "{}/d"]),
    (2 * 86_400, ["{}/2 days", "{}/2d"]),
    (30 * 86_400, ["{}/month", "{} per 30 days"]),
]


@st.composite
def several_setups(draw: st.DrawFn, algorithm: str) -> Setup:
    count = draw(st.integers(2, 3))
    parts, rates = [], []
    for _ in range(count):
        seconds, spellings = draw(st.sampled_from(PERIODS))
        limit = draw(limits(algorithm, seconds * S))
        parts.append(draw(st.sampled_from(spellings)).format(limit))
        rates.append((limit, seconds * S))
    return Setup.several(
        algorithm, draw(st.sampled_from(["; ", ";", ", ", "|"])).join(parts), tuple(rates)
    )


def scenarios(setups: st.SearchStrategy[Setup]) -> st.SearchStrategy[Scenario]:
    return setups.flatmap(lambda setup: st.builds(Scenario, st.just(setup), ops(setup)))


# --- Running a scenario against both --------------------------------------------------------


@dataclass
class Run:
    """A limiter and its model side by side, on the same clock."""

    setup: Setup
    clock: ManualClock = field(default_factory=ManualClock)
    now: int = 0
    #: The model's last decision per key (to step to its retry/reset instants).
    last: dict[str, Decision] = field(default_factory=dict)
    #: Keys the limiter holds state for: admitted since they were last swept.
    tracked: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)
    #: The most a key had used of a limit after an admitted request (`limit - remaining`).
    most_used: int = 0

    def __post_init__(self) -> None:
        self.limiter = self.setup.limiter(self.clock)
        self.model = self.setup.model()

    def advance(self, ns: int) -> None:
        # Whole seconds as an int, the rest as a float below 1 s: both exact in nanoseconds
        # however long the step (months, with a month's window).
        whole, rest = divmod(ns, S)
        if whole > 0:
            self.clock.advance(whole)
            self.now += whole * S
        if rest > 0:
            self.clock.advance(rest / S)
            self.now += to_ns(rest / S)
        if ns > 0:
            self.log.append(f"advance {ns} ns -> t={self.now}")
        # `now()` is float seconds: exact below 2**53 ns (104 days), within a rounding above.
        seconds = self.now / S
        assert abs(self.clock.now() - seconds) <= (0 if self.now < 2**53 else math.ulp(seconds))

    def step_for(self, advance: Advance, key: str) -> int:
        how, n = advance
        if how == "ns":
            return n
        last = self.last.get(key)
        if last is None:
            return 0
        base = last.retry_after_ns if how == "retry" else last.reset_after_ns
        return max(0, (base or 0) + n)

    def where(self) -> str:
        return f"{self.setup}\n" + "\n".join(self.log[-12:])

    def decide(self, key: str, cost: int, call: str = "decide") -> Decision:
        self.log.append(f"t={self.now} {call}({key!r}, {cost})")
        want = self.model.decide(key, self.now, cost)
        if call == "decide":
            assert core_fields(self.limiter.decide(key, cost)) == model_fields(want), self.where()
        elif call == "check":
            assert self.limiter.check(key, cost) == model_check(want), self.where()
        else:
            assert self.limiter.allow(key, cost) == want.allowed, self.where()
        if want.allowed:
            self.tracked.add(key)
            self.most_used = max(self.most_used, want.limit - want.remaining)
        self.last[key] = want
        self.check_remaining()
        return want

    def check_remaining(self) -> None:
        for key in KEYS:
            want = self.model.peek(key, self.now).remaining
            assert self.limiter.remaining(key) == want, f"remaining({key!r})\n{self.where()}"

    def sweep(self) -> None:
        self.log.append(f"t={self.now} cleanup_expired()")
        idle = {key for key in self.tracked if self.model.is_idle(key, self.now)}
        assert self.limiter.cleanup_expired() == len(idle), self.where()
        self.tracked -= idle
        self.check_remaining()

    def note_counts(self) -> None:
        event(f"a key used {'> 65,535' if self.most_used > NARROW else '<= 65,535'} of its limit")

    def play(self, op: Op) -> Decision:
        self.advance(self.step_for(op.advance, op.key))
        if op.sweep:
            self.sweep()
        return self.decide(op.key, op.cost, op.call)


# --- Properties ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_one_rate_agrees_with_the_reference_model(algorithm: str, data: st.DataObject) -> None:
    scenario = data.draw(scenarios(single_setups(algorithm)), label="scenario")
    note_edges(scenario.setup)
    run = Run(scenario.setup)
    for op in scenario.ops:
        run.play(op)
    run.note_counts()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_several_rates_agree_with_the_reference_model(algorithm: str, data: st.DataObject) -> None:
    scenario = data.draw(scenarios(several_setups(algorithm)), label="scenario")
    note_edges(scenario.setup)
    run = Run(scenario.setup)
    for op in scenario.ops:
        run.play(op)
    run.note_counts()


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_retry_after_is_the_first_instant_the_same_request_passes(
    algorithm: str, data: st.DataObject
) -> None:
    setups = single_setups(algorithm) | several_setups(algorithm)
    scenario = data.draw(scenarios(setups), label="scenario")
    note_edges(scenario.setup)
    run = Run(scenario.setup)
    for op in scenario.ops:
        run.play(op)
    key = data.draw(st.sampled_from(KEYS), label="key")
    cost = data.draw(st.integers(1, min(scenario.setup.capacities())), label="cost")
    # Spend at this instant all that remains (one request, however large the limit): then the
    # request is denied; wait exactly as told.
    left = run.model.peek(key, run.now).remaining
    if left > 0:
        assert run.decide(key, left).allowed, run.where()
    denied = run.decide(key, cost)
    assert not denied.allowed and denied.retry_after_ns is not None, run.where()
    assert denied.retry_after_ns > 0
    run.advance(denied.retry_after_ns - 1)
    assert not run.decide(key, cost).allowed, "one nanosecond early: still denied"
    run.advance(1)
    assert run.decide(key, cost).allowed, "exactly at retry_after: admitted"


@st.composite
def bucket_runs(draw: st.DrawFn) -> tuple[int, int, int | None, list[tuple[int, str, int]]]:
    """`(limit, window_ns, burst, steps)`: windows of microseconds, an hour or a day, limits
    small or up to one per nanosecond, steps of `(ns, key, cost)`."""
    window = draw(st.integers(1_000, 5_000) | st.sampled_from([3_600 * S, 86_400 * S]))
    limit = draw(limits("token_bucket", window))
    burst = draw(st.none() | st.integers(1, 8))
    capacity = limit if burst is None else burst
    step = st.integers(0, 2_000) | st.integers(0, window)
    cost = st.integers(1, 9) | st.integers(1, capacity + 1)
    steps = draw(st.lists(st.tuples(step, st.sampled_from(KEYS), cost), max_size=40))
    return limit, window, burst, steps


@settings(max_examples=200, deadline=None)
@given(bucket_runs())
def test_the_three_bucket_formulations_agree(
    run: tuple[int, int, int | None, list[tuple[int, str, int]]],
) -> None:
    """Tokens, meter level and TAT are different state, but the same policy."""
    limit, window, burst, steps = run
    event(f"limit {'> 65,535' if limit > NARROW else '<= 65,535'}")
    event(f"window {'>= 1 hour' if window >= 3_600 * S else '< 1 hour'}")
    models = [reference_model(name, limit, window, burst=burst) for name in BUCKET_ALGORITHMS]
    now = 0
    for step, key, cost in steps:
        now += step
        decisions = {model.decide(key, now, cost) for model in models}
        assert len(decisions) == 1, (now, key, cost, decisions)
        assert len({model.peek(key, now) for model in models}) == 1
        assert len({model.is_idle(key, now) for model in models}) == 1


# --- Hand-written vectors -----------------------------------------------------------------


class Vector(NamedTuple):
    at_ns: int
    key: str
    cost: int
    allowed: bool
    limit: int
    remaining: int
    retry_after_ns: int | None


V = Vector
T, F = True, False

VECTORS: dict[str, tuple[Setup, list[Vector]]] = {
    # 3 per 10 us; a key's window opens at its first request.
    "fixed": (
        Setup.single("fixed", 3, 10_000 / S),
        [
            V(0, "a", 1, T, 3, 2, 0),  # opens a's window [0, 10000)
            V(100, "a", 2, T, 3, 0, 0),
            V(200, "a", 1, F, 3, 0, 9_800),  # until a's window ends
            V(200, "b", 1, T, 3, 2, 0),  # keys are independent
            V(9_999, "a", 1, F, 3, 0, 1),
            V(10_000, "a", 4, F, 3, 3, None),  # a new window; above the limit: never
            V(10_000, "a", 3, T, 3, 0, 0),  # the denial consumed nothing
            V(10_001, "a", 1, F, 3, 0, 9_999),
        ],
    ),
    # 4 per 1 us; the previous window weighs by how much of it a sliding window still covers.
    "sliding": (
        Setup.single("sliding", 4, 1_000 / S),
        [
            V(0, "a", 4, T, 4, 0, 0),
            V(100, "a", 1, F, 4, 0, 1_150),  # the 4 must roll over and fade to 3: at 1250
            V(1_249, "a", 1, F, 4, 0, 1),  # 4 * 751/1000 + 1 > 4
            V(1_250, "a", 1, T, 4, 0, 0),  # 4 * 750/1000 + 1 = 4
            V(1_300, "a", 2, F, 4, 0, 450),  # 4 * (1000 - e)/1000 + 1 + 2 <= 4 at e = 750
            V(1_750, "a", 2, T, 4, 0, 0),
            V(2_500, "a", 1, T, 4, 1, 0),  # next window: 3 * 500/1000 + 1 = 2.5 used
            V(4_000, "a", 1, T, 4, 3, 0),  # two windows on: nothing left to weigh
        ],
    ),
    # 10 per 1 us (one token per 100 ns), at most 3 tokens.
    "token_bucket": (
        Setup.single("token_bucket", 10, 1_000 / S, burst=3),
        [
            V(0, "a", 1, T, 10, 2, 0),
            V(0, "a", 2, T, 10, 0, 0),
            V(0, "a", 1, F, 10, 0, 100),  # one token every 100 ns
            V(99, "a", 1, F, 10, 0, 1),  # 0.99 tokens
            V(100, "a", 1, T, 10, 0, 0),
            V(150, "a", 1, F, 10, 0, 50),
            V(1_000, "a", 3, T, 10, 0, 0),  # refilled, but only up to the burst
            V(1_000, "a", 4, F, 10, 0, None),  # more than the bucket holds: never
            V(1_250, "a", 2, T, 10, 0, 0),  # 2.5 tokens, 0.5 left
        ],
    ),
    # 2 per 1 us: the meter drains one unit per 500 ns and holds 2.
    "leaky_bucket": (
        Setup.single("leaky_bucket", 2, 1_000 / S),
        [
            V(0, "a", 2, T, 2, 0, 0),  # meter at 2 of 2
            V(250, "a", 1, F, 2, 0, 250),  # drained to 1.5; 1 more fits at 1.0
            V(500, "a", 1, T, 2, 0, 0),
            V(2_000, "a", 1, T, 2, 1, 0),  # drained empty long ago
            V(2_000, "b", 3, F, 2, 2, None),
        ],
    ),
    # 3 per 1 us: emission interval round(1000 / 3) = 333 ns, tolerance 3 * 333 = 999 ns.
    "gcra": (
        Setup.single("gcra", 3, 1_000 / S),
        [
            V(0, "a", 1, T, 3, 2, 0),  # TAT 333
            V(0, "a", 2, T, 3, 0, 0),  # TAT 999
            V(1, "a", 1, F, 3, 0, 332),  # TAT 1332 would be 1331 ahead; conforms at 333
            V(333, "a", 1, T, 3, 0, 0),  # TAT 1332
            V(1_332, "a", 3, T, 3, 0, 0),  # TAT 2331
            V(1_500, "a", 1, F, 3, 0, 165),  # TAT 2664 conforms at 2664 - 999
        ],
    ),
    # 1 per second and 2 per minute: both must admit; a denial consumes from neither.
    "fixed, several rates": (
        Setup.several("fixed", "1/second; 2/minute", ((1, S), (2, 60 * S))),
        [
            V(0, "a", 1, T, 1, 0, 0),  # the second rate has 1 left, the first 0
            V(0, "a", 1, F, 1, 0, S),  # the first denies; the minute rate keeps its slot
            V(S, "a", 1, T, 2, 0, 0),  # both at 0 left: the minute resets later
            V(2 * S, "a", 1, F, 2, 0, 58 * S),  # the minute rate denies
            V(60 * S, "a", 2, F, 1, 1, None),  # above the first limit: never
            V(60 * S, "a", 1, T, 1, 0, 0),
        ],
    ),
    # 1 per second and 2 per 2 seconds: when two rates are equally restrictive, the first
    # (in the order given) is reported.
    "fixed, several rates, ties": (
        Setup.several("fixed", "1/second; 2/2 seconds", ((1, S), (2, 2 * S))),
        [
            V(0, "a", 1, T, 1, 0, 0),
            V(S, "a", 1, T, 1, 0, 0),  # both 0 left and full again at 2 s
            V(S, "a", 1, F, 1, 0, S),  # both deny until 2 s
            V(2 * S, "a", 2, F, 1, 1, None),  # never by the first; the second would admit
        ],
    ),
}


@pytest.mark.parametrize("name", VECTORS)
def test_hand_written_vectors(name: str) -> None:
    setup, vectors = VECTORS[name]
    run = Run(setup)
    for v in vectors:
        run.advance(v.at_ns - run.now)
        expected = (v.allowed, v.limit, v.remaining, v.retry_after_ns)
        d = run.decide(v.key, v.cost)  # also checks the limiter agrees with the model
        assert (d.allowed, d.limit, d.remaining, d.retry_after_ns) == expected, v
