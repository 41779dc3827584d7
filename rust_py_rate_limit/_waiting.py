"""Waiting for a permit: ``acquire``, ``aacquire`` and ``throttle`` of ``RateLimiter`` and of
the unkeyed limiters (``TokenBucket``, ``Gcra``, ``FixedWindow``, ``SlidingWindow``).

They are Python functions, set on those classes when this module is imported (the package
imports it), not Rust methods: a thread blocked in a Rust frame that is woken while the
interpreter shuts down (a daemon thread) would be unwound through Rust by CPython and abort
the process ("FATAL: exception not rethrown"); here the blocking frames are CPython's own.

One step, ``_reserve(cost, max_wait)`` in the core, answers each round:

- ``ADMITTED``: the request went now;
- ``RESERVED``: a bucket algorithm counted the request at the first instant it fits, ``seconds``
  from now; the caller sleeps until then and goes. Later callers queue behind it, so waiters
  go in the order they arrived and no herd wakes at once. A caller that gives up while asleep
  (``KeyboardInterrupt``, task cancellation) gives the reservation back (``_refund``);
- ``REFUSED``: not now; ``seconds`` says when the same request could go (``inf``: never, the
  cost is more than the capacity). A window cannot reserve: its caller sleeps that long and
  decides again. A caller whose wait would pass its timeout returns ``False`` at once.

Sleeping goes through the limiter's clock: real time with ``time.sleep`` (the GIL is free
meanwhile) or ``asyncio.sleep``; with a ``ManualClock``, until a test advances the clock past
the wake-up time, so no test sleeps.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
import types
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

from ._core import (
    Decision,
    FixedWindow,
    Gcra,
    ManualClock,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
    _check_cost,
    _check_key,
)
from .exceptions import RateLimitExceeded

ADMITTED, RESERVED, REFUSED = 0, 1, 2

#: The longest a waiting thread goes without returning to Python (signals, Ctrl-C).
_SLICE = 0.05

Reserve = Callable[[float | None], "tuple[int, float, Decision]"]


def _timeout(value: object) -> float | None:
    """``timeout=``: None (no limit), or seconds >= 0 (``inf`` is no limit)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"`timeout` must be an int or float number of seconds or None, "
            f"not {type(value).__name__} ({value!r})"
        )
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"`timeout` must be >= 0 seconds or None, got {value!r}")
    return None if math.isinf(seconds) else seconds


def _now(clock: ManualClock | None) -> float:
    return time.monotonic() if clock is None else clock.now()


def _left(clock: ManualClock | None, deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - _now(clock))


def _sleep(clock: ManualClock | None, seconds: float) -> None:
    if clock is None:
        time.sleep(seconds)
        return
    rang = threading.Event()
    alarm = clock._alarm(seconds, rang.set)
    try:
        while not rang.wait(_SLICE):
            pass
    finally:
        alarm.cancel()


async def _asleep(clock: ManualClock | None, seconds: float) -> None:
    if clock is None:
        await asyncio.sleep(seconds)
        return
    loop = asyncio.get_running_loop()
    rang: asyncio.Future[None] = loop.create_future()

    def ring() -> None:
        loop.call_soon_threadsafe(_resolve, rang)

    alarm = clock._alarm(seconds, ring)
    try:
        await rang
    finally:
        alarm.cancel()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _settled(status: int, seconds: float, left: float | None) -> bool:
    """Whether a round's answer is the last: admitted now, or refused with a wait that never
    ends or passes the deadline. Otherwise the caller sleeps ``seconds`` (reserved: then goes;
    refused: then asks again)."""
    if status == ADMITTED:
        return True
    return status == REFUSED and (math.isinf(seconds) or (left is not None and seconds > left))


def _give_back(status: int, refund: Callable[[], None]) -> None:
    """A sleeper interrupted (Ctrl-C, cancellation) returns the turn it reserved."""
    if status == RESERVED:
        refund()


def wait(
    reserve: Reserve,
    refund: Callable[[], None],
    clock: ManualClock | None,
    timeout: object,
) -> Decision:
    """Blocks until admitted, or until it is clear the request cannot go within ``timeout``;
    the last decision (admitted or not)."""
    limit = _timeout(timeout)
    deadline = None if limit is None else _now(clock) + limit
    while True:
        left = _left(clock, deadline)
        status, seconds, decision = reserve(left)
        if _settled(status, seconds, left):
            return decision
        try:
            _sleep(clock, seconds)
        except BaseException:
            _give_back(status, refund)
            raise
        if status == RESERVED:
            return decision


async def await_permit(
    reserve: Reserve,
    refund: Callable[[], None],
    clock: ManualClock | None,
    timeout: object,
    decide: Callable[[], Any] | None = None,
) -> Decision:
    """``wait`` for asyncio: the loop runs while the task sleeps. ``decide`` (a limiter that
    decides on Redis) is the awaitable decision used instead of ``reserve``, so the round trip
    does not block the loop either."""
    limit = _timeout(timeout)
    deadline = None if limit is None else _now(clock) + limit
    while True:
        left = _left(clock, deadline)
        if decide is not None:
            decision: Decision = await decide()
            status = ADMITTED if decision.allowed else REFUSED
            seconds = decision.retry_after
        else:
            status, seconds, decision = reserve(left)
        if _settled(status, seconds, left):
            return decision
        try:
            await _asleep(clock, seconds)
        except BaseException:
            _give_back(status, refund)
            raise
        if status == RESERVED:
            return decision


def _keyed(limiter: Any, key: object, cost: object) -> tuple[Reserve, Callable[[], None]]:
    def reserve(left: float | None) -> tuple[int, float, Decision]:
        return limiter._reserve(key, cost, left)  # type: ignore[no-any-return]

    def refund() -> None:
        limiter._refund(key, cost)

    return reserve, refund


def _unkeyed(limiter: Any, cost: object) -> tuple[Reserve, Callable[[], None]]:
    def reserve(left: float | None) -> tuple[int, float, Decision]:
        return limiter._reserve(cost, left)  # type: ignore[no-any-return]

    def refund() -> None:
        limiter._refund(cost)

    return reserve, refund


def acquire(limiter: Any, keyed: bool, key: object, cost: object, timeout: object) -> bool:
    return acquire_decision(limiter, keyed, key, cost, timeout).allowed


def acquire_decision(
    limiter: Any, keyed: bool, key: object, cost: object, timeout: object
) -> Decision:
    reserve, refund = _keyed(limiter, key, cost) if keyed else _unkeyed(limiter, cost)
    return wait(reserve, refund, limiter._clock(), timeout)


async def aacquire(limiter: Any, keyed: bool, key: object, cost: object, timeout: object) -> bool:
    return (await aacquire_decision(limiter, keyed, key, cost, timeout)).allowed


async def aacquire_decision(
    limiter: Any, keyed: bool, key: object, cost: object, timeout: object
) -> Decision:
    reserve, refund = _keyed(limiter, key, cost) if keyed else _unkeyed(limiter, cost)
    decide = None
    if keyed and limiter._remote:

        def decide() -> Any:
            return limiter.adecide(key, cost)

    return await await_permit(reserve, refund, limiter._clock(), timeout, decide)


class Throttle:
    """``with limiter.throttle(key):`` / ``async with limiter.throttle(key):``: waits (with no
    timeout) until the request is admitted, then runs the block."""

    __slots__ = ("_cost", "_key", "_keyed", "_limiter")

    def __init__(self, limiter: Any, keyed: bool, key: object, cost: object) -> None:
        self._limiter = limiter
        self._keyed = keyed
        self._key = key
        self._cost = cost

    def _admitted(self, decision: Decision) -> Decision:
        """With no timeout, only a request that can never go (its cost is more than the
        capacity) comes back refused: the block must not run."""
        if decision.allowed:
            return decision
        raise RateLimitExceeded(
            self._key if isinstance(self._key, str) else "",
            limit=decision.limit,
            remaining=decision.remaining,
            retry_after=decision.retry_after,
            decision=decision,
        )

    def __enter__(self) -> Decision:
        decision = acquire_decision(self._limiter, self._keyed, self._key, self._cost, None)
        return self._admitted(decision)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def __aenter__(self) -> Decision:
        args = (self._limiter, self._keyed, self._key, self._cost, None)
        return self._admitted(await aacquire_decision(*args))

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        key = f"{self._key!r}, " if self._keyed else ""
        return f"<Throttle {key}cost={self._cost!r} on {self._limiter!r}>"


# The methods, as the classes show them.


def _checked(limiter: Any, keyed: bool, key: object, cost: object, timeout: object) -> None:
    """Refuses bad arguments before anything waits (an awaitable's at the call, not at
    ``await``)."""
    if keyed:
        _check_key(key)
    _check_cost(1 if cost is None else cost)
    _timeout(timeout)


def _rate_limiter_acquire(
    self: RateLimiter, key: str, cost: int | None = None, timeout: float | None = None
) -> bool:
    """Blocks until ``key`` admits a request of ``cost`` (True), or returns False as soon as it
    is clear it cannot within ``timeout`` seconds (None: no limit). The GIL is free while it
    sleeps. A bucket algorithm reserves the caller's turn, so waiters go in arrival order."""
    _checked(self, True, key, cost, timeout)
    return acquire(self, True, key, cost, timeout)


def _rate_limiter_aacquire(
    self: RateLimiter, key: str, cost: int | None = None, timeout: float | None = None
) -> Awaitable[bool]:
    """``acquire()`` for asyncio: the task sleeps on the event loop (and awaits the Redis round
    trips)."""
    _checked(self, True, key, cost, timeout)
    return aacquire(self, True, key, cost, timeout)


def _rate_limiter_throttle(self: RateLimiter, key: str, cost: int | None = None) -> Throttle:
    """``with limiter.throttle(key):`` / ``async with limiter.throttle(key):`` waits until
    ``key`` admits a request of ``cost``, then runs the block."""
    _checked(self, True, key, cost, None)
    return Throttle(self, True, key, 1 if cost is None else cost)


def _unkeyed_acquire(self: Any, cost: int | None = None, timeout: float | None = None) -> bool:
    """Blocks until a request of ``cost`` goes (True), or returns False as soon as it is clear
    it cannot within ``timeout`` seconds (None: no limit). The GIL is free while it sleeps."""
    _checked(self, False, None, cost, timeout)
    return acquire(self, False, None, cost, timeout)


def _unkeyed_aacquire(
    self: Any, cost: int | None = None, timeout: float | None = None
) -> Awaitable[bool]:
    """``acquire()`` for asyncio: the task sleeps on the event loop."""
    _checked(self, False, None, cost, timeout)
    return aacquire(self, False, None, cost, timeout)


def _unkeyed_throttle(self: Any, cost: int | None = None) -> Throttle:
    """``with limiter.throttle():`` / ``async with limiter.throttle():`` waits until a request
    of ``cost`` goes, then runs the block."""
    _checked(self, False, None, cost, None)
    return Throttle(self, False, None, 1 if cost is None else cost)


def _install() -> None:
    methods: list[tuple[type, str, Callable[..., Any]]] = [
        (RateLimiter, "acquire", _rate_limiter_acquire),
        (RateLimiter, "aacquire", _rate_limiter_aacquire),
        (RateLimiter, "throttle", _rate_limiter_throttle),
    ]
    unkeyed: tuple[type, ...] = (TokenBucket, Gcra, FixedWindow, SlidingWindow)
    for cls in unkeyed:
        methods += [
            (cls, "acquire", _unkeyed_acquire),
            (cls, "aacquire", _unkeyed_aacquire),
            (cls, "throttle", _unkeyed_throttle),
        ]
    for cls, name, function in methods:
        # A copy per class, named as the class shows it (help(), tracebacks).
        method = types.FunctionType(
            function.__code__, function.__globals__, name, function.__defaults__
        )
        method.__qualname__ = f"{cls.__name__}.{name}"
        method.__doc__ = function.__doc__
        method.__annotations__ = function.__annotations__
        setattr(cls, name, method)


_install()
