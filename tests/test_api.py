"""The public ``RateLimiter`` API: construction, properties, repr, and what every method answers.

Time only moves through ``ManualClock.advance``; no test sleeps.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import random
import re
from collections.abc import Callable
from typing import Any

import pytest

import rust_py_rate_limit
from rust_py_rate_limit import (
    ALGORITHMS,
    CheckResult,
    Decision,
    ManualClock,
    RateLimiter,
    Stats,
)

WINDOWS = ["fixed", "sliding"]
BUCKETS = ["token_bucket", "leaky_bucket", "gcra"]
CHECK_KEYS = {"allowed", "limit", "remaining", "reset_after_seconds", "retry_after_seconds"}
STATS_KEYS = {
    "allowed",
    "blocked",
    "total_checks",
    "active_keys",
    "rejected_full",
    "evicted",
    "storage_errors",
}


def admitted(limiter: RateLimiter, key: str, attempts: int, cost: int = 1) -> int:
    """How many of `attempts` calls of `allow(key, cost)` were admitted."""
    return sum(limiter.allow(key, cost) for _ in range(attempts))


# --- module constants -----------------------------------------------------------------------


def test_algorithms_lists_the_five_names_in_order() -> None:
    assert ALGORITHMS == ["fixed", "sliding", "token_bucket", "leaky_bucket", "gcra"]
    assert rust_py_rate_limit.ALGORITHMS is ALGORITHMS


def test_version_is_the_installed_distribution_version() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(\S*)", rust_py_rate_limit.__version__)
    assert rust_py_rate_limit.__version__ == importlib.metadata.version("rust-py-rate-limit")


def test_public_names_are_exported() -> None:
    for name in rust_py_rate_limit.__all__:
        assert hasattr(rust_py_rate_limit, name), name


# --- construction and properties -----------------------------------------------------------


def test_defaults() -> None:
    limiter = RateLimiter(3, 10)
    assert limiter.max_requests == 3
    assert limiter.window_seconds == 10
    assert type(limiter.window_seconds) is int
    assert limiter.rates == [(3, 10)]
    assert limiter.algorithm == "fixed"
    assert limiter.burst is None
    assert limiter.max_keys is None
    assert limiter.cleanup_interval is None
    assert repr(RateLimiter(3, 10, None)) == repr(limiter), "algorithm=None means fixed"


def test_every_setting_by_keyword(clock: ManualClock) -> None:
    limiter = RateLimiter(
        limit=5,
        window_seconds=60,
        algorithm="gcra",
        max_keys=100,
        cleanup_interval=30,
        burst=8,
        clock=clock,
    )
    assert (limiter.max_requests, limiter.window_seconds, limiter.algorithm) == (5, 60, "gcra")
    assert (limiter.burst, limiter.max_keys, limiter.cleanup_interval) == (8, 100, 30)
    assert limiter.rates == [(5, 60)]


def test_settings_by_position() -> None:
    limiter = RateLimiter(5, 60, "sliding", 100, 0.5)
    assert (limiter.algorithm, limiter.max_keys, limiter.cleanup_interval) == ("sliding", 100, 0.5)
    assert type(limiter.cleanup_interval) is float


@pytest.mark.parametrize(
    ("window", "expected_type"), [(10, int), (10.0, float), (0.5, float), (86400, int)]
)
def test_window_seconds_keeps_the_type_it_was_given(window: float, expected_type: type) -> None:
    limiter = RateLimiter(3, window)
    assert limiter.window_seconds == window
    assert type(limiter.window_seconds) is expected_type


def test_the_largest_limit_is_accepted() -> None:
    assert RateLimiter(4294967295, 1).max_requests == 4294967295


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_algorithm_property_round_trips(algorithm: str) -> None:
    assert RateLimiter(3, 10, algorithm).algorithm == algorithm


@pytest.mark.parametrize("algorithm", BUCKETS)
def test_bucket_burst_defaults_to_the_limit(algorithm: str) -> None:
    assert RateLimiter(7, 10, algorithm).burst == 7
    assert RateLimiter(7, 10, algorithm, burst=2).burst == 2
    assert RateLimiter(7, 10, algorithm, burst=20).burst == 20


@pytest.mark.parametrize("algorithm", WINDOWS)
def test_window_algorithms_have_no_burst(algorithm: str) -> None:
    assert RateLimiter(7, 10, algorithm).burst is None
    assert RateLimiter(7, 10, algorithm, burst=None).burst is None


@pytest.mark.parametrize(
    ("rate", "rates"),
    [
        ("100/minute", [(100, 60)]),
        ("100 per minute", [(100, 60)]),
        ("5/2 seconds", [(5, 2)]),
        ("1/DAY", [(1, 86400)]),
        ("3 per hour", [(3, 3600)]),
        ("  7 / 3 Minutes ", [(7, 180)]),
        ("1/month", [(1, 30 * 86400)]),
        ("2/year", [(2, 360 * 86400)]),
        ("10/second; 1000/hour", [(10, 1), (1000, 3600)]),
        ("10/second, 1000/hour", [(10, 1), (1000, 3600)]),
        ("10/second;1000/hour, 5000 per 2 days", [(10, 1), (1000, 3600), (5000, 172800)]),
    ],
)
def test_from_rate_parses_rate_strings(rate: str, rates: list[tuple[int, int]]) -> None:
    limiter = RateLimiter.from_rate(rate)
    assert limiter.rates == rates
    assert limiter.max_requests == rates[0][0]
    assert limiter.window_seconds == rates[0][1]
    assert type(limiter.window_seconds) is int
    assert limiter.algorithm == "fixed"


def test_from_rate_takes_every_setting(clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate(
        "4/second", "token_bucket", burst=2, max_keys=9, cleanup_interval=0.25, clock=clock
    )
    assert (limiter.algorithm, limiter.burst, limiter.max_keys) == ("token_bucket", 2, 9)
    assert limiter.cleanup_interval == 0.25
    assert admitted(limiter, "k", 5) == 2, "burst 2 at once"
    clock.advance(0.25)
    assert admitted(limiter, "k", 5) == 1, "then 4 a second"


def test_from_rate_equals_the_constructor(clock: ManualClock) -> None:
    a = RateLimiter.from_rate("5/2 seconds", "sliding", clock=clock)
    b = RateLimiter(5, 2, "sliding", clock=clock)
    assert repr(a) == repr(b)
    for step in range(12):
        clock.advance(0.3)
        assert a.check(f"k{step % 2}") == b.check(f"k{step % 2}")


# --- repr ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: RateLimiter(3, 10, max_keys=10, cleanup_interval=30),
            'RateLimiter(limit=3, window_seconds=10, algorithm="fixed", max_keys=10, '
            "cleanup_interval=30)",
        ),
        (lambda: RateLimiter(3, 10), 'RateLimiter(limit=3, window_seconds=10, algorithm="fixed")'),
        (
            lambda: RateLimiter(3, 2.5, "gcra", burst=5),
            'RateLimiter(limit=3, window_seconds=2.5, algorithm="gcra", burst=5)',
        ),
        (
            lambda: RateLimiter(3, 10.0, "token_bucket"),
            'RateLimiter(limit=3, window_seconds=10.0, algorithm="token_bucket")',
        ),
        (
            lambda: RateLimiter(3, 10, "sliding", cleanup_interval=0.25),
            'RateLimiter(limit=3, window_seconds=10, algorithm="sliding", cleanup_interval=0.25)',
        ),
        (
            lambda: RateLimiter.from_rate("100/minute"),
            'RateLimiter(limit=100, window_seconds=60, algorithm="fixed")',
        ),
        (
            lambda: RateLimiter.from_rate("10/second; 1000/hour", "sliding"),
            'RateLimiter.from_rate("10/second; 1000/hour", algorithm="sliding")',
        ),
        (
            lambda: RateLimiter.from_rate("1/second,2/minute", "gcra", max_keys=5),
            'RateLimiter.from_rate("1/second,2/minute", algorithm="gcra", max_keys=5)',
        ),
    ],
)
def test_repr(make: Callable[[], RateLimiter], expected: str) -> None:
    limiter = make()
    assert repr(limiter) == expected
    # The repr is valid Python that rebuilds an equivalent limiter.
    rebuilt = eval(repr(limiter), {"RateLimiter": RateLimiter})
    assert repr(rebuilt) == expected
    assert rebuilt.rates == limiter.rates


# --- check() --------------------------------------------------------------------------------


def test_check_returns_exactly_the_documented_keys(clock: ManualClock) -> None:
    result = RateLimiter(3, 10, clock=clock).check("k")
    assert set(result) == CHECK_KEYS
    assert type(result["allowed"]) is bool
    assert type(result["limit"]) is int
    assert type(result["remaining"]) is int
    assert type(result["reset_after_seconds"]) is int
    assert type(result["retry_after_seconds"]) is int


def test_check_fixed_window_sequence(clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, clock=clock)

    def result(allowed: bool, remaining: int, reset: int, retry: int) -> dict[str, Any]:
        return {
            "allowed": allowed,
            "limit": 3,
            "remaining": remaining,
            "reset_after_seconds": reset,
            "retry_after_seconds": retry,
        }

    assert [limiter.check("k") for _ in range(4)] == [
        result(True, 2, 10, 0),
        result(True, 1, 10, 0),
        result(True, 0, 10, 0),
        result(False, 0, 10, 10),
    ]
    clock.advance(2.5)
    # 7.5 s left: whole seconds, rounded up.
    assert limiter.check("k") == result(False, 0, 8, 8)
    clock.advance(7.4)
    assert limiter.check("k") == result(False, 0, 1, 1)
    clock.advance(0.1)
    assert limiter.check("k") == result(True, 2, 10, 0)


def test_check_rounds_fractional_waits_up(clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, "gcra", clock=clock)  # one request per 3.33 s
    for _ in range(3):
        assert limiter.check("k")["retry_after_seconds"] == 0
    denied = limiter.check("k")
    assert denied["allowed"] is False
    assert denied["retry_after_seconds"] == 4
    assert denied["reset_after_seconds"] == 10
    clock.advance(3.3)
    assert limiter.check("k")["retry_after_seconds"] == 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_check_of_a_cost_above_the_capacity_is_never(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(5, 10, algorithm, clock=clock)
    assert limiter.allow("k", 2)
    result = limiter.check("k", 6)
    assert result["allowed"] is False
    assert result["retry_after_seconds"] is None
    assert result["remaining"] == 3
    assert limiter.remaining("k") == 3, "nothing consumed"


# --- decide() and Decision -----------------------------------------------------------------


def test_decide_returns_float_seconds(clock: ManualClock) -> None:
    limiter = RateLimiter(2, 5, clock=clock)
    first = limiter.decide("k")
    assert isinstance(first, Decision)
    assert (first.allowed, first.limit, first.remaining) == (True, 2, 1)
    assert type(first.reset_after) is float
    assert type(first.retry_after) is float
    assert (first.reset_after, first.retry_after) == (5.0, 0.0)
    limiter.decide("k")
    clock.advance(1.25)
    denied = limiter.decide("k")
    assert (denied.allowed, denied.remaining) == (False, 0)
    assert denied.retry_after == pytest.approx(3.75)
    assert denied.reset_after == pytest.approx(3.75)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_decision_to_dict_matches_check(algorithm: str) -> None:
    """Two identical limiters answer a script of calls; check() and decide().to_dict() agree."""
    clock_a, clock_b = ManualClock(), ManualClock()
    a = RateLimiter(4, 10, algorithm, clock=clock_a)
    b = RateLimiter(4, 10, algorithm, clock=clock_b)
    script = [(0, 1), (0, 2), (0, 1), (0, 1), (1.5, 1), (0.3, 3), (4, 2), (0, 9), (30, 4), (0, 1)]
    for advance, cost in script:
        clock_a.advance(advance)
        clock_b.advance(advance)
        decision = b.decide("k", cost)
        assert decision.to_dict() == a.check("k", cost), (advance, cost)


def test_decision_equality() -> None:
    assert Decision(True, 3, 2, 10.0, 0.0) == Decision(True, 3, 2, 10.0, 0.0)
    assert Decision(True, 3, 2, 10.0, 0.0) != Decision(True, 3, 1, 10.0, 0.0)
    assert Decision(False, 3, 0, 10.0, 2.5) != Decision(False, 3, 0, 10.0, 2.0)
    assert Decision(False, 3, 0, 0.0, math.inf) == Decision(False, 3, 0, 0.0, math.inf)
    assert Decision(True, 3, 2, 10.0, 0.0) != "Decision"


def test_equal_decisions_hash_alike_and_serve_as_dict_keys() -> None:
    a, b = Decision(True, 3, 2, 10.0, 0.0), Decision(True, 3, 2, 10.0, 0.0)
    assert hash(a) == hash(b)
    assert {a: "seen"}[b] == "seen"
    assert len({a, b, Decision(False, 3, 0, 10.0, math.inf)}) == 2


def test_decide_equals_a_constructed_decision(clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, clock=clock)
    assert limiter.decide("k") == Decision(True, 3, 2, 10.0, 0.0)
    clock.advance(4)
    assert limiter.decide("k", 2) == Decision(True, 3, 0, 6.0, 0.0)
    assert limiter.decide("k") == Decision(False, 3, 0, 6.0, 6.0)


def test_decision_properties_and_repr() -> None:
    d = Decision(False, 3, 1, 2.5, math.inf)
    assert (d.allowed, d.limit, d.remaining, d.reset_after, d.retry_after) == (
        False,
        3,
        1,
        2.5,
        math.inf,
    )
    assert d.to_dict() == {
        "allowed": False,
        "limit": 3,
        "remaining": 1,
        "reset_after_seconds": 3,
        "retry_after_seconds": None,
    }
    assert repr(d) == (
        "Decision(allowed=False, limit=3, remaining=1, reset_after=2.5, retry_after=inf)"
    )


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_decide_of_a_cost_above_the_capacity(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(5, 10, algorithm, clock=clock)
    denied = limiter.decide("k", 6)
    assert (denied.allowed, denied.limit, denied.remaining) == (False, 5, 5)
    assert denied.retry_after == math.inf
    assert limiter.stats()["active_keys"] == 0, "a refused new key is not tracked"
    assert limiter.stats()["blocked"] == 1
    assert admitted(limiter, "k", 10) == 5, "nothing was consumed"


# --- remaining(), reset(), clear() ---------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_remaining_does_not_consume_or_track(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(4, 10, algorithm, clock=clock)
    assert [limiter.remaining("k") for _ in range(10)] == [4] * 10
    assert limiter.stats() == {
        "name": limiter.name,
        "allowed": 0,
        "blocked": 0,
        "total_checks": 0,
        "active_keys": 0,
        "rejected_full": 0,
        "evicted": 0,
        "storage_errors": 0,
    }
    assert limiter.allow("k", 3)
    assert [limiter.remaining("k") for _ in range(10)] == [1] * 10
    assert admitted(limiter, "k", 5) == 1
    assert limiter.remaining("k") == 0
    assert limiter.remaining("other") == 4
    assert limiter.stats()["active_keys"] == 1


@pytest.mark.parametrize("algorithm", BUCKETS)
def test_remaining_grows_as_a_bucket_refills(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(4, 8, algorithm, clock=clock)  # one token per 2 s
    assert admitted(limiter, "k", 4) == 4
    readings = []
    for _ in range(5):
        readings.append(limiter.remaining("k"))
        clock.advance(2)
    assert readings == [0, 1, 2, 3, 4]
    clock.advance(100)
    assert limiter.remaining("k") == 4, "never above the capacity"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_reset_forgets_one_key(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(2, 10, algorithm, clock=clock)
    assert admitted(limiter, "a", 3) == 2
    assert admitted(limiter, "b", 3) == 2
    assert limiter.reset("a") is True
    assert limiter.reset("a") is False
    assert limiter.reset("never-seen") is False
    assert limiter.remaining("a") == 2
    assert admitted(limiter, "a", 3) == 2
    assert admitted(limiter, "b", 1) == 0, "other keys keep their state"


def test_clear_forgets_every_key_but_keeps_the_totals(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 10, clock=clock)
    for key in ("a", "b", "c"):
        assert admitted(limiter, key, 2) == 1
    limiter.clear()
    assert limiter.stats() == {
        "name": limiter.name,
        "allowed": 3,
        "blocked": 3,
        "total_checks": 6,
        "active_keys": 0,
        "rejected_full": 0,
        "evicted": 0,
        "storage_errors": 0,
    }
    assert all(limiter.allow(key) for key in ("a", "b", "c"))
    assert limiter.stats()["active_keys"] == 3


# --- stats() and stats_json() --------------------------------------------------------------


def test_stats_counts_every_decision(clock: ManualClock) -> None:
    limiter = RateLimiter(2, 10, clock=clock)
    assert limiter.stats() == {"name": limiter.name, **dict.fromkeys(STATS_KEYS, 0)}
    admitted(limiter, "a", 5)  # 2 allowed, 3 blocked
    limiter.check("b")
    limiter.decide("b", 3)  # blocked: cost above the limit
    limiter.remaining("c")  # not a check
    stats = limiter.stats()
    assert set(stats) == STATS_KEYS | {"name"}
    assert stats == {
        "name": limiter.name,
        "allowed": 3,
        "blocked": 4,
        "total_checks": 7,
        "active_keys": 2,
        "rejected_full": 0,
        "evicted": 0,
        "storage_errors": 0,
    }
    assert all(type(stats[k]) is int for k in STATS_KEYS)  # type: ignore[literal-required]


def test_stats_json_parses_to_stats(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 10, max_keys=2, clock=clock)
    for key in ("a", "a", "b", "c", "d"):
        limiter.allow(key)
    as_json = json.loads(limiter.stats_json())
    assert as_json == limiter.stats()
    assert as_json == {
        "name": limiter.name,
        "allowed": 2,
        "blocked": 3,
        "total_checks": 5,
        "active_keys": 2,
        "rejected_full": 2,
        "evicted": 0,
        "storage_errors": 0,
    }


@pytest.mark.parametrize("name", [None, 'api "v2"\\ \n\x01 é ✓'])
def test_stats_name_the_limiter_and_its_json_escapes_the_name(name: str | None) -> None:
    limiter = RateLimiter(3, 60, "sliding", name=name)
    expected = "sliding:3/60s" if name is None else name
    assert limiter.stats()["name"] == limiter.name == expected
    assert json.loads(limiter.stats_json())["name"] == expected


# --- cleanup_expired() ----------------------------------------------------------------------


def test_cleanup_expired_removes_only_expired_keys(clock: ManualClock) -> None:
    limiter = RateLimiter(2, 10, clock=clock)
    for i in range(50):
        limiter.allow(f"old-{i}")
    clock.advance(5)
    assert limiter.allow("young")
    assert limiter.cleanup_expired() == 0
    clock.advance(4.999)
    assert limiter.cleanup_expired() == 0
    clock.advance(0.001)
    assert limiter.cleanup_expired() == 50
    assert limiter.cleanup_expired() == 0
    assert limiter.stats()["active_keys"] == 1
    assert limiter.remaining("young") == 1, "the live key kept its state"
    clock.advance(5)
    assert limiter.cleanup_expired() == 1
    assert limiter.stats()["active_keys"] == 0


@pytest.mark.parametrize(
    ("algorithm", "live_until"),
    # A key used once at t=0 of a 2-per-10s limiter holds state until then:
    # fixed: its window; sliding: the window after it too; buckets: until the bucket is full.
    [("fixed", 10), ("sliding", 20), ("token_bucket", 5), ("leaky_bucket", 5), ("gcra", 5)],
)
def test_cleanup_expired_per_algorithm(
    algorithm: str, live_until: float, clock: ManualClock
) -> None:
    limiter = RateLimiter(2, 10, algorithm, clock=clock)
    limiter.allow("k")
    clock.advance(live_until - 0.001)
    assert limiter.cleanup_expired() == 0
    assert limiter.stats()["active_keys"] == 1
    clock.advance(0.001)
    assert limiter.cleanup_expired() == 1
    assert limiter.stats()["active_keys"] == 0
    assert limiter.remaining("k") == 2


# --- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keys_are_independent(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, algorithm, clock=clock)
    assert admitted(limiter, "a", 5) == 3
    assert admitted(limiter, "b", 5) == 3
    assert limiter.remaining("c") == 3
    assert limiter.stats()["active_keys"] == 2


LONG_AND_ODD_KEYS = [
    "",
    "a",
    "exactly15bytes!",
    "exactly15bytes!!",
    "x" * 15 + "a",
    "x" * 15 + "b",
    "2001:db8:85a3::8a2e:370:7334/some/long/path",
    "k" * 10_000,
    "\u65e5\u672c\u8a9e\u306e\u30ad\u30fc",  # Japanese
    "\U0001f511" * 5,  # 20 bytes of emoji
    "caf\u00e9",
    "cafe\u0301",  # the same text, decomposed: a different str, so a different key
    "a\x00b",
    "a\x00",
]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_long_and_unicode_keys_are_distinct_keys(algorithm: str, clock: ManualClock) -> None:
    assert len(set(LONG_AND_ODD_KEYS)) == len(LONG_AND_ODD_KEYS)
    limiter = RateLimiter(2, 10, algorithm, clock=clock)
    for key in LONG_AND_ODD_KEYS:
        assert limiter.remaining(key) == 2, repr(key)
        assert admitted(limiter, key, 3) == 2, repr(key)
    assert limiter.stats()["active_keys"] == len(LONG_AND_ODD_KEYS)
    for key in LONG_AND_ODD_KEYS:
        assert limiter.remaining(key) == 0
        assert limiter.reset(key) is True
    assert limiter.stats()["active_keys"] == 0


def test_str_subclasses_are_keys(clock: ManualClock) -> None:
    class Key(str):
        pass

    limiter = RateLimiter(1, 10, clock=clock)
    assert limiter.allow(Key("k"))
    assert not limiter.allow("k"), "the same text is the same key"


def test_any_str_is_a_key_even_with_lone_surrogates(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 10, clock=clock)
    key = b"user-\xff".decode("utf-8", "surrogateescape")  # "user-\udcff", as os.fsdecode makes
    assert limiter.allow(key)
    assert not limiter.allow(key)
    assert limiter.remaining(key) == 0
    # Distinct from every other key: another lone surrogate, and the text it resembles.
    assert limiter.allow(b"user-\xfe".decode("utf-8", "surrogateescape"))
    assert limiter.allow("user-\xff")
    assert limiter.allow("user-")
    assert limiter.reset(key)
    assert limiter.allow(key)


# --- max_keys --------------------------------------------------------------------------------


def test_a_full_map_refuses_new_keys_for_one_window(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 2, max_keys=2, clock=clock)
    assert limiter.allow("a")
    assert limiter.allow("b")
    refused = limiter.check("c")
    assert refused["allowed"] is False
    assert refused["retry_after_seconds"] == 2
    assert limiter.decide("d").retry_after == 2.0
    assert limiter.stats() == {
        "name": limiter.name,
        "allowed": 2,
        "blocked": 2,
        "total_checks": 4,
        "active_keys": 2,
        "rejected_full": 2,
        "evicted": 0,
        "storage_errors": 0,
    }
    # Tracked keys are never evicted: they keep their state, and a denial of one is an
    # ordinary denial, not a full-map refusal.
    assert not limiter.allow("a")
    assert limiter.remaining("b") == 0
    assert limiter.stats()["rejected_full"] == 2
    # Once they expire, their room is reclaimed for the newcomer.
    clock.advance(2)
    assert limiter.allow("c")
    assert limiter.stats()["active_keys"] == 1
    assert limiter.allow("d")
    assert not limiter.allow("e")
    assert limiter.stats()["rejected_full"] == 3


def test_a_full_map_sweeps_for_room_at_most_once_a_second(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 0.5, max_keys=1, clock=clock)
    assert limiter.allow("a")
    clock.advance(0.5)  # "a" expired: the first sweep for room reclaims it
    assert limiter.allow("b")
    clock.advance(0.5)  # "b" expired, but the last sweep was only 0.5 s ago
    assert not limiter.allow("c")
    stats = limiter.stats()
    assert (stats["active_keys"], stats["rejected_full"]) == (1, 1)
    clock.advance(0.49)
    assert not limiter.allow("c")
    clock.advance(0.01)  # a second after the last sweep
    assert limiter.allow("c")
    assert limiter.stats()["rejected_full"] == 2


def test_an_explicit_cleanup_makes_room_at_once(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 0.5, max_keys=1, clock=clock)
    assert limiter.allow("a")
    clock.advance(0.5)
    assert limiter.allow("b")
    clock.advance(0.5)
    assert limiter.cleanup_expired() == 1
    assert limiter.allow("c")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_max_keys_for_every_algorithm(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, algorithm, max_keys=3, clock=clock)
    for i in range(3):
        assert limiter.allow(f"k{i}")
    refused = limiter.decide("new")
    assert (refused.allowed, refused.limit, refused.retry_after) == (False, 3, 10.0)
    assert limiter.stats()["rejected_full"] == 1
    assert admitted(limiter, "k0", 5) == 2, "tracked keys go on as usual"
    assert limiter.reset("k1")
    assert limiter.allow("new"), "a reset frees a slot"


def test_max_keys_with_several_rates_reports_the_first_rate(clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate("2/second; 10/minute", max_keys=1, clock=clock)
    assert limiter.allow("a")
    refused = limiter.check("b")
    assert refused["allowed"] is False
    assert (refused["limit"], refused["retry_after_seconds"]) == (2, 1)


# --- several rates -------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_rate_must_admit(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate("3/second; 4/minute", algorithm, clock=clock)
    decisions = [limiter.decide("k") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[-1].limit == 3, "the per-second rate binds"
    clock.advance(5)
    decisions = [limiter.decide("k") for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, False, False]
    assert decisions[0].limit == 4, "the minute rate has the fewest remaining"
    assert decisions[0].remaining == 0
    assert decisions[1].limit == 4, "the per-minute rate binds"
    assert decisions[1].retry_after > 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_denied_request_consumes_from_no_rate(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate("2/second; 3/minute", algorithm, clock=clock)
    assert admitted(limiter, "k", 2) == 2
    # Denied by the per-second rate: these must not use up the minute's last request.
    for _ in range(5):
        denied = limiter.decide("k")
        assert (denied.allowed, denied.limit) == (False, 2)
    clock.advance(2)
    assert limiter.allow("k"), "the minute's third request is still there"
    denied = limiter.decide("k")
    assert (denied.allowed, denied.limit) == (False, 3)


def test_several_rates_report_the_tightest_admission(clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate("10/second; 3/minute", clock=clock)
    assert limiter.decide("k") == Decision(True, 3, 2, 60.0, 0.0)
    assert limiter.remaining("k") == 2
    assert limiter.decide("k", 2) == Decision(True, 3, 0, 60.0, 0.0)
    denied = limiter.check("k")
    assert (denied["allowed"], denied["limit"], denied["retry_after_seconds"]) == (False, 3, 60)


def test_several_rates_with_a_cost(clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate("5/second; 6/minute", "token_bucket", clock=clock)
    assert limiter.allow("k", 4)
    assert not limiter.allow("k", 2), "the second's bucket has 1 left"
    clock.advance(1)
    assert not limiter.allow("k", 3), "the minute has only 2 left"
    assert limiter.allow("k", 2)
    assert 0 < limiter.decide("k", 5).retry_after < math.inf
    assert limiter.decide("k", 6).retry_after == math.inf, "more than the second's bucket holds"


def test_a_multi_rate_key_expires_when_every_rate_has(clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate("1/second; 5/minute", clock=clock)
    assert limiter.allow("k")
    clock.advance(30)
    assert limiter.cleanup_expired() == 0
    assert limiter.remaining("k") == 1, "4 of the minute left, but 1 a second"
    clock.advance(30)
    assert limiter.cleanup_expired() == 1


# --- cost ------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_cost_consumes_that_many(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(5, 10, algorithm, clock=clock)
    steps = [(3, True, 2), (3, False, 2), (2, True, 0), (1, False, 0)]
    for cost, allowed, remaining in steps:
        d = limiter.decide("k", cost)
        assert (d.allowed, d.remaining) == (allowed, remaining), (cost, d)
    assert limiter.stats()["allowed"] == 2
    assert limiter.decide("fresh", 5).allowed, "the whole capacity at once"
    assert limiter.allow("other", cost=1)


@pytest.mark.parametrize("algorithm", BUCKETS)
def test_cost_above_the_burst_is_never(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(10, 10, algorithm, burst=2, clock=clock)
    assert limiter.decide("k", 3).retry_after == math.inf
    assert limiter.decide("k", 2).allowed


# --- each algorithm's headline behaviour ----------------------------------------------------


def test_fixed_window_starts_at_the_keys_first_request(clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, "fixed", clock=clock)
    clock.advance(7)
    assert admitted(limiter, "k", 5) == 3
    clock.advance(5)  # t=12: "k"'s window runs 7..17
    assert admitted(limiter, "other", 5) == 3
    assert not limiter.allow("k")
    assert limiter.check("k")["retry_after_seconds"] == 5
    clock.advance(4.999)
    assert not limiter.allow("k")
    clock.advance(0.001)  # t=17
    assert admitted(limiter, "k", 5) == 3
    assert admitted(limiter, "other", 1) == 0, "'other' is still in its window 12..22"


def test_fixed_window_allows_a_double_burst_at_the_boundary(clock: ManualClock) -> None:
    limiter = RateLimiter(10, 10, "fixed", clock=clock)
    assert limiter.allow("k")
    clock.advance(9.9)
    assert admitted(limiter, "k", 20) == 9
    clock.advance(0.1)
    assert admitted(limiter, "k", 20) == 10, "a fresh window, as the algorithm says"


def test_sliding_window_has_no_double_burst(clock: ManualClock) -> None:
    limiter = RateLimiter(10, 10, "sliding", clock=clock)
    assert limiter.allow("k")
    clock.advance(9.9)
    assert admitted(limiter, "k", 20) == 9
    clock.advance(0.1)  # the boundary: the previous window still weighs in full
    assert admitted(limiter, "k", 20) == 0
    clock.advance(5)  # half of it is left: 5 used of 10
    assert admitted(limiter, "k", 20) == 5
    clock.advance(5)  # t=20: a new window, where the previous one's 5 weigh in full
    assert admitted(limiter, "k", 20) == 5


@pytest.mark.parametrize("algorithm", BUCKETS)
def test_buckets_admit_the_burst_then_refill_at_the_rate(
    algorithm: str, clock: ManualClock
) -> None:
    limiter = RateLimiter(10, 10, algorithm, burst=5, clock=clock)  # 1 a second, 5 at once
    assert admitted(limiter, "k", 10) == 5
    assert limiter.decide("k").retry_after == pytest.approx(1.0)
    clock.advance(1)
    assert admitted(limiter, "k", 10) == 1
    clock.advance(3)
    assert admitted(limiter, "k", 10) == 3
    clock.advance(0.5)
    assert admitted(limiter, "k", 10) == 0
    clock.advance(100)
    assert admitted(limiter, "k", 10) == 5, "refills only up to the burst"


@pytest.mark.parametrize("algorithm", BUCKETS)
def test_bucket_default_burst_is_the_limit(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(4, 2, algorithm, clock=clock)  # 4 at once, then one per 0.5 s
    assert admitted(limiter, "k", 10) == 4
    for _ in range(4):
        clock.advance(0.5)
        assert admitted(limiter, "k", 10) == 1
    clock.advance(0.25)
    assert admitted(limiter, "k", 10) == 0


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("fixed", 50),  # 5 in each of 10 windows
        # The sliding counter weighs the previous window as if spread evenly; under constant
        # pressure that is conservative by one request a window: 5 + 9 * 4.
        ("sliding", 41),
        # The burst at t=0, then one every 2 s (at 2, 4, ..., 98).
        ("token_bucket", 54),
        ("leaky_bucket", 54),
        ("gcra", 54),
    ],
)
def test_admissions_under_constant_pressure(
    algorithm: str, expected: int, clock: ManualClock
) -> None:
    limiter = RateLimiter(5, 10, algorithm, clock=clock)
    total = 0
    for _ in range(1000):  # 100 s, one attempt every 0.1 s
        total += limiter.allow("k")
        clock.advance(0.1)
    assert total == expected


# --- the reported times are exact --------------------------------------------------------------

NANOSECOND = 1e-9


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("rate", [None, "3/second; 5/4 seconds", "2/second, 7/10 seconds"])
def test_retry_after_is_the_first_instant_that_admits(algorithm: str, rate: str | None) -> None:
    """Random scripts: a denied request is still denied 1 ns before `retry_after` and admitted
    at it; an admitted one leaves `remaining` as reported; cost-1 admissions match remaining."""
    for seed in range(40):
        rnd = random.Random(seed)
        clock = ManualClock()
        if rate is None:
            burst = rnd.choice([None, rnd.randint(1, 9)]) if algorithm in BUCKETS else None
            limit, window = rnd.randint(1, 7), rnd.choice([0.5, 1, 2, 3, 10])
            limiter = RateLimiter(limit, window, algorithm, burst=burst, clock=clock)
        else:
            limiter = RateLimiter.from_rate(rate, algorithm, clock=clock)
        for step in range(60):
            clock.advance(rnd.choice([0, 0, 0, 0.001, 0.1, 0.37, 1, 2.5]))
            cost = rnd.choice([1, 1, 1, 2, 3])
            remaining = limiter.remaining("k")
            decision = limiter.decide("k", cost)
            context = (seed, step, cost, remaining, decision)
            if decision.allowed:
                assert cost <= remaining, context
                assert limiter.remaining("k") == decision.remaining, context
                continue
            assert cost > remaining, context
            if decision.retry_after == math.inf:
                continue
            clock.advance(decision.retry_after - NANOSECOND)
            assert not limiter.decide("k", cost).allowed, ("admitted early", *context)
            clock.advance(NANOSECOND)
            assert limiter.decide("k", cost).allowed, ("denied at retry_after", *context)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("rate", ["4/10 seconds", "3/second; 5/4 seconds"])
def test_allow_check_and_decide_agree(algorithm: str, rate: str) -> None:
    """Three identical limiters run one random script through allow(), check() and decide():
    the same admissions, the same answers, the same totals (allow() has its own fast path)."""
    rnd = random.Random(algorithm + rate)
    clocks = [ManualClock() for _ in range(3)]
    by_allow, by_check, by_decide = (
        RateLimiter.from_rate(rate, algorithm, max_keys=6, clock=clock) for clock in clocks
    )
    for _ in range(2000):
        advance = rnd.choice([0, 0, 0, 0.01, 0.25, 1, 3])
        for clock in clocks:
            clock.advance(advance)
        key, cost = f"k{rnd.randint(0, 8)}", rnd.choice([1, 1, 1, 2, 3, 6])
        decision = by_decide.decide(key, cost)
        assert by_check.check(key, cost) == decision.to_dict()
        assert by_allow.allow(key, cost) is decision.allowed
    assert by_allow.stats() == by_check.stats() == by_decide.stats()
    assert by_allow.stats()["rejected_full"] > 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_reset_after_is_when_the_key_is_whole_again(algorithm: str) -> None:
    for seed in range(100):
        rnd = random.Random(seed)
        clock = ManualClock()
        limiter = RateLimiter(rnd.randint(1, 6), rnd.choice([0.5, 1, 2, 3]), algorithm, clock=clock)
        capacity = limiter.burst or limiter.max_requests
        for _ in range(rnd.randint(1, 15)):
            clock.advance(rnd.choice([0, 0, 0.1, 0.37, 1]))
            limiter.allow("k", rnd.choice([1, 1, 2]))
        decision = limiter.decide("k")
        if decision.reset_after > 0:
            clock.advance(decision.reset_after - NANOSECOND)
            assert limiter.remaining("k") < capacity, (seed, decision)
            clock.advance(NANOSECOND)
        assert limiter.remaining("k") == capacity, (seed, decision)


def test_check_and_stats_return_exactly_their_typed_keys(clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, clock=clock)
    assert set(limiter.check("k")) == CheckResult.__required_keys__
    assert set(limiter.decide("k").to_dict()) == CheckResult.__required_keys__
    assert list(limiter.stats()) == list(Stats.__annotations__)


def test_with_rate_carries_the_settings_but_not_the_burst_or_the_counts() -> None:
    clock = ManualClock()
    base = RateLimiter(2, 60, "gcra", 100, 30, burst=1, clock=clock)
    tier = base.with_rate("5/minute")
    assert (tier.algorithm, tier.max_keys, tier.cleanup_interval) == ("gcra", 100, 30)
    assert tier.rates == [(5, 60)] and tier.burst == 5
    assert base.allow("k") and not base.allow("k")
    assert [tier.allow("k") for _ in range(6)] == [True] * 5 + [False]  # counts of its own
    clock.advance(60)  # the same clock
    assert tier.remaining("k") == 5
    with pytest.raises(ValueError, match="fortnight"):
        base.with_rate("1/fortnight")
    with pytest.raises(TypeError, match="rate"):
        base.with_rate(5)  # type: ignore[arg-type]


def test_with_rate_settings_replace_the_limiters_own() -> None:
    clock = ManualClock()
    base = RateLimiter(2, 60, "gcra", 100, burst=1, clock=clock)
    tier = base.with_rate("5/minute", algorithm="fixed", max_keys=None, cleanup_interval=10)
    # given: replaced; None: this limiter's kept; the burst is the new rate's own
    assert (tier.algorithm, tier.max_keys, tier.cleanup_interval) == ("fixed", 100, 10)
    assert base.with_rate("5/minute", burst=2).burst == 2
    assert [tier.allow("k") for _ in range(6)] == [True] * 5 + [False]
    clock.advance(60)  # the same clock
    assert tier.allow("k")
    with pytest.raises(TypeError, match=r"^RateLimiter\.with_rate\(\) got an .*'burts'"):
        base.with_rate("5/minute", burts=2)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="`burst`"):
        base.with_rate("5/minute", burst=0)


# --- A Decision is true exactly when allowed --------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_decision_is_truthy_exactly_when_allowed(algorithm: str, clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, algorithm, clock=clock)
    served = 0
    for _ in range(10):
        if limiter.decide("k"):
            served += 1
    assert served == 3
    assert bool(limiter.decide("k")) is False
    assert bool(limiter.decide("other")) is True
    assert not Decision(False, 3, 0, 1.0, 1.0) and Decision(True, 3, 2, 1.0, 0.0)
    result = limiter.check("k")
    assert isinstance(result, dict) and bool(result), "check() stays a dict"


# --- check(), to_dict() and stats() are JSON --------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_cost_that_never_fits_is_json_null_in_check(algorithm: str, clock: ManualClock) -> None:
    for limiter in (
        RateLimiter(5, 10, algorithm, clock=clock),
        RateLimiter.from_rate("5/second; 20/minute", algorithm, clock=clock),
    ):
        limiter.allow("k", 2)
        for result in (
            limiter.check("k", 6),
            limiter.decide("k", 6).to_dict(),
            limiter.acheck("k", 10**30).result(),  # type: ignore[attr-defined]
        ):
            text = json.dumps(result, allow_nan=False)
            assert json.loads(text)["retry_after_seconds"] is None, text
            assert result["allowed"] is False and result["reset_after_seconds"] >= 0
        assert limiter.decide("k", 6).retry_after == math.inf, "the float attribute stays inf"
        json.dumps(limiter.stats(), allow_nan=False)
        assert json.loads(limiter.stats_json()) == limiter.stats()


def test_a_decision_is_never_reset_after_infinity() -> None:
    with pytest.raises(ValueError, match=r"`reset_after` must be >= 0 and finite, got inf"):
        Decision(False, 3, 0, math.inf, math.inf)
    with pytest.raises(ValueError, match=r"`retry_after` must be >= 0 \(or inf for never\)"):
        Decision(False, 3, 0, 1.0, -1.0)


# --- Errors that say what to do ---------------------------------------------------------------


@pytest.mark.parametrize("rate", ["10/minute", "10 per minute", "10/second; 1000/hour"])
def test_a_rate_string_as_limit_points_at_from_rate(rate: str) -> None:
    for make in (
        lambda: RateLimiter(rate),  # type: ignore[call-arg, arg-type]
        lambda: RateLimiter(rate, 60),  # type: ignore[arg-type]
        lambda: RateLimiter(rate, algorithm="gcra"),  # type: ignore[call-arg, arg-type]
    ):
        with pytest.raises(TypeError) as excinfo:
            make()
        assert f"RateLimiter.from_rate({rate!r})" in str(excinfo.value)


def test_a_missing_window_is_named() -> None:
    with pytest.raises(TypeError, match=r"`window_seconds` must be .* not None \(or missing\)"):
        RateLimiter(10)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match=r"`limit` must be an int, not str \('ten'\)"):
        RateLimiter("ten", 60)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: RateLimiter(-5, 60), "limit"),
        (lambda: RateLimiter(5, 60).allow("k", -1), "cost"),
        (lambda: RateLimiter(5, 60).allow("k", cost=-(10**40)), "cost"),
        (lambda: RateLimiter(5, 60).decide("k", -1), "cost"),
        (lambda: RateLimiter(5, 60, max_keys=-3), "max_keys"),
        (lambda: RateLimiter(5, 60, "gcra", burst=-2), "burst"),
    ],
)
def test_a_negative_count_says_so_and_names_the_argument(
    make: Callable[[], object], name: str
) -> None:
    with pytest.raises(ValueError) as excinfo:
        make()
    message = str(excinfo.value)
    assert f"`{name}` must be at least 1" in message and "negative" in message, message


def test_a_negative_count_in_a_rate_string_says_so() -> None:
    with pytest.raises(ValueError) as excinfo:
        RateLimiter.from_rate("-5/minute")
    message = str(excinfo.value)
    assert "-5" in message and ("negative" in message or "at least 1" in message), message
