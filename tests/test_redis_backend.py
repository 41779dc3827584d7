"""The Redis backend end to end, through the public API, against real ``redis-server`` processes
(and a 3-master Redis Cluster) started by the fixtures.

- A memory limiter and a Redis limiter on one ``ManualClock`` decide identically (hand-written
  vectors and a property test), for every algorithm, with one rate and with two.
- On server time: the limit holds, the keys carry a TTL, prefixes separate limiters, instances
  (and processes, and threads, and asyncio tasks) on one prefix share one exact limit.
- Faults: ``SCRIPT FLUSH`` loses no decision; with nothing listening or the server killed, each
  failure policy answers promptly, ``storage_errors`` counts the failures, and the limiter works
  again once the server is back.
- Bad settings are refused at construction; a wrong password or an unreachable host fails with
  a clear ``StorageError`` on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import pickle
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_support import RedisCluster, RedisServer, RespClient, on_server_clock, ttl_given
from servers import free_port

from rust_py_rate_limit import ALGORITHMS, ManualClock, RateLimiter, StorageError

WORKER = Path(__file__).resolve().parent / "redis_worker.py"

#: A failing call must come back well within this (the timeout is 50 ms): only catches hangs.
PROMPT_SECONDS = 2.0

#: The `timeout` of the limiters whose tests are not about timeouts: a loaded CI host may take
#: longer than the default 50 ms for a round trip now and then.
SAFE = 5.0

#: How long a limiter may take to reconnect once its server is back.
RECONNECT_SECONDS = 10.0

BUCKETS = ("token_bucket", "leaky_bucket", "gcra")

_prefixes = itertools.count()


def fresh_prefix() -> str:
    """A key prefix no other limiter of this session uses (for shared servers)."""
    return f"t{next(_prefixes)}"


# --- Cross-backend equality on a ManualClock -------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """A limiter configuration, built the same way on both backends."""

    algorithm: str
    rate: str
    burst: int | None = None

    def build(self, clock: ManualClock, **storage: Any) -> RateLimiter:
        return RateLimiter.from_rate(
            self.rate, self.algorithm, burst=self.burst, clock=clock, **storage
        )


ONE_RATE = "3/second"
TWO_RATES = "3/second; 10/minute"

SETUPS = [Setup(a, rate) for a in ALGORITHMS for rate in (ONE_RATE, TWO_RATES)] + [
    Setup(a, "2/second", burst=4) for a in BUCKETS
]

#: Steps of (seconds to advance the clock first, key, cost).
Step = tuple[float, str, int]

VECTORS: dict[str, list[Step]] = {
    "burst_then_refused": [(0, "a", 1)] * 5,
    "refill_by_the_window": [
        *[(0, "a", 1)] * 4,
        (0.4, "a", 1),
        (0.3, "a", 1),
        (0.3, "a", 1),
        (0.999999999, "a", 1),
        (1e-9, "a", 1),
        (0, "a", 1),
    ],
    "costs": [(0, "a", 2), (0, "a", 2), (0.5, "a", 1), (0, "a", 3), (1, "a", 3), (0, "a", 1)],
    "cost_above_every_limit": [(0, "a", 11), (0, "a", 4), (0, "a", 1), (5, "a", 4)],
    "keys_are_separate": [
        (0, "a", 1),
        (0, "b", 2),
        (0, "a", 2),
        (0, "c", 1),
        (0, "b", 2),
        (0.25, "a", 1),
        (0, "c", 3),
        (0.25, "b", 1),
    ],
    "the_minute_rate_binds": [(0.35, "a", 1)] * 14 + [(0, "b", 1)],
    "idle_past_every_window": [
        (0, "a", 3),
        (0, "a", 1),
        (120, "a", 1),
        (0, "a", 2),
        (0.1, "a", 1),
    ],
    "unicode_and_odd_keys": [
        (0, "ключ", 1),
        (0, "a}b{c", 2),
        (0, "", 1),
        (0, "ключ", 3),
        (0, "a}b{c", 2),
        (0.5, "", 3),
    ],
}


def run_side_by_side(
    memory: RateLimiter, on_redis: RateLimiter, clock: ManualClock, steps: Sequence[Step]
) -> None:
    keys: list[str] = []
    for i, (advance, key, cost) in enumerate(steps):
        if advance:
            clock.advance(advance)
        if key not in keys:
            keys.append(key)
        expected = memory.decide(key, cost)
        assert on_redis.decide(key, cost) == expected, f"step {i}: {(advance, key, cost)}"
        for k in keys:
            assert on_redis.remaining(k) == memory.remaining(k), f"step {i}: remaining({k!r})"
    for name in ("allowed", "blocked", "total_checks"):
        assert on_redis.stats()[name] == memory.stats()[name]


@pytest.mark.parametrize("vector", VECTORS)
@pytest.mark.parametrize("setup", SETUPS, ids=lambda s: f"{s.algorithm}-{s.rate}-{s.burst}")
def test_redis_decides_like_memory_on_the_vectors(
    setup: Setup, vector: str, redis_server: RedisServer, redis: RespClient
) -> None:
    clock = ManualClock()
    memory = setup.build(clock)
    on_redis = setup.build(clock, storage=redis_server.url, timeout=SAFE)
    run_side_by_side(memory, on_redis, clock, VECTORS[vector])


steps_strategy = st.lists(
    st.tuples(
        st.one_of(
            st.sampled_from([0.0, 0.0, 1e-9, 0.1, 1 / 3, 0.5, 0.999999999, 1.0, 7.0, 61.0]),
            st.floats(min_value=0, max_value=3, allow_nan=False),
        ),
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=1, max_value=5),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(setup=st.sampled_from(SETUPS), steps=steps_strategy, start=st.floats(0, 1e6))
def test_redis_decides_like_memory_on_random_sequences(
    redis_server: RedisServer, setup: Setup, steps: list[Step], start: float
) -> None:
    clock = ManualClock(start)
    memory = setup.build(clock)
    on_redis = setup.build(clock, storage=redis_server.url, key_prefix=fresh_prefix(), timeout=SAFE)
    run_side_by_side(memory, on_redis, clock, steps)


# --- Server time ------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_server_time_admits_the_limit_and_keys_carry_a_ttl(
    algorithm: str, redis_server: RedisServer, redis: RespClient
) -> None:
    limiter = RateLimiter(5, 600, algorithm, storage=redis_server.url, timeout=SAFE)
    assert [limiter.allow("user") for _ in range(6)] == [True] * 5 + [False]
    refused = limiter.decide("user")
    assert not refused.allowed and refused.remaining == 0 and refused.retry_after > 0
    assert limiter.remaining("user") == 0
    key = f"rl:{{user}}:{algorithm}:5:600s"
    assert redis.call("KEYS", "*") == [key]
    assert 0 < redis.call("PTTL", key) <= 1_200_000
    stats = limiter.stats()
    assert (stats["allowed"], stats["blocked"], stats["total_checks"]) == (5, 2, 7)


def test_server_time_two_rates_keep_one_key_each(
    redis_server: RedisServer, redis: RespClient
) -> None:
    limiter = RateLimiter.from_rate("3/second; 5/hour", storage=redis_server.url, timeout=SAFE)
    admitted, when = on_server_clock(redis, lambda: limiter.allow("u"))
    assert admitted
    per_second, per_hour = "rl:{u}:fixed:3:1s", "rl:{u}:fixed:5:3600s"
    assert sorted(redis.call("KEYS", "*")) == [per_second, per_hour]
    # The TTLs as given (PTTL would shrink, and the second's key vanish, on a slow host).
    low, high = ttl_given(redis, per_second, when)
    assert low > 0 and high <= 2_000
    low, high = ttl_given(redis, per_hour, when)
    assert low > 2_000 and high <= 7_200_000
    assert [limiter.allow("u") for _ in range(3)] == [True] * 2 + [False]


def test_key_prefixes_separate_limiters(redis_server: RedisServer, redis: RespClient) -> None:
    first = RateLimiter(2, 600, storage=redis_server.url, key_prefix="app1", timeout=SAFE)
    second = RateLimiter(2, 600, storage=redis_server.url, key_prefix="app2:rl", timeout=SAFE)
    assert [first.allow("k") for _ in range(3)] == [True, True, False]
    assert [second.allow("k") for _ in range(3)] == [True, True, False]
    assert sorted(redis.call("KEYS", "*")) == ["app1:{k}:fixed:2:600s", "app2:rl:{k}:fixed:2:600s"]


def test_instances_on_one_prefix_share_one_limit(
    redis_server: RedisServer, redis: RespClient
) -> None:
    one = RateLimiter(
        3, 600, "sliding", storage=redis_server.url, key_prefix="shared", timeout=SAFE
    )
    two = RateLimiter(
        3, 600, "sliding", storage=redis_server.url, key_prefix="shared", timeout=SAFE
    )
    assert [one.allow("k"), two.allow("k"), one.allow("k")] == [True] * 3
    assert [two.allow("k"), one.allow("k")] == [False, False]
    assert one.remaining("k") == two.remaining("k") == 0
    assert two.reset("k") is True
    assert one.remaining("k") == 3


def test_valkey_urls_reach_the_same_server(redis_server: RedisServer, redis: RespClient) -> None:
    url = f"valkey://127.0.0.1:{redis_server.port}/0"
    limiter = RateLimiter(1, 600, storage=url, timeout=SAFE)
    assert limiter.storage == url
    assert [limiter.allow("k"), limiter.allow("k")] == [True, False]
    assert redis.call("EXISTS", "rl:{k}:fixed:1:600s") == 1


def test_the_database_number_of_the_url_is_used(
    redis_server: RedisServer, redis: RespClient
) -> None:
    limiter = RateLimiter(1, 600, storage=f"redis://127.0.0.1:{redis_server.port}/3", timeout=SAFE)
    assert limiter.allow("k") is True
    assert redis.call("EXISTS", "rl:{k}:fixed:1:600s") == 0
    redis.call("SELECT", 3)
    assert redis.call("EXISTS", "rl:{k}:fixed:1:600s") == 1


# --- Async ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_the_twins_give_the_sync_results(
    algorithm: str, redis_server: RedisServer, redis: RespClient
) -> None:
    clock = ManualClock()
    twin = RateLimiter.from_rate(
        TWO_RATES, algorithm, clock=clock, storage=redis_server.url, timeout=SAFE
    )
    sync = RateLimiter.from_rate(
        TWO_RATES, algorithm, clock=clock, storage=redis_server.url, key_prefix="sync", timeout=SAFE
    )

    async def run() -> None:
        for cost in (1, 2, 1, 5, 1):
            assert await twin.aallow("a", cost) == sync.allow("a", cost)
            assert await twin.adecide("b", cost) == sync.decide("b", cost)
            assert await twin.acheck("c", cost) == sync.check("c", cost)
            for key in "abc":
                assert await twin.aremaining(key) == sync.remaining(key)
            clock.advance(0.4)
        assert await twin.areset("a") is True
        assert await twin.areset("never-seen") is False
        assert await twin.aremaining("a") == 3

    asyncio.run(run())
    assert twin.stats() == sync.stats()


def test_concurrent_tasks_admit_exactly_the_limit(
    redis_server: RedisServer, redis: RespClient
) -> None:
    limiters = [
        RateLimiter(37, 3600, a, storage=redis_server.url, timeout=SAFE) for a in ALGORITHMS
    ]

    async def run(limiter: RateLimiter) -> list[bool]:
        return list(await asyncio.gather(*(limiter.aallow("k") for _ in range(100))))

    for limiter in limiters:
        results = asyncio.run(run(limiter))
        redis.call("FLUSHALL")
        assert results.count(True) == 37, limiter.algorithm
        assert limiter.stats()["allowed"] == 37


def test_bad_arguments_raise_at_the_call_not_at_the_await(redis_server: RedisServer) -> None:
    limiter = RateLimiter(3, 60, storage=redis_server.url)
    calls: list[tuple[type[Exception], Callable[[], object]]] = [
        (ValueError, lambda: limiter.aallow("k", 0)),
        (TypeError, lambda: limiter.acheck("k", 1.5)),
        (TypeError, lambda: limiter.adecide(5)),  # type: ignore[arg-type]
        (TypeError, lambda: limiter.aremaining(None)),  # type: ignore[arg-type]
        (TypeError, lambda: limiter.areset(b"k")),  # type: ignore[arg-type]
    ]

    async def run() -> None:  # a running loop, as the twins would have in real use
        for error, call in calls:
            with pytest.raises(error):
                call()

    asyncio.run(run())
    assert limiter.stats()["total_checks"] == 0


# --- Concurrency across processes and threads ------------------------------------------------


def test_processes_and_threads_share_one_exact_limit(
    redis_server: RedisServer, redis: RespClient, tmp_path: Path
) -> None:
    limit, processes, threads, calls = 40, 4, 4, 10
    args = [redis_server.url, "hammer", limit, 3600, threads, calls, *ALGORITHMS]
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), *map(str, args)],
            cwd=tmp_path,  # not the checkout, whose package has no compiled core
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    reports = []
    for worker in workers:
        out, err = worker.communicate(timeout=60)
        assert worker.returncode == 0, err
        reports.append(json.loads(out))
    for algorithm in ALGORITHMS:
        admitted = [r["admitted"][algorithm] for r in reports]
        assert sum(admitted) == limit, (algorithm, admitted)
        assert all(r["storage_errors"][algorithm] == 0 for r in reports)


# --- SCRIPT FLUSH -----------------------------------------------------------------------------


def cached_scripts(redis: RespClient) -> int:
    (line,) = [
        line for line in redis.call("INFO", "memory").splitlines() if "cached_scripts:" in line
    ]
    return int(line.split(":")[1])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_script_flush_mid_run_loses_no_decision(
    algorithm: str, redis_server: RedisServer, redis: RespClient
) -> None:
    clock = ManualClock()
    memory = RateLimiter.from_rate("10/second; 15/minute", algorithm, clock=clock)
    on_redis = RateLimiter.from_rate(
        "10/second; 15/minute", algorithm, clock=clock, storage=redis_server.url, timeout=SAFE
    )
    steps: list[Step] = [(0.05, "k", 1)] * 6
    redis.call("SCRIPT", "FLUSH")  # FLUSHALL keeps the scripts of the earlier tests
    run_side_by_side(memory, on_redis, clock, steps)
    assert cached_scripts(redis) == 1
    redis.call("SCRIPT", "FLUSH")
    assert cached_scripts(redis) == 0
    run_side_by_side(memory, on_redis, clock, steps * 3)
    assert cached_scripts(redis) == 1  # loaded again
    assert on_redis.stats()["storage_errors"] == 0
    assert 0 < on_redis.stats()["blocked"] < on_redis.stats()["total_checks"] == 24

    server_time = RateLimiter(
        4, 3600, algorithm, storage=redis_server.url, key_prefix="st", timeout=SAFE
    )
    assert [server_time.allow("k") for _ in range(2)] == [True, True]
    redis.call("SCRIPT", "FLUSH")
    assert [server_time.allow("k") for _ in range(3)] == [True, True, False]


# --- Failure policies -------------------------------------------------------------------------

POLICIES = ("allow", "deny", "raise")


def awaited(make: Callable[[], Awaitable[Any]]) -> Any:
    """The result of awaiting ``make()`` in a fresh event loop (the twins need a running one)."""

    async def run() -> Any:
        return await make()

    return asyncio.run(run())


def timed(call: Callable[[], Any]) -> tuple[Any, float]:
    """``call()``'s result (or the StorageError it raised) and how long it took."""
    started = time.monotonic()
    try:
        result = call()
    except StorageError as error:
        result = error
    return result, time.monotonic() - started


#: (allowed, blocked) counted in stats() after ``n`` deciding calls answered by each policy
#: (a raised StorageError is no decision).
POLICY_ANSWERS = {
    "raise": lambda n: (0, 0),
    "allow": lambda n: (n, 0),
    "deny": lambda n: (0, n),
}


def assert_policy(
    limiter: RateLimiter, policy: str, key: str = "k", within: float = PROMPT_SECONDS
) -> int:
    """Every call fails as ``policy`` says within ``within`` seconds; returns how many round
    trips failed."""
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("allow", lambda: limiter.allow(key)),
        ("decide", lambda: limiter.decide(key, 2)),
        ("check", lambda: limiter.check(key)),
        ("remaining", lambda: limiter.remaining(key)),
        ("aallow", lambda: awaited(lambda: limiter.aallow(key))),
        ("adecide", lambda: awaited(lambda: limiter.adecide(key))),
    ]
    for name, call in calls:
        result, took = timed(call)
        assert took < within, (policy, name, took)
        if policy == "raise":
            assert isinstance(result, StorageError), (name, result)
            assert str(result)
            continue
        assert not isinstance(result, StorageError), (policy, name, result)
        admitted = policy == "allow"
        if name in ("allow", "aallow"):
            assert result is admitted
        elif name in ("decide", "adecide"):
            assert result.allowed is admitted and result.limit == limiter.max_requests
            assert (result.retry_after > 0) is not admitted
        elif name == "check":
            assert result["allowed"] is admitted
        else:
            assert result == (limiter.max_requests if admitted else 0)
    # reset() decides nothing, so it raises whatever the policy.
    for call in (lambda: limiter.reset(key), lambda: awaited(lambda: limiter.areset(key))):
        result, took = timed(call)
        assert isinstance(result, StorageError) and took < within
    return len(calls) + 2


@pytest.mark.parametrize("policy", POLICIES)
def test_nothing_listening_follows_the_policy(policy: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    limiter = RateLimiter(5, 60, storage=url, on_storage_error=policy)
    failures = assert_policy(limiter, policy)
    failures += assert_policy(limiter, policy)  # and again: no state kept from the first round
    stats = limiter.stats()
    assert stats["storage_errors"] == failures
    # the policy's answers are the limiter's decisions: 5 of the 6 calls decide, twice
    assert (stats["allowed"], stats["blocked"]) == POLICY_ANSWERS[policy](10)


def wait_until_reconnected(limiter: RateLimiter) -> None:
    """Polls until a round trip succeeds (the server was just started again)."""
    deadline = time.monotonic() + RECONNECT_SECONDS
    while True:
        before = limiter.stats()["storage_errors"]
        with contextlib.suppress(StorageError):
            limiter.remaining("probe")
        if limiter.stats()["storage_errors"] == before:
            return
        assert time.monotonic() < deadline, "the limiter did not reconnect"
        time.sleep(0.02)


def test_a_killed_server_follows_each_policy_and_the_limiter_recovers(
    own_server: RedisServer,
) -> None:
    limiters = {
        policy: RateLimiter(3, 3600, storage=own_server.url, on_storage_error=policy, timeout=SAFE)
        for policy in POLICIES
    }
    for policy, limiter in limiters.items():
        assert [limiter.allow(policy) for _ in range(2)] == [True, True]

    own_server.kill()
    for policy, limiter in limiters.items():
        failures = assert_policy(limiter, policy, key=policy)
        stats = limiter.stats()
        assert stats["storage_errors"] == failures
        # the policy's answers are decisions too (5 of the calls decide; remaining() does not)
        answered = POLICY_ANSWERS[policy](5)
        assert (stats["allowed"], stats["blocked"]) == (2 + answered[0], answered[1]), policy

    own_server.start()  # same port, empty
    for policy, limiter in limiters.items():
        wait_until_reconnected(limiter)
        assert limiter.remaining(policy) == 3
        assert [limiter.allow(policy) for _ in range(4)] == [True, True, True, False]
    assert awaited(lambda: limiters["raise"].aallow("async-too")) is True


# --- A frozen server (SIGSTOP): connected, but it never answers -------------------------------

#: The `timeout` of the frozen-server tests: what they test.
FROZEN_TIMEOUT = 0.25

#: What a call may take beyond the timeout on a loaded machine.
SLACK_SECONDS = 2.0


def connect(limiter: RateLimiter) -> int:
    """Makes a first round trip (retried: the timeout is short on purpose), so that the limiter
    is connected, with its scripts loaded, before the server freezes; returns the failures."""
    wait_until_reconnected(limiter)
    return int(limiter.stats()["storage_errors"])


@pytest.mark.parametrize("policy", POLICIES)
def test_a_frozen_server_is_answered_within_the_timeout_by_the_policy(
    own_server: RedisServer, policy: str
) -> None:
    limiter = RateLimiter(
        3, 3600, storage=own_server.url, on_storage_error=policy, timeout=FROZEN_TIMEOUT
    )
    before = connect(limiter)
    with own_server.frozen():
        failures = assert_policy(limiter, policy, within=FROZEN_TIMEOUT + SLACK_SECONDS)
    # Each call waited for the server, in vain: none was answered some other way.
    assert limiter.stats()["storage_errors"] == before + failures
    assert (limiter.stats()["allowed"], limiter.stats()["blocked"]) == POLICY_ANSWERS[policy](5)
    wait_until_reconnected(limiter)  # resumed: the server answers again
    assert [limiter.allow("after") for _ in range(4)] == [True, True, True, False]


def test_a_frozen_server_falls_back_to_memory_within_the_timeout(
    own_server: RedisServer, redis: RespClient
) -> None:
    clock = ManualClock()
    limiter = RateLimiter(
        3, 3600, storage=own_server.url, clock=clock, fallback="memory", timeout=FROZEN_TIMEOUT
    )
    before = connect(limiter)
    assert limiter.allow("k")  # counted on the server
    with own_server.frozen():
        result, took = timed(lambda: limiter.allow("k"))
        assert result is True and took < FROZEN_TIMEOUT + SLACK_SECONDS  # in process now
        assert limiter.stats()["storage_errors"] == before + 1
        # Until the probe interval has passed, in process without waiting for the server.
        calls: list[Callable[[], Any]] = [
            lambda: limiter.allow("k"),
            lambda: limiter.allow("k"),
            lambda: limiter.allow("k"),
            lambda: awaited(lambda: limiter.aallow("k")),
            lambda: limiter.decide("k").allowed,
            lambda: awaited(lambda: limiter.adecide("k")).allowed,
        ]
        answers = []
        for call in calls:
            result, took = timed(call)
            assert took < SLACK_SECONDS, took
            answers.append(result)
        assert answers == [True, True, False, False, False, False]
        assert limiter.stats()["storage_errors"] == before + 1
    # Resumed: once the probe interval has passed, Redis decides again.
    with own_server.client() as client:
        deadline = time.monotonic() + RECONNECT_SECONDS
        for attempt in itertools.count():
            clock.advance(5)
            key = f"fresh-{attempt}"
            assert limiter.allow(key)
            if client.call("EXISTS", f"rl:{{{key}}}:fixed:3:3600s"):
                break
            assert time.monotonic() < deadline, "Redis was not asked again"
            time.sleep(0.02)


# --- Bad settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "http://localhost:6379",
        "mysql://localhost",
        "redis://",
        "redis://host:99999",
        "redis://host:port",
        "redis://host/db",
        "redis://a:1,b:2",
        "redis+cluster://a:1/0",
        "redis://host?timeout=1",
        "redis://host?socket_timeout=-1",
        "memory://somewhere",
    ],
)
def test_malformed_urls_and_unknown_schemes_are_refused_quoting_the_url(url: str) -> None:
    with pytest.raises(ValueError, match="storage") as excinfo:
        RateLimiter(1, 1, storage=url)
    assert f'"{url}"' in str(excinfo.value)
    with pytest.raises(ValueError, match="storage"):
        RateLimiter.from_rate("1/second", storage=url)


def test_a_password_is_not_shown_in_errors_or_repr() -> None:
    with pytest.raises(ValueError) as excinfo:
        RateLimiter(1, 1, storage="redis://user:s3cret@host:0/0")
    assert "s3cret" not in str(excinfo.value) and "redis://user:***@host:0/0" in str(excinfo.value)
    limiter = RateLimiter(1, 1, storage="redis://:s3cret@127.0.0.1:1/0")
    assert "s3cret" not in repr(limiter) and "s3cret" not in limiter.storage
    assert limiter.storage == "redis://:***@127.0.0.1:1/0"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?password=s3cret",  # redis-py's spelling: an unknown option here
        "redis://127.0.0.1:6379/0?socket_timeout=1&password=s3cret&x=1",
        "redis://:s3/cret@127.0.0.1:6379/0",  # a '/' not percent-encoded: no host found
        "rediss://user:s3?cret@cache:6380",  # a '?' likewise
        "redis+cluster://:s3/cret@a:1,b:2",
    ],
)
def test_a_refused_url_hides_its_password_however_it_is_written(url: str) -> None:
    with pytest.raises(ValueError, match="invalid storage URL") as excinfo:
        RateLimiter(1, 1, storage=url)
    assert "s3" not in str(excinfo.value) and "cret" not in str(excinfo.value), excinfo.value


def test_an_outage_log_names_what_decides_meanwhile(caplog: pytest.LogCaptureFixture) -> None:
    down = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once
    with caplog.at_level(logging.WARNING, logger="rust_py_rate_limit"):
        assert RateLimiter(1, 60, storage=down, fallback="memory").allow("k")
        assert RateLimiter(1, 60, storage=down, on_storage_error="allow").allow("k")
    fallback, policy = [r.getMessage() for r in caplog.records]
    assert "the in-memory fallback decides" in fallback and "on_storage_error" not in fallback
    assert 'on_storage_error="allow" applies' in policy


def test_storage_must_be_a_str() -> None:
    with pytest.raises(TypeError, match="`storage`"):
        RateLimiter(1, 1, storage=b"redis://h")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "{app}", "app}", "a{b"])
def test_key_prefixes_with_braces_or_empty_are_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="`key_prefix`"):
        RateLimiter(1, 1, storage="redis://127.0.0.1:1", key_prefix=prefix)


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        (0, ValueError),
        (-0.5, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        ("0.1", TypeError),
        (True, TypeError),
    ],
)
def test_bad_timeouts_are_refused(timeout: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="`timeout`"):
        RateLimiter(1, 1, storage="redis://127.0.0.1:1", timeout=timeout)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("ignore", ValueError),
        ("ALLOW", ValueError),
        ("", ValueError),
        (1, TypeError),
        (True, TypeError),
    ],
)
def test_bad_failure_policies_are_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="`on_storage_error`"):
        RateLimiter(1, 1, storage="redis://127.0.0.1:1", on_storage_error=value)


@pytest.mark.parametrize(
    "setting", [{"key_prefix": "app"}, {"timeout": 0.1}, {"on_storage_error": "allow"}]
)
@pytest.mark.parametrize("storage", [None, "memory://"])
def test_redis_settings_without_redis_are_refused(
    setting: dict[str, Any], storage: str | None
) -> None:
    (name,) = setting
    with pytest.raises(ValueError, match=f"`{name}` only applies with a Redis"):
        RateLimiter(1, 1, storage=storage, **setting)
    with pytest.raises(ValueError, match=f"`{name}` only applies with a Redis"):
        RateLimiter.from_rate("1/second", storage=storage, **setting)


def test_a_missing_or_wrong_password_fails_on_first_use(own_server: RedisServer) -> None:
    with own_server.client() as admin:
        admin.call("CONFIG", "SET", "requirepass", "pw")
    port = own_server.port
    for url in (own_server.url, f"redis://:wrong@127.0.0.1:{port}/0"):
        limiter = RateLimiter(1, 60, storage=url, timeout=SAFE)  # connects lazily
        error, took = timed(lambda limiter=limiter: limiter.allow("k"))
        assert isinstance(error, StorageError), error
        assert "auth" in str(error).lower(), str(error)
        assert took < PROMPT_SECONDS
        allowing = RateLimiter(1, 60, storage=url, timeout=SAFE, on_storage_error="allow")
        assert allowing.allow("k") is True and allowing.stats()["storage_errors"] == 1
    limiter = RateLimiter(1, 60, storage=f"redis://:pw@127.0.0.1:{port}/0", timeout=SAFE)
    assert [limiter.allow("k"), limiter.allow("k")] == [True, False]


def test_storage_error_is_the_packages_and_names_the_storage_without_its_password() -> None:
    assert StorageError.__module__ == "rust_py_rate_limit"
    assert repr(StorageError) == "<class 'rust_py_rate_limit.StorageError'>"
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    shown = url.replace("s3cret", "***")
    limiter = RateLimiter(5, 60, storage=url)
    calls: list[Callable[[], Any]] = [
        lambda: limiter.allow("k"),
        lambda: limiter.decide("k"),
        lambda: limiter.reset("k"),
        lambda: limiter.clear(),
        lambda: awaited(lambda: limiter.aallow("k")),
        lambda: awaited(lambda: limiter.areset("k")),
    ]
    for call in calls:
        error, _ = timed(call)
        assert isinstance(error, StorageError), error
        assert str(error).startswith(f"rate-limit storage {shown} failed: "), str(error)
        assert "s3cret" not in str(error) and "s3cret" not in repr(error)
        assert type(pickle.loads(pickle.dumps(error))) is StorageError


@pytest.mark.parametrize(
    "url", ["redis://no-such-host.invalid:6379/0", "redis+cluster://no-such-host.invalid:7000"]
)
def test_an_unreachable_host_fails_promptly(url: str) -> None:
    limiter = RateLimiter(1, 60, storage=url)
    error, took = timed(lambda: limiter.allow("k"))
    assert isinstance(error, StorageError) and took < PROMPT_SECONDS
    assert limiter.stats()["storage_errors"] == 1
    denying = RateLimiter(1, 60, storage=url, on_storage_error="deny")
    assert denying.allow("k") is False


# --- Properties, stats, reset, clear ----------------------------------------------------------


def test_properties_and_repr(redis_server: RedisServer) -> None:
    url = redis_server.url
    default = RateLimiter(10, 60, "gcra", storage=url)
    assert (default.storage, default.key_prefix) == (url, "rl")
    assert (default.timeout, default.on_storage_error) == (0.05, "raise")
    assert repr(default) == (
        f'RateLimiter(limit=10, window_seconds=60, algorithm="gcra", storage="{url}", '
        'key_prefix="rl", timeout=0.05, on_storage_error="raise")'
    )
    custom = RateLimiter.from_rate(
        "5/second; 100/hour",
        storage=url,
        key_prefix="app:rl",
        timeout=1,
        on_storage_error="deny",
    )
    assert (custom.storage, custom.key_prefix) == (url, "app:rl")
    assert (custom.timeout, custom.on_storage_error) == (1, "deny")
    assert f'storage="{url}", key_prefix="app:rl", timeout=1, on_storage_error="deny")' in repr(
        custom
    )
    memory = RateLimiter(10, 60)
    assert (memory.storage, memory.key_prefix, memory.timeout, memory.on_storage_error) == (
        "memory://",
        None,
        None,
        None,
    )
    assert "storage" not in repr(memory)
    assert RateLimiter(1, 1, storage="memory://").storage == "memory://"


def test_stats_reset_clear_and_cleanup(redis_server: RedisServer, redis: RespClient) -> None:
    url = redis_server.url
    limiter = RateLimiter.from_rate("2/second; 3/hour", storage=url, key_prefix="a", timeout=SAFE)
    assert [limiter.allow("x") for _ in range(3)] == [True, True, False]
    limiter.allow("y")
    assert limiter.stats() == {
        "name": limiter.name,
        "allowed": 3,
        "blocked": 1,
        "total_checks": 4,
        "active_keys": 0,
        "rejected_full": 0,
        "evicted": 0,
        "storage_errors": 0,
    }
    assert json.loads(limiter.stats_json()) == limiter.stats()
    assert limiter.cleanup_expired() == 0

    assert limiter.reset("x") is True
    assert redis.call("EXISTS", "a:{x}:fixed:2:1s", "a:{x}:fixed:3:3600s") == 0
    assert redis.call("EXISTS", "a:{y}:fixed:2:1s", "a:{y}:fixed:3:3600s") == 2
    assert limiter.reset("x") is False
    assert limiter.remaining("x") == 2

    other = RateLimiter(5, 60, storage=url, key_prefix="ab", timeout=SAFE)
    glob = RateLimiter(5, 60, storage=url, key_prefix="a*", timeout=SAFE)
    for key in ("x", "y"):
        other.allow(key)
        glob.allow(key)
    redis.call("SET", "unrelated", 1)
    glob.clear()  # "a*" is a prefix, not a pattern: "ab" and "a" keep their keys
    assert sorted(redis.call("KEYS", "*")) == [
        "a:{y}:fixed:2:1s",
        "a:{y}:fixed:3:3600s",
        "ab:{x}:fixed:5:60s",
        "ab:{y}:fixed:5:60s",
        "unrelated",
    ]
    assert limiter.clear() is None
    assert sorted(redis.call("KEYS", "*")) == [
        "ab:{x}:fixed:5:60s",
        "ab:{y}:fixed:5:60s",
        "unrelated",
    ]
    assert limiter.remaining("y") == 2
    assert limiter.stats()["total_checks"] == 4  # clear() keeps the statistics


def test_clear_with_many_keys(redis_server: RedisServer, redis: RespClient) -> None:
    limiter = RateLimiter(5, 60, storage=redis_server.url, key_prefix="many", timeout=SAFE)

    async def fill() -> None:
        await asyncio.gather(*(limiter.aallow(f"user:{i}") for i in range(2500)))

    asyncio.run(fill())
    assert redis.call("DBSIZE") == 2500
    limiter.clear()
    assert redis.call("DBSIZE") == 0


# --- Redis Cluster ----------------------------------------------------------------------------


def test_cluster_decides_like_memory_with_one_slot_per_key(redis_cluster: RedisCluster) -> None:
    prefix = fresh_prefix()
    clock = ManualClock()
    for algorithm in ALGORITHMS:
        memory = RateLimiter.from_rate(TWO_RATES, algorithm, clock=clock)
        on_cluster = RateLimiter.from_rate(
            TWO_RATES,
            algorithm,
            clock=clock,
            storage=redis_cluster.url,
            key_prefix=f"{prefix}-{algorithm}",
            timeout=SAFE,
        )
        steps = [step for vector in VECTORS.values() for step in vector]
        run_side_by_side(memory, on_cluster, clock, steps)

    users = [f"user:{i}" for i in range(30)]
    limiter = RateLimiter.from_rate(
        TWO_RATES, storage=redis_cluster.url, key_prefix=prefix, timeout=SAFE
    )
    for user in users:
        assert limiter.allow(user) is True
    nodes = set()
    for user in users:
        keys = [f"{prefix}:{{{user}}}:fixed:{rate}" for rate in ("3:1s", "10:60s")]
        node = redis_cluster.node_for(keys[0])
        assert redis_cluster.node_for(keys[1]) is node
        with node.client() as client:
            assert client.call("EXISTS", *keys) == 2
        nodes.add(node.port)
    assert len(nodes) >= 2

    async def run() -> list[bool]:
        return list(await asyncio.gather(*(limiter.aallow("burst") for _ in range(20))))

    assert asyncio.run(run()).count(True) == 3
    assert limiter.reset("burst") is True
    other = RateLimiter.from_rate(
        TWO_RATES, storage=redis_cluster.url, key_prefix=f"{prefix}x", timeout=SAFE
    )
    other.allow("user:0")
    limiter.clear()  # every master is scanned: no key of the prefix is left anywhere
    for node in redis_cluster.nodes:
        with node.client() as client:
            keys = client.call("KEYS", "*")
            assert not [k for k in keys if k.startswith(f"{prefix}:")]
            if node is redis_cluster.node_for(f"{prefix}x:{{user:0}}:fixed:3:1s"):
                assert f"{prefix}x:{{user:0}}:fixed:3:1s" in keys
    assert limiter.allow("user:0") is True


def test_prefixes_and_keys_never_run_into_each_other(
    redis_server: RedisServer, redis: RespClient
) -> None:
    url = redis_server.url
    short = RateLimiter(1, 600, storage=url, key_prefix="a", timeout=SAFE)
    longer = RateLimiter(1, 600, storage=url, key_prefix="a:b", timeout=SAFE)
    other_rate = RateLimiter(2, 600, storage=url, key_prefix="a", timeout=SAFE)
    assert short.allow("b:k") and longer.allow("k")  # two keys, not one
    assert other_rate.allow("b:k")  # another rate under the same prefix: its own state
    assert short.allow("") and not short.allow("")  # the empty key is a key too
    assert sorted(redis.call("KEYS", "*")) == [
        "a:b:{k}:fixed:1:600s",
        "a:{b:k}:fixed:1:600s",
        "a:{b:k}:fixed:2:600s",
        "{a}::fixed:1:600s",
    ]
    short.clear()
    assert sorted(redis.call("KEYS", "*")) == ["a:b:{k}:fixed:1:600s"]


def test_thousands_of_concurrent_awaits_all_resolve(
    redis_server: RedisServer, redis: RespClient
) -> None:
    """Answers reach the event loop through a socket pair; a lost wake-up would leave some
    futures pending forever, which the timeout turns into a failure."""
    limiter = RateLimiter(1000, 600, "gcra", storage=redis_server.url, timeout=SAFE)

    async def run() -> list[bool]:
        calls = [limiter.aallow(f"k{n % 7}") for n in range(3000)]
        return list(await asyncio.wait_for(asyncio.gather(*calls), timeout=30))

    for _ in range(3):  # a new event loop each time: each gets its own bridge
        results = asyncio.run(run())
        assert len(results) == 3000
        redis.call("FLUSHALL")
    assert limiter.stats()["total_checks"] == 9000


def test_a_cancelled_await_leaves_the_others_alone(
    redis_server: RedisServer, redis: RespClient
) -> None:
    limiter = RateLimiter(5, 600, storage=redis_server.url, timeout=SAFE)

    async def run() -> tuple[bool, list[bool]]:
        doomed = asyncio.ensure_future(limiter.aallow("k"))
        doomed.cancel()
        rest = await asyncio.gather(*(limiter.aallow("k") for _ in range(6)))
        return doomed.cancelled(), list(rest)

    cancelled, rest = asyncio.run(run())
    assert cancelled
    # The cancelled call may or may not have reached Redis before the cancel; the others
    # all resolve, and together they admit exactly the limit.
    assert len(rest) == 6 and rest.count(True) in (4, 5)
    assert limiter.remaining("k") == 0


def test_an_outage_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer().start()
    try:
        limiter = RateLimiter(100, 600, storage=server.url, on_storage_error="allow", timeout=SAFE)
        assert limiter.allow("k")
        server.kill()
        with caplog.at_level(logging.INFO, logger="rust_py_rate_limit"):
            assert all(limiter.allow("k") for _ in range(5))  # fail open, five times

            async def twins() -> list[bool]:
                return list(await asyncio.gather(*(limiter.aallow("k") for _ in range(5))))

            assert all(asyncio.run(twins()))
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1
            assert "failed" in warnings[0].getMessage()
            assert "on_storage_error='allow'" in warnings[0].getMessage().replace('"', "'")
            server.start()
            deadline = time.monotonic() + 10
            while not limiter.storage_healthy and time.monotonic() < deadline:
                limiter.allow("k")
                time.sleep(0.01)
        recovered = [r for r in caplog.records if r.levelno == logging.INFO]
        assert len(recovered) == 1 and recovered[0].getMessage().endswith("answers again")
        assert limiter.stats()["storage_errors"] >= 10
    finally:
        server.close()


def evalsha_calls(redis: RespClient) -> int:
    stats = redis.call("INFO", "commandstats")
    for line in stats.splitlines():
        if line.startswith("cmdstat_evalsha:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_the_local_deny_cache_answers_a_refused_key_without_round_trips(
    redis_server: RedisServer, redis: RespClient
) -> None:
    clock = ManualClock()
    limiter = RateLimiter(
        2, 60, storage=redis_server.url, clock=clock, local_deny_cache=True, timeout=SAFE
    )
    assert limiter.local_deny_cache is True and "local_deny_cache=True" in repr(limiter)
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]
    redis.call("CONFIG", "RESETSTAT")
    clock.advance(20)
    refused = limiter.decide("k")
    assert (refused.allowed, refused.retry_after, refused.reset_after) == (False, 40.0, 40.0)
    assert limiter.remaining("k") == 0

    async def twin() -> bool:
        return await limiter.aallow("k")

    assert asyncio.run(twin()) is False
    assert limiter.allow("other") is True  # other keys still go to Redis
    assert evalsha_calls(redis) == 1
    assert limiter.stats()["blocked"] == 3  # the cached refusals are counted
    clock.advance(40)  # the retry time: Redis is asked again, and admits
    assert limiter.allow("k") is True
    assert evalsha_calls(redis) == 2


def test_reset_drops_a_cached_refusal(redis_server: RedisServer, redis: RespClient) -> None:
    limiter = RateLimiter(
        1, 600, storage=redis_server.url, clock=ManualClock(), local_deny_cache=True, timeout=SAFE
    )
    assert [limiter.allow("k"), limiter.allow("k")] == [True, False]
    assert limiter.reset("k") is True
    assert limiter.allow("k") is True


def test_without_the_cache_every_refusal_is_a_round_trip(
    redis_server: RedisServer, redis: RespClient
) -> None:
    limiter = RateLimiter(1, 600, storage=redis_server.url, timeout=SAFE)
    assert limiter.local_deny_cache is False
    limiter.allow("k")
    redis.call("CONFIG", "RESETSTAT")
    assert not any(limiter.allow("k") for _ in range(3))
    assert evalsha_calls(redis) == 3


@pytest.mark.parametrize(("value", "error"), [("yes", TypeError), (1, TypeError)])
def test_local_deny_cache_takes_a_bool(
    redis_server: RedisServer, value: object, error: type
) -> None:
    with pytest.raises(error, match="local_deny_cache"):
        RateLimiter(1, 1, storage=redis_server.url, local_deny_cache=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="local_deny_cache"):
        RateLimiter(1, 1, local_deny_cache=True)


def test_fallback_memory_decides_in_process_while_redis_is_down_and_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RedisServer().start()
    clock = ManualClock()
    try:
        limiter = RateLimiter(
            3, 600, storage=server.url, clock=clock, fallback="memory", timeout=SAFE
        )
        assert limiter.fallback == "memory" and 'fallback="memory"' in repr(limiter)
        assert limiter.allow("k")  # on Redis
        server.kill()
        with caplog.at_level(logging.WARNING, logger="rust_py_rate_limit"):
            # In process now: its own count, so the limit still holds while Redis is down.
            assert [limiter.allow("k") for _ in range(4)] == [True, True, True, False]

            async def twin() -> bool:
                return await limiter.aallow("k")

            assert asyncio.run(twin()) is False
            assert limiter.remaining("k") == 0
        assert limiter.stats()["storage_errors"] == 1  # one failure, then no probe for 5 s
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        # every decision is counted, whoever made it: 1 on Redis, then 3 + 2 in process
        assert (limiter.stats()["allowed"], limiter.stats()["blocked"]) == (4, 2)
        server.start()
        assert limiter.allow("fresh") is True  # still in process: not probed yet
        assert limiter.stats()["allowed"] == 5
        clock.advance(5)  # the probe interval: the next call tries Redis, which answers
        assert limiter.allow("fresh") is True
        assert limiter.stats()["allowed"] == 6
        assert limiter.stats()["storage_errors"] == 1
    finally:
        server.close()


def test_fallback_takes_memory_or_nothing(redis_server: RedisServer) -> None:
    with pytest.raises(ValueError, match="`fallback` must be 'memory'"):
        RateLimiter(1, 1, storage=redis_server.url, fallback="disk")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fallback"):
        RateLimiter(1, 1, fallback="memory")
    assert RateLimiter(1, 1, storage=redis_server.url).fallback is None


@pytest.fixture(scope="module")
def tls_server() -> Iterator[RedisServer]:
    """A redis-server that speaks only TLS, with a certificate from a throwaway authority."""
    server = RedisServer(tls=True).start()
    try:
        yield server
    finally:
        server.close()


def test_rediss_urls_speak_tls_checked_against_ssl_ca_certs(tls_server: RedisServer) -> None:
    limiter = RateLimiter(2, 600, "gcra", storage=tls_server.url, timeout=SAFE)
    assert [limiter.allow("tls") for _ in range(3)] == [True, True, False]

    async def twin() -> bool:
        return await limiter.aallow("tls-async")

    assert asyncio.run(twin()) is True
    assert limiter.stats()["storage_errors"] == 0


def test_a_certificate_from_an_untrusted_authority_is_refused(tls_server: RedisServer) -> None:
    # Without ssl_ca_certs the system's roots are trusted, and they never signed the test CA.
    url = f"rediss://127.0.0.1:{tls_server.port}/0"
    limiter = RateLimiter(2, 600, storage=url, timeout=SAFE)
    with pytest.raises(StorageError):
        limiter.allow("k")
    unchecked = RateLimiter(2, 600, storage=f"{url}?ssl_cert_reqs=none", timeout=SAFE)
    assert unchecked.allow("k") is True  # what ssl_cert_reqs=none is for
    plain = RateLimiter(2, 600, storage=f"redis://127.0.0.1:{tls_server.port}/0", timeout=SAFE)
    with pytest.raises(StorageError):
        plain.allow("k")  # a TLS-only server does not speak plain RESP


def test_an_unreadable_ssl_ca_certs_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValueError, match=r"nope\.pem"):
        RateLimiter(1, 1, storage=f"rediss://127.0.0.1:1/0?ssl_ca_certs={missing}")


def test_dynamic_tiers_reach_a_password_protected_redis() -> None:
    """The tiers are built from the limiter's own settings (`with_rate`), not from its
    displayed URL, whose password is hidden."""
    from rust_py_rate_limit.policy import RequestPolicy

    server = RedisServer().start()
    try:
        with server.client() as client:
            client.call("CONFIG", "SET", "requirepass", "s3cret")
        url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        limiter = RateLimiter(1, 600, storage=url, timeout=SAFE)
        assert "s3cret" not in limiter.storage
        tier = limiter.with_rate("3/minute")
        assert [tier.allow("k") for _ in range(4)] == [True, True, True, False]

        request = types.SimpleNamespace(environ={"REMOTE_ADDR": "203.0.113.7"}, headers={})
        policy = RequestPolicy(limiter, dynamic_limit=lambda r: "2/minute")
        assert [policy.decide(request)[0].allowed for _ in range(3)] == [True, True, False]
    finally:
        server.close()


def test_a_sync_call_that_must_reconnect_to_a_frozen_server_waits_one_timeout(
    own_server: RedisServer,
) -> None:
    """After a timed-out round trip the connection is dropped, so the next sync call connects
    again; the server accepts the connection but never answers. That call must still take one
    `timeout`, not two (the redis crate read the CLIENT SETINFO handshake's reply twice)."""
    timeout = 0.5
    limiter = RateLimiter(3, 3600, storage=own_server.url, on_storage_error="deny", timeout=timeout)
    connect(limiter)
    with own_server.frozen():
        limiter.allow("k")  # the pooled connection times out and is dropped
        took = sorted(timed(lambda: limiter.allow("k"))[1] for _ in range(3))
    assert took[1] < timeout * 1.8, f"a reconnecting call took {took} at timeout={timeout}"
