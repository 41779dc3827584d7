"""Rate-limiting plain and ``async def`` callables."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from ._core import _check_cost
from .exceptions import RateLimitExceeded

if TYPE_CHECKING:
    from ._core import RateLimiter

#: A fixed key, or a callable deriving the key from the wrapped function's arguments.
KeySpec = str | Callable[..., str]

F = TypeVar("F", bound=Callable[..., Any])


def rate_limit(
    limiter: RateLimiter,
    key: KeySpec,
    *,
    cost: int = 1,
    on_blocked: Callable[..., Any] | None = None,
) -> Callable[[F], F]:
    """Return a decorator that admits a call only if ``limiter`` allows ``key``.

    ``key`` is a str, or a callable receiving the wrapped function's arguments and returning
    one. A refused call raises :class:`RateLimitExceeded`, or, when ``on_blocked`` is given,
    returns ``on_blocked(*args, **kwargs)`` instead (awaited if the wrapped function is async
    and ``on_blocked`` returns an awaitable). The wrapper keeps the wrapped function's name,
    docstring and signature, and is itself ``async`` when the wrapped function is.
    """
    if not isinstance(key, str) and not callable(key):
        raise TypeError(
            f"`key` must be a str or a callable returning one, not {type(key).__name__}"
        )
    if on_blocked is not None and not callable(on_blocked):
        raise TypeError(f"`on_blocked` must be callable, not {type(on_blocked).__name__}")
    _check_cost(cost)

    def resolve(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        resolved = key(*args, **kwargs) if callable(key) else key
        if not isinstance(resolved, str):
            raise TypeError(f"the key function must return a str, not {type(resolved).__name__}")
        return resolved

    def admitted(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        """Whether the call may run; a refusal without a fallback raises."""
        resolved = resolve(args, kwargs)
        decision = limiter.decide(resolved, cost)
        if decision.allowed or on_blocked is not None:
            return decision.allowed
        raise RateLimitExceeded(
            resolved,
            limit=decision.limit,
            remaining=decision.remaining,
            retry_after=decision.retry_after,
        )

    def decorator(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if admitted(args, kwargs):
                    return await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)
                fallback = cast(Callable[..., Any], on_blocked)(*args, **kwargs)
                return await fallback if inspect.isawaitable(fallback) else fallback

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if admitted(args, kwargs):
                return func(*args, **kwargs)
            return cast(Callable[..., Any], on_blocked)(*args, **kwargs)

        return cast(F, wrapper)

    return decorator
