"""The Redis backend's Lua scripts (`src/store/redis/scripts/`) against the in-memory core.

Each script is loaded with SCRIPT LOAD into a real `redis-server` and called with EVALSHA, the
way the Rust side calls it (see the scripts' README). Random sequences of (time step, key,
cost) drive a script and a `RateLimiter` on a `ManualClock` side by side: every field of every
decision must be identical, `remaining()` must match the script's peek (whose other fields
must match the reference model's peek), and deleting a Redis key once its state has expired
(what the key's TTL does) must never change a decision.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from redis_support import (
    RedisError,
    RedisServer,
    RespClient,
    on_server_clock,
    ttl_given,
)
from reference_models import (
    BUCKET_ALGORITHMS,
    NS_PER_SECOND,
    AllRates,
    Model,
    reference_model,
)
from time_steps import advances

from rust_py_rate_limit import ALGORITHMS, ManualClock, RateLimiter
from rust_py_rate_limit import Decision as CoreDecision

SCRIPTS = Path(__file__).resolve().parent.parent / "src" / "store" / "redis" / "scripts"


def script_source(name: str) -> str:
    """A script as it is sent to Redis: its `-- #include <file>` lines replaced by the files
    (the Rust side assembles them the same way)."""
    lines = []
    for line in (SCRIPTS / name).read_text().splitlines(keepends=True):
        if line.startswith("-- #include "):
            lines.append((SCRIPTS / line.removeprefix("-- #include ").strip()).read_text())
        else:
            lines.append(line)
    return "".join(lines)


SCRIPT_FILES = {
    "fixed": "fixed_window.lua",
    "sliding": "sliding_window.lua",
    "token_bucket": "bucket.lua",
    "leaky_bucket": "bucket.lua",
    "gcra": "bucket.lua",
}
NS_PER_MS = 1_000_000
US_PER_MS = 1_000
MAX_EXACT = 2**53
S = NS_PER_SECOND
KEYS = ("a", "b", "c")


@pytest.fixture(scope="module")
def client(redis_server: RedisServer) -> Iterator[RespClient]:
    """One connection for the module (hypothesis runs many examples per test)."""
    if redis_server.process is None:  # a fault test killed it
        redis_server.start()
    with redis_server.client() as client:
        yield client


@pytest.fixture
def redis(client: RespClient) -> RespClient:
    client.call("FLUSHALL")
    return client


class Reply(NamedTuple):
    """A script's answer, in the caller's unit; `retry_after` None for never."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: int
    retry_after: int | None


class ScriptLimiter:
    """What the Rust side does: one EVALSHA per decision over all the key's rates."""

    def __init__(
        self,
        client: RespClient,
        algorithm: str,
        rates: Sequence[tuple[int, int]],
        burst: int | None = None,
        *,
        unit_per_ms: int = NS_PER_MS,
        min_ttl_ms: int = 0,
        prefix: str = "rl",
    ) -> None:
        self.client = client
        self.algorithm = algorithm
        self.rates = list(rates)
        self.unit_per_ms = unit_per_ms
        self.min_ttl_ms = min_ttl_ms
        self.prefix = prefix
        source = script_source(SCRIPT_FILES[algorithm])
        self.sha = client.call("SCRIPT", "LOAD", source)
        self.params: list[int] = []
        for limit, window in self.rates:
            if algorithm in BUCKET_ALGORITHMS:
                # As the core builds a Bucket: T rounded to the nearest unit, burst = limit.
                interval = (window + limit // 2) // limit
                self.params += [limit, interval, burst or limit]
            else:
                self.params += [limit, window]

    def keys(self, key: str) -> list[str]:
        return [f"{{{self.prefix}:{key}}}:{i}" for i in range(len(self.rates))]

    def call(self, mode: str, key: str, now: int | str, cost: int) -> Reply:
        keys = self.keys(key)
        args = [mode, now, cost, self.unit_per_ms, self.min_ttl_ms, *self.params]
        allowed, limit, remaining, reset, retry = self.client.call(
            "EVALSHA", self.sha, len(keys), *keys, *args
        )
        assert allowed in (0, 1)
        return Reply(bool(allowed), limit, remaining, reset, None if retry == -1 else retry)

    def decide(self, key: str, now: int | str, cost: int = 1) -> Reply:
        return self.call("decide", key, now, cost)

    def peek(self, key: str, now: int | str) -> Reply:
        return self.call("peek", key, now, 0)

    def expired(self, rate: int, value: str, now: int) -> bool:
        """Whether a stored state no longer matters (the core's `is_expired`)."""
        _, window = self.rates[rate]
        numbers = [int(n) for n in value.split()]
        if self.algorithm == "fixed":
            (start, _) = numbers
            return now - start >= window
        if self.algorithm == "sliding":
            (start, cur, _) = numbers
            elapsed = now - start
            return elapsed >= 2 * window or (elapsed >= window and cur == 0)
        (tat,) = numbers
        return tat <= now


def as_seconds(ns: int | None) -> float:
    """How `Decision` reports nanoseconds: float seconds, `inf` for never."""
    return math.inf if ns is None else ns / NS_PER_SECOND


def core_fields(d: CoreDecision) -> tuple[bool, int, int, float, float]:
    return (d.allowed, d.limit, d.remaining, d.reset_after, d.retry_after)


def reply_fields(r: Reply) -> tuple[bool, int, int, float, float]:
    return (r.allowed, r.limit, r.remaining, as_seconds(r.reset_after), as_seconds(r.retry_after))


def to_ns(seconds: float) -> int:
    return round(seconds * NS_PER_SECOND)


# --- Configurations ------------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    algorithm: str
    #: `(limit, window_seconds)` of each rate; several rates go through `from_rate`.
    rates: tuple[tuple[int, float], ...]
    burst: int | None = None

    def limiter(self, clock: ManualClock) -> RateLimiter:
        if len(self.rates) == 1:
            ((limit, window),) = self.rates
            return RateLimiter(limit, window, self.algorithm, burst=self.burst, clock=clock)
        text = "; ".join(f"{limit}/{window} seconds" for limit, window in self.rates)
        return RateLimiter.from_rate(text, self.algorithm, clock=clock)

    def rates_ns(self) -> list[tuple[int, int]]:
        return [(limit, to_ns(window)) for limit, window in self.rates]

    def model(self) -> Model:
        burst = self.burst if len(self.rates) == 1 else None
        return AllRates(
            [
                reference_model(self.algorithm, limit, window, burst=burst)
                for limit, window in self.rates_ns()
            ]
        )

    def capacities(self) -> list[int]:
        return [self.burst] if self.burst is not None else [limit for limit, _ in self.rates]


@st.composite
def single_setups(draw: st.DrawFn, algorithm: str) -> Setup:
    limit = draw(st.integers(1, 6))
    # A few thousand ns (TTLs of 1 ms, rounded up) to a few seconds.
    window = draw(
        st.integers(1_000, 5_000).map(lambda ns: ns / NS_PER_SECOND)
        | st.sampled_from([0.0025, 0.5, 1, 1.5, 1.0000005, 3])
    )
    burst = None
    if algorithm in BUCKET_ALGORITHMS:
        burst = draw(st.none() | st.integers(1, 8))
    return Setup(algorithm, ((limit, window),), burst)


@st.composite
def several_setups(draw: st.DrawFn, algorithm: str) -> Setup:
    periods = draw(st.lists(st.sampled_from([1, 2, 3, 5, 60]), min_size=2, max_size=3))
    rates = tuple((draw(st.integers(1, 8)), period) for period in periods)
    return Setup(algorithm, rates)


@dataclass(frozen=True)
class Op:
    #: ("ns", n): advance n ns; ("retry", d) / ("reset", d): by the key's last retry_after /
    #: reset_after plus d (at least 0), the instants where decisions change.
    advance: tuple[str, int]
    key: str
    cost: int
    #: "decide", "peek", or "expire": delete every Redis key whose state has expired, as its
    #: TTL does, and check the core forgets the same keys.
    action: str


def ops(setup: Setup) -> st.SearchStrategy[list[Op]]:
    capacities = setup.capacities()
    costs = st.integers(1, min(capacities)) | st.integers(1, max(capacities) + 1)
    actions = st.sampled_from(["decide", "decide", "decide", "peek", "expire"])
    op = st.builds(Op, advances(setup.rates_ns()), st.sampled_from(KEYS), costs, actions)
    return st.lists(op, min_size=4, max_size=40)


def run_against_core(redis: RespClient, setup: Setup, steps: list[Op]) -> None:
    """Drives the script, the core and the reference model with `steps`; asserts they agree."""
    redis.call("FLUSHALL")
    clock = ManualClock()
    core = setup.limiter(clock)
    assert [(limit, to_ns(window)) for limit, window in core.rates] == setup.rates_ns()
    model = setup.model()
    # Nothing expires on its own during the test: `expire` steps delete expired states.
    script = ScriptLimiter(
        redis, setup.algorithm, setup.rates_ns(), setup.burst, min_ttl_ms=3_600_000
    )
    now = 0
    last: dict[str, Reply] = {}
    for i, op in enumerate(steps):
        kind, n = op.advance
        if kind == "ns":
            step = n
        else:
            previous = last.get(op.key)
            wait = 0 if previous is None else getattr(previous, f"{kind}_after")
            step = max(0, (wait if wait is not None else 0) + n)
        if step:
            clock.advance(step / NS_PER_SECOND)
            now += step
        assert to_ns(clock.now()) == now
        where = f"step {i}: {op} at {now} ns"
        if op.action == "decide":
            reply = script.decide(op.key, now, op.cost)
            assert reply_fields(reply) == core_fields(core.decide(op.key, op.cost)), where
            expected = model.decide(op.key, now, op.cost)
            assert tuple(reply) == tuple(expected), where
            last[op.key] = reply
        elif op.action == "peek":
            for key in KEYS:
                reply = script.peek(key, now)
                assert reply.remaining == core.remaining(key), where
                assert tuple(reply) == tuple(model.peek(key, now)), where
        else:
            expired, idle = [], 0
            for key in KEYS:
                states = [redis.call("GET", k) for k in script.keys(key)]
                stale = [
                    k
                    for rate, (k, value) in enumerate(zip(script.keys(key), states, strict=True))
                    if value is not None and script.expired(rate, value, now)
                ]
                if stale and len(stale) == sum(v is not None for v in states):
                    idle += 1
                expired += stale
            assert core.cleanup_expired() == idle, where
            if expired:
                assert redis.call("DEL", *expired) == len(expired)


# --- The scripts decide exactly as the core ------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_one_rate_decides_as_the_core(client: RespClient, algorithm: str, data: Any) -> None:
    setup = data.draw(single_setups(algorithm), label="setup")
    run_against_core(client, setup, data.draw(ops(setup), label="ops"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_several_rates_decide_as_the_core(client: RespClient, algorithm: str, data: Any) -> None:
    setup = data.draw(several_setups(algorithm), label="setup")
    run_against_core(client, setup, data.draw(ops(setup), label="ops"))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_large_limits_and_long_windows_stay_exact(
    client: RespClient, algorithm: str, data: Any
) -> None:
    """Limits up to u32::MAX over days in ns: the sliding window's weighted count
    `prev * (W - elapsed)` is far beyond 2^53, and times reach ~2^52."""
    limit = data.draw(st.sampled_from([1_000_000, 123_456_789, 2**32 - 1]), label="limit")
    days = data.draw(st.sampled_from([1, 3]), label="days")
    setup = Setup(algorithm, ((limit, days * 86_400),))
    window = days * 86_400 * S
    steps = st.integers(0, 3 * window // 2) | st.integers(0, window // limit * 3)
    costs = st.integers(1, limit) | st.integers(limit // 2, limit + 1) | st.just(1)
    op = st.builds(
        Op, steps.map(lambda n: ("ns", n)), st.sampled_from(KEYS), costs, st.just("decide")
    )
    run_against_core(client, setup, data.draw(st.lists(op, min_size=2, max_size=10), label="ops"))


def test_a_cost_above_the_capacity_is_never_admitted_and_consumes_nothing(
    redis: RespClient,
) -> None:
    for algorithm in ALGORITHMS:
        redis.call("FLUSHALL")
        clock = ManualClock()
        setup = Setup(algorithm, ((3, 1), (5, 10)))
        core = setup.limiter(clock)
        script = ScriptLimiter(redis, algorithm, setup.rates_ns())
        assert script.decide("k", 0, 1).allowed
        never = script.decide("k", 0, 4)
        assert never.retry_after is None and not never.allowed, algorithm
        assert never.limit == 3
        core.decide("k", 1)
        assert reply_fields(never) == core_fields(core.decide("k", 4)), algorithm
        # A huge cost (beyond u64 in the core) is denied just the same.
        assert script.decide("k", 0, 2**64 - 1).retry_after is None
        assert script.peek("k", 0).remaining == core.remaining("k") == 2, algorithm


# --- TTLs: a key lives exactly as long as its state matters --------------------------------


def pttl(redis: RespClient, key: str) -> int:
    return int(redis.call("PTTL", key))


def assert_ttl(redis: RespClient, key: str, expected_ms: int, when: tuple[int, int]) -> None:
    """The script run between the server times `when` gave `key` a TTL of `expected_ms`
    (to the millisecond, however long the test has taken since)."""
    low, high = ttl_given(redis, key, when)
    assert low <= expected_ms <= high, (key, expected_ms, (low, high))


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(
    "rates",
    # A window (or a 2 * T) that is no whole number of ms: the TTL is rounded up.
    [((3, 1.0000005),), ((3, 1), (5, 10))],
    ids=["one rate", "two rates"],
)
def test_each_rate_key_expires_when_the_core_forgets_it(
    redis: RespClient, algorithm: str, rates: tuple[tuple[int, float], ...]
) -> None:
    setup = Setup(algorithm, rates)
    script = ScriptLimiter(redis, algorithm, setup.rates_ns())
    clock = ManualClock()
    core = setup.limiter(clock)
    t0 = 250 * NS_PER_MS
    clock.advance(t0 / S)
    reply, when = on_server_clock(redis, lambda: script.decide("k", t0, 2))
    assert reply.allowed and core.decide("k", 2).allowed
    # When each rate's state stops mattering, in ns after t0.
    lives = []
    for limit, window in setup.rates_ns():
        if algorithm == "fixed":
            lives.append(window)
        elif algorithm == "sliding":
            lives.append(2 * window)
        else:
            lives.append(2 * ((window + limit // 2) // limit))
    for key, life in zip(script.keys("k"), lives, strict=True):
        assert_ttl(redis, key, -(-life // NS_PER_MS), when)
    # The core forgets the key exactly when its longest-lived state expires.
    clock.advance((max(lives) - 1) / S)
    assert core.cleanup_expired() == 0
    clock.advance(1 / S)
    assert core.cleanup_expired() == 1
    # A denied request and a peek write nothing: neither the states nor their expiry (keys
    # that live an hour, so that none vanishes on a slow host while this runs).
    lasting = ScriptLimiter(
        redis, algorithm, setup.rates_ns(), min_ttl_ms=3_600_000, prefix="lasting"
    )
    assert lasting.decide("k", t0, 2).allowed

    def stored() -> list[tuple[str, int]]:
        return [(redis.call("GET", k), redis.call("PEXPIRETIME", k)) for k in lasting.keys("k")]

    before = stored()
    assert all(value is not None and expiry > 0 for value, expiry in before)
    assert not lasting.decide("k", t0, 6).allowed
    lasting.peek("k", t0)
    assert stored() == before


def test_the_ttl_is_at_least_min_ttl_ms(redis: RespClient) -> None:
    script = ScriptLimiter(redis, "gcra", [(10, S)], min_ttl_ms=5_000)
    reply, when = on_server_clock(redis, lambda: script.decide("k", 0))
    assert reply.allowed  # the state matters for T = 100 ms
    assert_ttl(redis, script.keys("k")[0], 5_000, when)
    short = ScriptLimiter(redis, "gcra", [(10, S)], prefix="short")
    reply, when = on_server_clock(redis, lambda: short.decide("k", 0))
    assert reply.allowed
    assert_ttl(redis, short.keys("k")[0], 100, when)


# --- Server time -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_an_empty_now_uses_the_server_time_in_microseconds(
    redis: RespClient, algorithm: str
) -> None:
    # 100 s: the four requests below fit one emission interval (25 s) on any host.
    window_us = 100_000_000
    script = ScriptLimiter(redis, algorithm, [(4, window_us)], unit_per_ms=US_PER_MS)
    reply, when = on_server_clock(redis, lambda: script.decide("k", ""))
    before, after = when
    assert reply.allowed and reply.remaining == 3 and reply.retry_after == 0
    key = script.keys("k")[0]
    value = [int(n) for n in redis.call("GET", key).split()]
    interval = window_us // 4
    if algorithm == "fixed":
        assert before <= value[0] <= after and value[1] == 1
        assert reply.reset_after == window_us
        assert_ttl(redis, key, window_us // US_PER_MS, when)
    elif algorithm == "sliding":
        assert before <= value[0] <= after and value[1:] == [1, 0]
        assert reply.reset_after == 2 * window_us
        assert_ttl(redis, key, 2 * window_us // US_PER_MS, when)
    else:
        assert before + interval <= value[0] <= after + interval
        assert reply.reset_after == interval
        assert_ttl(redis, key, interval // US_PER_MS, when)
    for _ in range(3):
        assert script.decide("k", "").allowed
    denied = script.decide("k", "")
    assert not denied.allowed
    assert denied.retry_after is not None and 0 < denied.retry_after <= 2 * window_us


#: How often a sequence on server time is tried before the test gives up on the host.
ATTEMPTS = 20
#: How long a poll waits at most for a key's TTL to run out (it returns as soon as it has).
VANISH_SECONDS = 30.0


def three_decisions(redis: RespClient, script: ScriptLimiter, k: str) -> tuple[list[Reply], int]:
    """Three decisions on server time for `k`, and whether its key then exists."""
    replies = [script.decide(k, "") for _ in range(3)]
    return replies, int(redis.call("EXISTS", script.keys(k)[0]))


def test_a_key_vanishes_with_its_state_and_then_decides_like_a_new_one(redis: RespClient) -> None:
    """On server time, with a window of 100 ms so that the TTL runs out soon. Two admitted
    requests and a refused third are only conclusive if they fall within one emission
    interval (50 ms) of server time: a sequence that took longer (a loaded host) is tried
    again with a new key rather than judged."""
    window_us = 100_000  # 100 ms of server time
    for algorithm in ("fixed", "sliding", "gcra"):
        script = ScriptLimiter(redis, algorithm, [(2, window_us)], unit_per_ms=US_PER_MS)
        for attempt in range(ATTEMPTS):
            k = f"k{attempt}"
            key = script.keys(k)[0]
            (replies, exists), (start, end) = on_server_clock(
                redis, partial(three_decisions, redis, script, k)
            )
            if end - start < window_us // 2:
                break
        else:
            pytest.fail(f"no attempt of 3 calls took less than 50 ms of server time ({algorithm})")
        fresh, second, third = replies
        assert (fresh.allowed, second.allowed, third.allowed, exists) == (True, True, False, 1)
        deadline = time.monotonic() + VANISH_SECONDS
        while redis.call("EXISTS", key) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert redis.call("EXISTS", key) == 0 and pttl(redis, key) == -2, algorithm
        assert script.decide(k, "") == fresh, algorithm


# --- Exact arithmetic and bad calls ---------------------------------------------------------


def lua_function(source: str, name: str) -> str:
    match = re.search(rf"^local function {name}\(.*?^end$", source, re.S | re.M)
    assert match, name
    return match.group(0)


@given(
    a=st.integers(0, 2**32) | st.integers(0, 2**53 - 1),
    b=st.integers(0, 2**53),
    c=st.integers(1, 2**52),
)
@settings(max_examples=300, deadline=None)
def test_muldiv_is_exact_far_beyond_2_to_53(client: RespClient, a: int, b: int, c: int) -> None:
    """The sliding window's floor(a * b / c): exact whenever the quotient is below 2^53."""
    quotient, rest = divmod(a * b, c)
    assume(quotient < MAX_EXACT)  # the function's promise stops there
    source = script_source("sliding_window.lua")
    body = "\n".join(
        [
            f"local MAX_EXACT = {MAX_EXACT}",
            lua_function(source, "divmod"),
            lua_function(source, "muldiv"),
            "local q, r = muldiv(tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]))",
            "return {string.format('%.0f', q), string.format('%.0f', r)}",
        ]
    )
    assert client.call("EVAL", body, 0, a, b, c) == [str(quotient), str(rest)]


def test_each_script_includes_the_shared_parts_once() -> None:
    for name in set(SCRIPT_FILES.values()):
        text = (SCRIPTS / name).read_text()
        assert text.count("-- #include prelude.lua\n") == 1
        assert text.count("-- #include finish.lua\n") == 1
        assert "\n-- #include " not in script_source(name)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nap", 0, 1, NS_PER_MS, 0, 3, S], 'mode must be "decide" or "peek"'),
        (["decide", 0, 1, NS_PER_MS, 0, 3], "5 + 2 arguments per rate"),
        (["decide", "soon", 1, NS_PER_MS, 0, 3, S], 'now must be an integer >= 0, got "soon"'),
        (["decide", 0, -1, NS_PER_MS, 0, 3, S], "cost must be an integer >= 0"),
        (["decide", 0, 1, 0, 0, 3, S], "unit_per_ms must be an integer >= 1"),
        (["decide", 0, 1, NS_PER_MS, 0, 0, S], "limit of rate 1 must be an integer >= 1"),
        (["decide", 0, 1, NS_PER_MS, 0, 3, 1.5], "window of rate 1 must be an integer >= 1"),
        (["decide", 2**53 - S + 1, 1, NS_PER_MS, 0, 3, S], "exceeds 2^53"),
    ],
)
def test_bad_calls_are_errors_that_say_why(
    redis: RespClient, args: list[object], message: str
) -> None:
    sha = redis.call("SCRIPT", "LOAD", script_source("fixed_window.lua"))
    with pytest.raises(RedisError, match=re.escape(message)):
        redis.call("EVALSHA", sha, 1, "{rl:k}:0", *args)
    assert redis.call("EXISTS", "{rl:k}:0") == 0
