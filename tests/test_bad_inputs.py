"""Every bad input is refused with a typed error whose message names the parameter and value."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from rust_py_rate_limit import ALGORITHMS, Decision, ManualClock, RateLimiter

VALID = {"limit": 3, "window_seconds": 10}


def make(**overrides: Any) -> RateLimiter:
    return RateLimiter(**{**VALID, **overrides})


def case(overrides: dict[str, Any], error: type[Exception], message: str) -> Any:
    """One bad-settings case, named after its settings."""
    name = ",".join(f"{key}={value!r}" for key, value in overrides.items())
    return pytest.param(overrides, error, message, id=name)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        # limit
        case({"limit": True}, TypeError, r"`limit` must be an int, not bool \(True\)"),
        case({"limit": "3"}, TypeError, r"`limit` must be an int, not str \('3'\)"),
        case({"limit": 3.0}, TypeError, r"`limit` must be an int, not float \(3\.0\)"),
        case({"limit": None}, TypeError, r"`limit` must be an int, not NoneType"),
        case({"limit": 0}, ValueError, r"`limit` must be at least 1, got 0"),
        case({"limit": -3}, ValueError, r"`limit` must be at least 1, got -3"),
        case(
            {"limit": 4294967296}, ValueError, r"`limit` must be at most 4294967295, got 4294967296"
        ),
        case({"limit": 10**30}, ValueError, r"`limit` must be at most 4294967295, got 1000000000"),
        # window_seconds
        case(
            {"window_seconds": True}, TypeError, r"`window_seconds` must be an int or float.*bool"
        ),
        case(
            {"window_seconds": "10"}, TypeError, r"`window_seconds` must be an int or float.*'10'"
        ),
        case(
            {"window_seconds": None}, TypeError, r"`window_seconds` must be an int or float.*None"
        ),
        case(
            {"window_seconds": [10]}, TypeError, r"`window_seconds` must be an int or float.*list"
        ),
        case({"window_seconds": 0}, ValueError, r"`window_seconds` must be > 0.*got 0"),
        case({"window_seconds": 0.0}, ValueError, r"`window_seconds` must be > 0.*got 0\.0"),
        case({"window_seconds": 1e-12}, ValueError, r"`window_seconds`.*nanosecond.*got 1e-12"),
        case({"window_seconds": -1}, ValueError, r"`window_seconds` must be > 0, got -1"),
        case({"window_seconds": -0.5}, ValueError, r"`window_seconds` must be > 0, got -0\.5"),
        case({"window_seconds": math.nan}, ValueError, r"`window_seconds` .*finite, got nan"),
        case({"window_seconds": math.inf}, ValueError, r"`window_seconds` .*finite, got inf"),
        case(
            {"window_seconds": 2**62}, ValueError, r"`window_seconds` .*at most 2\*\*62 nanoseconds"
        ),
        # algorithm
        case({"algorithm": 1}, TypeError, r"`algorithm` must be a str"),
        # burst
        case({"burst": 2}, ValueError, r"invalid `burst`: .*not \"fixed\""),
        case(
            {"algorithm": "sliding", "burst": 2}, ValueError, r"invalid `burst`: .*not \"sliding\""
        ),
        case({"algorithm": "gcra", "burst": 0}, ValueError, r"`burst` must be at least 1, got 0"),
        case({"algorithm": "gcra", "burst": -2}, ValueError, r"`burst` must be at least 1, got -2"),
        case({"algorithm": "gcra", "burst": True}, TypeError, r"`burst` must be an int, not bool"),
        case({"algorithm": "gcra", "burst": 2.0}, TypeError, r"`burst` must be an int, not float"),
        case(
            {"algorithm": "gcra", "burst": 2**32}, ValueError, r"`burst` must be at most 4294967295"
        ),
        # max_keys
        case({"max_keys": 0}, ValueError, r"`max_keys` must be at least 1, got 0"),
        case({"max_keys": -5}, ValueError, r"`max_keys` must be at least 1, got -5"),
        case({"max_keys": True}, TypeError, r"`max_keys` must be an int, not bool"),
        case({"max_keys": "10"}, TypeError, r"`max_keys` must be an int, not str"),
        case({"max_keys": 1.5}, TypeError, r"`max_keys` must be an int, not float"),
        # cleanup_interval
        case({"cleanup_interval": 0}, ValueError, r"`cleanup_interval` must be > 0.*got 0"),
        case({"cleanup_interval": -1}, ValueError, r"`cleanup_interval` must be > 0, got -1"),
        case({"cleanup_interval": -0.5}, ValueError, r"`cleanup_interval` must be > 0, got -0\.5"),
        case({"cleanup_interval": math.nan}, ValueError, r"`cleanup_interval` .*finite, got nan"),
        case({"cleanup_interval": math.inf}, ValueError, r"`cleanup_interval` .*finite, got inf"),
        case({"cleanup_interval": 1e-9}, ValueError, r"`cleanup_interval` must be at least 0\.001"),
        case({"cleanup_interval": 0.0009}, ValueError, r"at least 0\.001 seconds.*got 0\.0009"),
        case({"cleanup_interval": True}, TypeError, r"`cleanup_interval` must be an int or float"),
        case({"cleanup_interval": "1"}, TypeError, r"`cleanup_interval` must be an int or float"),
        # clock
        case({"clock": 1}, TypeError, r"`clock` must be a ManualClock or None"),
        case({"clock": "clock"}, TypeError, r"`clock` must be a ManualClock or None"),
        case({"clock": ManualClock}, TypeError, r"`clock` must be a ManualClock or None"),
        case({"clock": math.floor}, TypeError, r"`clock` must be a ManualClock or None"),
    ],
)
def test_bad_constructor_arguments(
    overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        make(**overrides)


@pytest.mark.parametrize("name", ["nope", "Fixed", "token-bucket", "", " gcra"])
def test_unknown_algorithm_lists_the_valid_names(name: str) -> None:
    with pytest.raises(ValueError, match=r"invalid `algorithm`") as excinfo:
        make(algorithm=name)
    text = str(excinfo.value)
    assert f'"{name}"' in text
    for valid in ALGORITHMS:
        assert f'"{valid}"' in text


def test_algorithm_of_the_wrong_type_lists_the_valid_names() -> None:
    with pytest.raises(TypeError) as excinfo:
        make(algorithm=b"fixed")
    assert all(f'"{valid}"' in str(excinfo.value) for valid in ALGORITHMS)


def test_a_bucket_rate_faster_than_a_nanosecond_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"invalid `limit`: .*more than one request per nanosecond"
    ):
        RateLimiter(1000, 1e-7, "gcra")


def test_a_bucket_burst_spanning_centuries_is_refused() -> None:
    with pytest.raises(ValueError, match=r"invalid `burst`: .*146 years"):
        RateLimiter(1, 86400 * 365 * 100, "gcra", burst=2)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"algorithm": "gcra", "burst": 0}, ValueError, r"`burst` must be at least 1"),
        ({"algorithm": "gcra", "burst": False}, TypeError, r"`burst` must be an int"),
        ({"algorithm": "fixed", "burst": 2}, ValueError, r"invalid `burst`"),
        ({"algorithm": "nope"}, ValueError, r"invalid `algorithm`"),
        ({"max_keys": 0}, ValueError, r"`max_keys` must be at least 1"),
        ({"max_keys": False}, TypeError, r"`max_keys` must be an int"),
        ({"cleanup_interval": 0}, ValueError, r"`cleanup_interval` must be > 0"),
        ({"cleanup_interval": math.nan}, ValueError, r"`cleanup_interval` .*nan"),
        ({"clock": object()}, TypeError, r"`clock` must be a ManualClock"),
    ],
)
def test_from_rate_refuses_bad_settings_alike(
    overrides: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        RateLimiter.from_rate("10/second", **overrides)


@pytest.mark.parametrize("algorithm", ["token_bucket", "leaky_bucket", "gcra"])
def test_burst_with_several_rates_is_refused(algorithm: str) -> None:
    with pytest.raises(ValueError, match=r"invalid `burst`: cannot be combined with several rates"):
        RateLimiter.from_rate("10/second; 100/minute", algorithm, burst=5)


@pytest.mark.parametrize(
    "rate",
    [
        "",
        " ",
        "100",
        "x/minute",
        "0/minute",
        "-1/minute",
        "1.5/minute",
        "10/fortnight",
        "10/",
        "10 per",
        "/minute",
        "10/0 seconds",
        "10/second;",
        "10/second;;1/hour",
        ";10/second",
        "10/second, 1/fortnight",
        "99999999999999999999999/second",
        "1/99999999999999999 years",
    ],
)
def test_malformed_rate_strings_are_quoted_in_the_error(rate: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f'invalid rate string "{rate}"')):
        RateLimiter.from_rate(rate)


@pytest.mark.parametrize("rate", [123, None, b"10/second", ["10/second"]])
def test_a_rate_that_is_not_a_str_is_a_type_error(rate: Any) -> None:
    with pytest.raises(TypeError, match=r"`rate` must be a str such as \"100/minute\""):
        RateLimiter.from_rate(rate)


# --- keys and costs ---------------------------------------------------------------------------

KEY_METHODS: list[Callable[[RateLimiter, Any], object]] = [
    RateLimiter.allow,
    RateLimiter.check,
    RateLimiter.decide,
    RateLimiter.remaining,
    RateLimiter.reset,
]


@pytest.mark.parametrize("method", KEY_METHODS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    ("key", "type_name"),
    [(1, "int"), (b"user", "bytes"), (None, "NoneType"), (("a",), "tuple"), (1.5, "float")],
)
def test_keys_must_be_str(
    method: Callable[[RateLimiter, Any], object], key: Any, type_name: str, clock: ManualClock
) -> None:
    limiter = RateLimiter(3, 10, clock=clock)
    with pytest.raises(TypeError, match=rf"key must be str, not {type_name}"):
        method(limiter, key)
    assert limiter.stats()["total_checks"] == 0


CHECK_METHODS: list[Callable[[RateLimiter, str, Any], object]] = [
    RateLimiter.allow,
    RateLimiter.check,
    RateLimiter.decide,
]


@pytest.mark.parametrize("method", CHECK_METHODS, ids=lambda m: m.__name__)
@pytest.mark.parametrize(
    ("cost", "error", "message"),
    [
        (0, ValueError, r"`cost` must be at least 1, got 0"),
        (-1, ValueError, r"`cost` must be at least 1, got -1"),
        (-(10**30), ValueError, r"`cost` must be at least 1, got -1000000000"),
        (True, TypeError, r"`cost` must be an int, not bool \(True\)"),
        (False, TypeError, r"`cost` must be an int, not bool \(False\)"),
        (1.0, TypeError, r"`cost` must be an int, not float \(1\.0\)"),
        ("1", TypeError, r"`cost` must be an int, not str \('1'\)"),
        ([1], TypeError, r"`cost` must be an int, not list"),
    ],
)
def test_bad_costs(
    method: Callable[[RateLimiter, str, Any], object],
    cost: Any,
    error: type[Exception],
    message: str,
    clock: ManualClock,
) -> None:
    limiter = RateLimiter(3, 10, clock=clock)
    with pytest.raises(error, match=message):
        method(limiter, "k", cost)
    assert limiter.stats()["total_checks"] == 0
    assert limiter.remaining("k") == 3


def test_cost_none_means_one(clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, clock=clock)
    assert limiter.allow("k", None)
    assert limiter.check("k", cost=None)["remaining"] == 1


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("cost", [10**30, 2**64, 2**64 - 1, 2**32, 4])
def test_a_huge_cost_is_simply_denied(algorithm: str, cost: int, clock: ManualClock) -> None:
    limiter = RateLimiter(3, 10, algorithm, clock=clock)
    assert limiter.allow("k", cost) is False
    assert limiter.check("k", cost)["retry_after_seconds"] is None
    decision = limiter.decide("k", cost)
    assert (decision.allowed, decision.retry_after, decision.remaining) == (False, math.inf, 3)
    assert limiter.stats()["blocked"] == 3
    assert limiter.remaining("k") == 3


def test_a_huge_cost_with_several_rates_is_denied(clock: ManualClock) -> None:
    limiter = RateLimiter.from_rate("3/second; 100/minute", clock=clock)
    assert limiter.decide("k", 10**30).retry_after == math.inf
    assert limiter.decide("k", 4).retry_after == math.inf, "more than the per-second rate holds"


# --- ManualClock and Decision ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "error", "message"),
    [
        (-1, ValueError, r"`seconds` must be >= 0, got -1"),
        (-0.001, ValueError, r"`seconds` must be >= 0, got -0\.001"),
        (math.nan, ValueError, r"`seconds` must be >= 0 and finite, got nan"),
        (math.inf, ValueError, r"`seconds` must be >= 0 and finite, got inf"),
        (True, TypeError, r"`seconds` must be an int or float.*bool"),
        ("1", TypeError, r"`seconds` must be an int or float.*str"),
        (None, TypeError, r"`seconds` must be an int or float.*None"),
    ],
)
def test_bad_clock_advances(seconds: Any, error: type[Exception], message: str) -> None:
    clock = ManualClock()
    with pytest.raises(error, match=message):
        clock.advance(seconds)
    assert clock.now() == 0.0


def test_clock_accepts_zero_and_fractions() -> None:
    clock = ManualClock(1.5)
    clock.advance(0)
    clock.advance(0.25)
    clock.advance(2)
    assert clock.now() == pytest.approx(3.75)


def test_advancing_the_clock_past_its_end_is_refused() -> None:
    clock = ManualClock()
    clock.advance(4_000_000_000)  # 4e18 ns; the clock ends at 2**62 ns, about 4.61e18
    past_the_end = r"invalid `seconds`: .*would pass its end at 2\*\*62 nanoseconds"
    with pytest.raises(ValueError, match=past_the_end):
        clock.advance(1_000_000_000)
    assert clock.now() == 4_000_000_000.0, "a refused advance leaves the time alone"
    clock.advance(600_000_000)
    assert clock.now() == 4_600_000_000.0


@pytest.mark.parametrize(
    ("start", "error"),
    [(-1, ValueError), (math.nan, ValueError), (10**10, ValueError), ("0", TypeError)],
)
def test_bad_clock_start(start: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"`start`"):
        ManualClock(start)


@pytest.mark.parametrize(
    ("reset_after", "retry_after", "name"),
    [(-1.0, 0.0, "reset_after"), (math.nan, 0.0, "reset_after"), (0.0, -2.0, "retry_after")],
)
def test_bad_decision_seconds(reset_after: float, retry_after: float, name: str) -> None:
    with pytest.raises(ValueError, match=rf"`{name}` must be >= 0"):
        Decision(False, 1, 0, reset_after, retry_after)


# --- messages for integers too large for the converter ---------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: RateLimiter(-(10**40), 10),
        lambda: RateLimiter(3, 10, max_keys=-(10**40)),
        lambda: RateLimiter(3, 10, "gcra", burst=-(10**40)),
        lambda: RateLimiter(3, 10).allow("k", -(10**40)),
    ],
    ids=["limit", "max_keys", "burst", "cost"],
)
def test_hugely_negative_ints_are_reported_as_too_small(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match=r"must be at least 1"):
        call()


def test_a_huge_int_window_is_reported_as_too_long() -> None:
    with pytest.raises(ValueError, match=r"`window_seconds` .*at most 2\*\*62 nanoseconds"):
        RateLimiter(3, 10**40)
