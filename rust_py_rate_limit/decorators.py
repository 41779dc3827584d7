"""Rate-limiting plain and ``async def`` callables."""

from __future__ import annotations

import functools
import inspect
import threading
import warnings
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from . import _waiting
from ._core import Decision, RateLimiter, _check_cost
from .exceptions import RateLimitExceeded

#: A fixed key, or a callable deriving the key from the wrapped function's arguments.
KeySpec = str | Callable[..., str]

F = TypeVar("F", bound=Callable[..., Any])

#: Key strings already warned about for reading as a rate (one warning each per process).
_WARNED_RATE_KEYS: set[str] = set()
_WARNED_LOCK = threading.Lock()


def _parses_as_rate(text: str) -> bool:
    try:
        RateLimiter.from_rate(text)
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _warn_if_rate(key: str) -> None:
    """A fixed key that reads as a rate (``"5/minute"``) is most likely the slowapi habit of
    ``@limiter.limit(rate)``: say once that it is used as a key."""
    if key in _WARNED_RATE_KEYS or not _parses_as_rate(key):
        return
    with _WARNED_LOCK:
        if key in _WARNED_RATE_KEYS:
            return
        _WARNED_RATE_KEYS.add(key)
    warnings.warn(
        f"the key {key!r} reads as a rate, but it is used as the rate-limit key: every call "
        f"shares the key {key!r} and the limiter's own rate applies. For a rate per endpoint "
        f"use a web integration's Limiter(...).limit({key!r}), or "
        f"rate_limit(RateLimiter.from_rate({key!r}), key=...)",
        UserWarning,
        stacklevel=3,
    )


def rate_limit(
    limiter: RateLimiter,
    key: KeySpec,
    *,
    cost: int = 1,
    on_blocked: Callable[..., Any] | None = None,
    wait: bool = False,
    timeout: float | None = None,
) -> Callable[[F], F]:
    """Return a decorator that admits a call only if ``limiter`` allows ``key``.

    ``key`` is a str, or a callable receiving the wrapped function's arguments and returning
    one. A refused call raises :class:`RateLimitExceeded`, or, when ``on_blocked`` is given,
    returns ``on_blocked(*args, **kwargs)`` instead (awaited if the wrapped function is async
    and ``on_blocked`` returns an awaitable). The wrapper keeps the wrapped function's name,
    docstring and signature, and is itself ``async`` when the wrapped function is; it then
    awaits the limiter's ``adecide``, so a Redis round trip never blocks the event loop.

    With ``wait=True`` a call that is not admitted at once waits for its turn
    (``limiter.acquire``; ``aacquire`` for an async function) instead of being refused, for up
    to ``timeout`` seconds (None: as long as it takes); only a call that cannot go within the
    timeout is refused as above.
    """
    if not isinstance(limiter, RateLimiter):
        hint = (
            f"; for a rate string build one: rate_limit(RateLimiter.from_rate({limiter!r}), key)"
            if isinstance(limiter, str)
            else ""
        )
        raise TypeError(
            f"`limiter` must be a RateLimiter, not {type(limiter).__name__} ({limiter!r}){hint}"
        )
    if isinstance(key, str):
        _warn_if_rate(key)
    elif not callable(key):
        raise TypeError(
            f"`key` must be a str or a callable returning one, not {type(key).__name__}"
        )
    if on_blocked is not None and not callable(on_blocked):
        raise TypeError(f"`on_blocked` must be callable, not {type(on_blocked).__name__}")
    _check_cost(cost)
    if not isinstance(wait, bool):
        raise TypeError(f"`wait` must be a bool, not {type(wait).__name__} ({wait!r})")
    if timeout is not None and not wait:
        raise ValueError(f"`timeout` ({timeout!r}) applies only with wait=True")
    _waiting._timeout(timeout)

    def resolve(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        resolved = key(*args, **kwargs) if callable(key) else key
        if not isinstance(resolved, str):
            raise TypeError(
                f"the key function (`key`) must return a str, not {type(resolved).__name__}"
            )
        return resolved

    def admitted(resolved: str, decision: Decision) -> bool:
        """Whether the call may run; a refusal without a fallback raises."""
        if decision.allowed or on_blocked is not None:
            return decision.allowed
        raise RateLimitExceeded(
            resolved,
            limit=decision.limit,
            remaining=decision.remaining,
            retry_after=decision.retry_after,
            decision=decision,
        )

    def decorator(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                resolved = resolve(args, kwargs)
                if wait:
                    decision = await _waiting.aacquire_decision(
                        limiter, True, resolved, cost, timeout
                    )
                else:
                    decision = await limiter.adecide(resolved, cost)
                if admitted(resolved, decision):
                    return await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)
                fallback = cast(Callable[..., Any], on_blocked)(*args, **kwargs)
                return await fallback if inspect.isawaitable(fallback) else fallback

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            resolved = resolve(args, kwargs)
            if wait:
                decision = _waiting.acquire_decision(limiter, True, resolved, cost, timeout)
            else:
                decision = limiter.decide(resolved, cost)
            if admitted(resolved, decision):
                return func(*args, **kwargs)
            return cast(Callable[..., Any], on_blocked)(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
