"""``allow()`` has two paths: the common call (``allow(str)`` or ``allow(str, int)`` on an
in-memory limiter) is decided by a hand-written method, and every other call goes to the
general method pyo3 generates. Whichever path takes a call, the answer, the state it leaves
and the errors must be the same.

The general path is reached with keywords (``allow(key=..., cost=...)``), which the fast path
never takes, so comparing the two forms on two limiters compares the two paths.
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
calls = st.tuples(
    st.sampled_from(KEYS),
    st.booleans(),  # the key as a str subclass
    call_costs,
    st.sampled_from(["positional", "positional cost", "keyword cost"]),
    st.integers(0, 3_000_000_000),  # ns to advance before the call
)


def fast_form(limiter: RateLimiter, key: str, cost: Any, form: str) -> bool:
    """The call as users write it: mostly the forms the fast path takes."""
    if form == "positional" and cost is None:
        return limiter.allow(key)
    if form == "keyword cost":
        return limiter.allow(key, cost=cost)
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
    for key, subclass, cost, form, step in sequence:
        fast_clock.advance(step / 1e9)
        general_clock.advance(step / 1e9)
        called_key = Key(key) if subclass else key
        assert fast_form(fast, called_key, cost, form) == general.allow(key=key, cost=cost)
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
        lambda limiter, key: limiter.allow(key=key),
        lambda limiter, key: limiter.allow(Key(key)),
    ],
    ids=["fast", "fast with cost", "general", "general with a subclass"],
)
def test_no_path_leaks_references(call: Any, clock: ManualClock) -> None:
    limiter = RateLimiter(10, 10, clock=clock)
    key = "".join(["user:", "42"])  # not interned: its count is this test's alone
    before = sys.getrefcount(key), sys.getrefcount(limiter)
    for _ in range(1000):
        call(limiter, key)
    assert (sys.getrefcount(key), sys.getrefcount(limiter)) == before
