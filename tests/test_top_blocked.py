"""Names and the most refused keys (``name=``, ``track_top=``, ``top_blocked``), in memory, on
shared memory and on Redis."""

from __future__ import annotations

import asyncio
import pathlib
import random
from collections import Counter

import pytest
from redis_support import RedisServer

from rust_py_rate_limit import ManualClock, RateLimiter


def refuse(limiter: RateLimiter, counts: dict[str, int]) -> None:
    """Spends each key's one request, then makes it refused ``counts[key]`` times."""
    for key, times in counts.items():
        limiter.allow(key)
        for _ in range(times):
            assert not limiter.allow(key)


def test_the_most_refused_keys_come_first_with_their_counts(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 3600, clock=clock)
    assert limiter.track_top == 16, "tracked by default"
    refuse(limiter, {"ip:1": 3, "ip:2": 7, "ip:3": 1, "ip:4": 5})
    assert limiter.top_blocked(3) == [("ip:2", 7), ("ip:4", 5), ("ip:1", 3)]
    assert limiter.top_blocked() == [("ip:2", 7), ("ip:4", 5), ("ip:1", 3), ("ip:3", 1)]
    assert limiter.top_blocked(2, reset=True) == [("ip:2", 7), ("ip:4", 5)]
    assert limiter.top_blocked() == [], "reset started a new interval"
    assert not limiter.allow("ip:3")
    assert limiter.top_blocked() == [("ip:3", 1)]
    assert limiter.stats()["blocked"] == 17, "the statistics are not reset with it"


def test_heavy_hitters_among_many_keys_are_reported_within_the_bound() -> None:
    rng = random.Random(7)
    limiter = RateLimiter(1, 3600, track_top=4)
    truth: Counter[str] = Counter()
    for key in [f"heavy:{i}" for i in range(3)] + [f"tail:{i}" for i in range(2000)]:
        limiter.allow(key)  # spent: every later request of the key is refused
    for _ in range(20_000):
        key = f"heavy:{rng.randrange(3)}" if rng.random() < 0.5 else f"tail:{rng.randrange(2000)}"
        assert not limiter.allow(key)
        truth[key] += 1
    bound = sum(truth.values()) // 4  # N / track_top: no shard sees more than N refusals
    top = dict(limiter.top_blocked(100))
    for key, count in truth.items():
        if count > bound:
            assert key in top, key
    for key, count in top.items():
        assert truth[key] <= count <= truth[key] + bound, key
    assert [k for k, _ in limiter.top_blocked(3)] == sorted(
        [f"heavy:{i}" for i in range(3)], key=lambda k: -top[k]
    )


def test_a_limiter_not_tracking_says_so() -> None:
    limiter = RateLimiter(1, 60, track_top=0)
    assert limiter.track_top == 0
    refuse(limiter, {"k": 2})
    with pytest.raises(ValueError, match="track_top=0"):
        limiter.top_blocked()
    assert "track_top=0" in repr(limiter)


def test_names_default_to_the_algorithm_and_rates() -> None:
    assert RateLimiter(100, 60).name == "fixed:100/60s"
    assert RateLimiter(5, 0.5, "gcra").name == "gcra:5/0.5s"
    assert RateLimiter.from_rate("10/second; 1000/hour", "sliding").name == (
        "sliding:10/1s;1000/3600s"
    )
    named = RateLimiter(3, 1, name="login", track_top=8)
    assert named.name == "login"
    assert repr(named) == (
        'RateLimiter(limit=3, window_seconds=1, algorithm="fixed", track_top=8, name="login")'
    )
    other = named.with_rate("5/minute")
    assert other.track_top == 8, "track_top carries over"
    assert other.name == "fixed:5/60s", "a name belongs to one limiter"
    assert named.with_rate("5/minute", name="signup").name == "signup"


@pytest.mark.parametrize(
    ("kwargs", "error", "named"),
    [
        ({"name": ""}, ValueError, "`name`"),
        ({"name": "  "}, ValueError, "`name`"),
        ({"name": 5}, TypeError, "`name`"),
        ({"track_top": -1}, ValueError, "`track_top`"),
        ({"track_top": 65_537}, ValueError, "65537"),
        ({"track_top": True}, TypeError, "`track_top`"),
        ({"track_top": 2.0}, TypeError, "`track_top`"),
    ],
)
def test_bad_names_and_track_top_are_refused_by_name(
    kwargs: dict[str, object], error: type[Exception], named: str
) -> None:
    with pytest.raises(error) as raised:
        RateLimiter(1, 1, **kwargs)  # type: ignore[arg-type]
    assert named in str(raised.value)


@pytest.mark.parametrize(
    ("n", "error"), [(0, ValueError), (-3, ValueError), (True, TypeError), (1.5, TypeError)]
)
def test_a_bad_n_is_refused_by_name(n: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="`n`"):
        RateLimiter(1, 1).top_blocked(n)  # type: ignore[arg-type]


@pytest.mark.parametrize("reset", [1, 0, "yes"])
def test_a_reset_that_is_not_a_bool_is_refused_by_name(reset: object) -> None:
    with pytest.raises(TypeError, match=r"`reset` must be True or False") as raised:
        RateLimiter(1, 1).top_blocked(1, reset=reset)  # type: ignore[arg-type]
    assert repr(reset) in str(raised.value)


def test_a_shared_memory_limiter_tracks_its_refusals(tmp_path: pathlib.Path) -> None:
    directory = tmp_path / "shm"
    directory.mkdir(mode=0o700)
    limiter = RateLimiter(1, 3600, storage=f"shm://top?path={directory}")
    refuse(limiter, {"a": 2, "b": 4})
    assert limiter.decide("a").allowed is False
    assert limiter.top_blocked() == [("b", 4), ("a", 3)]


def test_a_redis_limiter_tracks_refusals_sync_and_async(redis_server: RedisServer) -> None:
    limiter = RateLimiter(1, 3600, storage=redis_server.url, key_prefix="top-blocked")
    for key in ("a", "b"):
        limiter.reset(key)
    refuse(limiter, {"a": 1})

    async def run() -> None:
        await limiter.aallow("b")
        for _ in range(3):
            assert not await limiter.adecide("b")
        assert (await limiter.apeek("b")).allowed is False  # a peek is not a refusal

    asyncio.run(run())
    assert limiter.top_blocked() == [("b", 3), ("a", 1)]


def test_a_redis_limiter_keeps_its_round_trips_latency(redis_server: RedisServer) -> None:
    assert RateLimiter(1, 1).storage_latency() is None, "none in process"
    limiter = RateLimiter(5, 60, storage=redis_server.url, key_prefix="latency")
    empty = limiter.storage_latency()
    assert empty is not None and empty["count"] == 0
    for _ in range(7):
        limiter.allow("k")

    async def run() -> None:
        await limiter.adecide("k")

    asyncio.run(run())
    latency = limiter.storage_latency()
    assert latency is not None
    assert latency["count"] == 8, "sync and async round trips"
    bounds = [bound for bound, _ in latency["buckets"]]
    assert bounds[0] == 0.00005 and bounds[-1] == 1.0 and bounds == sorted(bounds)
    counts = [n for _, n in latency["buckets"]]
    assert counts == sorted(counts), "cumulative"
    assert counts[-1] <= 8 and 0 < latency["sum"] < 8.0
