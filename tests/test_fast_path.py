"""``allow()`` has two paths: the common call (``allow(key[, cost])`` with an exact str key and
a ``None`` or int cost, by position or keyword, on an in-memory limiter) is decided by a
hand-written method, and every other call goes to the general method pyo3 generates. Whichever
path takes a call, the answer, the state it leaves and the errors must be the same.

A key of a str subclass always takes the general path, so calling one limiter with plain str
keys and another with the same keys as a subclass compares the two paths.
"""

from __future__ import annotations

import enum
import inspect
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rust_py_rate_limit import ALGORITHMS, ManualClock, RateLimiter


class Key(str):
    """A str subclass: a valid key that the fast path leaves to the general one."""


class Cost(enum.IntEnum):
    TWO = 2


SURROGATE_KEY = b"user-\xff".decode("utf-8", "surrogateescape")
KEYS = ["a", "user:0000001", "a-key-longer-than-sixteen-bytes", "é", "", SURROGATE_KEY]

call_costs = st.one_of(
    st.none(), st.integers(1, 4), st.sampled_from([2**64 - 1, 2**64, 10**30, Cost.TWO])
)
FORMS = ["key", "key, cost", "key, cost=", "key=, cost=", "cost=, key=", "key, **{'cost'}"]
calls = st.tuples(
    st.sampled_from(KEYS),
    call_costs,
    st.sampled_from(FORMS),
    st.integers(0, 3_000_000_000),  # ns to advance before the call
)


def call_in_form(limiter: RateLimiter, key: str, cost: Any, form: str) -> bool:
    """``allow`` called in one of the ways Python passes arguments."""
    if form == "key" and cost is None:
        return limiter.allow(key)
    if form == "key, cost=":
        return limiter.allow(key, cost=cost)
    if form == "key=, cost=":
        return limiter.allow(key=key, cost=cost)
    if form == "cost=, key=":
        return limiter.allow(cost=cost, key=key)
    if form == "key, **{'cost'}":
        # A keyword name that is not the interned str: the general path binds it.
        return limiter.allow(key, **{"".join(["co", "st"]): cost})
    return limiter.allow(key, cost)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@settings(max_examples=60, deadline=None)
@given(sequence=st.lists(calls, max_size=40))
def test_both_paths_decide_alike(algorithm: str, sequence: list[Any]) -> None:
    fast_clock, general_clock = ManualClock(), ManualClock()
    fast = RateLimiter.from_rate("3/second; 5/10 seconds", algorithm=algorithm, clock=fast_clock)
    general = RateLimiter.from_rate(
        "3/second; 5/10 seconds", algorithm=algorithm, clock=general_clock
    )
    for key, cost, form, step in sequence:
        fast_clock.advance(step / 1e9)
        general_clock.advance(step / 1e9)
        assert call_in_form(fast, key, cost, form) == general.allow(Key(key), cost)
    assert fast.stats() == general.stats()
    for key in KEYS:
        assert fast.remaining(key) == general.remaining(key)


def test_a_str_subclass_and_the_equal_str_share_one_state(clock: ManualClock) -> None:
    limiter = RateLimiter(2, 10, clock=clock)
    assert limiter.allow("k")
    assert limiter.allow(Key("k"))
    assert not limiter.allow("k")
    assert limiter.stats()["active_keys"] == 1


@pytest.mark.parametrize(
    ("cost", "error", "message"),
    [
        (0, ValueError, r"`cost` must be at least 1, got 0"),
        (-1, ValueError, r"`cost` must be at least 1, got -1"),
        (True, TypeError, r"`cost` must be an int, not bool \(True\)"),
        (1.5, TypeError, r"`cost` must be an int, not float \(1\.5\)"),
    ],
)
def test_a_bad_positional_cost_is_refused_like_a_keyword_one(
    cost: Any, error: type[Exception], message: str, clock: ManualClock
) -> None:
    limiter = RateLimiter(3, 10, clock=clock)
    for call in (lambda: limiter.allow("k", cost), lambda: limiter.allow("k", cost=cost)):
        with pytest.raises(error, match=message):
            call()
    assert limiter.stats()["total_checks"] == 0


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, r"allow\(\) missing 1 required positional argument: 'key'"),
        (("k", 1, 2), {}, r"allow\(\) takes from 1 to 2 positional arguments but 3 were given"),
        (("k",), {"weight": 1}, r"allow\(\) got an unexpected keyword argument 'weight'"),
        (("k", 1), {"cost": 1}, r"allow\(\) got multiple values for argument 'cost'"),
        (("k",), {"key": "k"}, r"allow\(\) got multiple values for argument 'key'"),
        ((), {"cost": 1}, r"allow\(\) missing 1 required positional argument: 'key'"),
        ((), {"key": "k", "weight": 1}, r"allow\(\) got an unexpected keyword argument 'weight'"),
        ((1,), {}, r"key must be str, not int"),
        ((b"k",), {}, r"key must be str, not bytes"),
    ],
)
def test_bad_calls_are_type_errors(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str, clock: ManualClock
) -> None:
    limiter = RateLimiter(3, 10, clock=clock)
    with pytest.raises(TypeError, match=message):
        limiter.allow(*args, **kwargs)
    assert limiter.stats()["total_checks"] == 0


def test_the_method_called_through_the_class_checks_its_instance(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 10, clock=clock)
    assert RateLimiter.allow(limiter, "k") is True
    assert RateLimiter.allow(limiter, "k") is False
    with pytest.raises(TypeError, match="RateLimiter"):
        RateLimiter.allow(object(), "k")  # type: ignore[arg-type]


def test_the_methods_keep_their_name_signature_and_docstring() -> None:
    allow = RateLimiter.allow
    assert allow.__name__ == "allow"
    assert allow.__qualname__ == "RateLimiter.allow"
    assert str(inspect.signature(allow)) == "(self, /, key, cost=None)"
    assert allow.__doc__ is not None and allow.__doc__.startswith("True if the request is admitted")
    assert str(inspect.signature(RateLimiter._noop)) == "(self, /, key)"


def test_noop_takes_one_str_like_allow(clock: ManualClock) -> None:
    limiter = RateLimiter(1, 10, clock=clock)
    assert limiter._noop("k") is True
    assert limiter._noop(key="k") is True
    assert limiter._noop(Key("k")) is True
    with pytest.raises(TypeError, match="key must be str, not int"):
        limiter._noop(1)  # type: ignore[arg-type]
    assert limiter.stats()["total_checks"] == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda limiter, key: limiter.allow(key),
        lambda limiter, key: limiter.allow(key, 2),
        lambda limiter, key: limiter.allow(key=key, cost=2),
        lambda limiter, key: limiter.allow(Key(key)),
        lambda limiter, key: limiter.allow(key, **{"".join(["co", "st"]): 2}),
    ],
    ids=["fast", "fast with cost", "fast by keyword", "general", "general by keyword"],
)
def test_no_path_leaks_references(call: Any, clock: ManualClock) -> None:
    limiter = RateLimiter(10, 10, clock=clock)
    key = "".join(["user:", "42"])  # not interned: its count is this test's alone
    before = sys.getrefcount(key), sys.getrefcount(limiter)
    for _ in range(1000):
        call(limiter, key)
    assert (sys.getrefcount(key), sys.getrefcount(limiter)) == before
