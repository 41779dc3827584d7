"""``name=`` on ConcurrencyLimiter and the unkeyed limiters: the default made from the
settings, a given name in ``repr``, and a bad one refused as RateLimiter refuses it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from rust_py_rate_limit import (
    ConcurrencyLimiter,
    FixedWindow,
    Gcra,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
)

MAKERS: dict[str, Callable[..., Any]] = {
    "ConcurrencyLimiter": lambda **kw: ConcurrencyLimiter(4, **kw),
    "TokenBucket": lambda **kw: TokenBucket(2, 1, 5, **kw),
    "Gcra": lambda **kw: Gcra(10, 1, **kw),
    "FixedWindow": lambda **kw: FixedWindow(100, 60, **kw),
    "SlidingWindow": lambda **kw: SlidingWindow(100, 0.5, **kw),
}


def test_default_names_come_from_the_settings() -> None:
    assert [make().name for make in MAKERS.values()] == [
        "concurrency:4",
        "token_bucket:1/5s,capacity=2",
        "gcra:10/1s",
        "fixed:100/60s",
        "sliding:100/0.5s",
    ]
    assert Gcra(10, 1, burst=20).name == "gcra:10/1s,burst=20"
    assert ConcurrencyLimiter("auto").name == "concurrency:auto"


@pytest.mark.parametrize("kind", MAKERS)
def test_a_given_name_is_kept_and_shown_in_repr(kind: str) -> None:
    plain = MAKERS[kind]()
    named = MAKERS[kind](name="checkout")
    assert named.name == "checkout"
    assert "name=" not in repr(plain)
    assert repr(named).endswith(', name="checkout")'), repr(named)
    assert repr(named).replace(', name="checkout"', "") == repr(plain)


@pytest.mark.parametrize("kind", [*MAKERS, "RateLimiter"])
@pytest.mark.parametrize(
    ("name", "error", "message"),
    [
        (7, TypeError, "`name` must be a str, not int (7)"),
        (b"api", TypeError, "`name` must be a str, not bytes (b'api')"),
        ("", ValueError, '`name` must not be empty, got ""'),
        ("  ", ValueError, '`name` must not be empty, got "  "'),
    ],
)
def test_a_bad_name_is_refused_by_name_as_rate_limiter_refuses_it(
    kind: str, name: object, error: type[Exception], message: str
) -> None:
    make = MAKERS.get(kind, lambda **kw: RateLimiter(1, 1, **kw))
    with pytest.raises(error) as raised:
        make(name=name)
    assert str(raised.value) == message


def test_the_overload_policy_names_the_limiter_it_builds() -> None:
    from rust_py_rate_limit.overload import OverloadPolicy

    assert OverloadPolicy(max_in_flight=4).limiter.name == "concurrency:4"
    assert OverloadPolicy(max_in_flight="auto", name="site").limiter.name == "site"
    with pytest.raises(ValueError, match="`name` must not be empty"):
        OverloadPolicy(max_in_flight=4, name="")
    with pytest.raises(TypeError, match=r"either `concurrency` or the settings .*\(name\)"):
        OverloadPolicy(concurrency=ConcurrencyLimiter(4), name="site")
