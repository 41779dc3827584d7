"""The limiters an exporter accepts, checked once: their types, and one name each."""

from __future__ import annotations

from typing import TypeAlias

from .._core import (
    ConcurrencyLimiter,
    FixedWindow,
    Gcra,
    RateLimiter,
    SlidingWindow,
    TokenBucket,
)

__all__ = ["CONCURRENCY_OUTCOMES", "UNKEYED", "AnyLimiter", "checked_limiters"]

#: Any limiter an exporter reads.
AnyLimiter: TypeAlias = (
    RateLimiter | ConcurrencyLimiter | TokenBucket | Gcra | FixedWindow | SlidingWindow
)

#: The limiters with no key (one state for the process).
UNKEYED = (TokenBucket, Gcra, FixedWindow, SlidingWindow)

#: How a ConcurrencyLimiter's acquisitions ended, each counted once: ``(field of stats(),
#: result, reason)``. A refusal's reason says which; the other results have none.
CONCURRENCY_OUTCOMES: tuple[tuple[str, str, str | None], ...] = (
    ("acquired", "acquired", None),
    ("rejected_no_permit", "rejected", "no_permit"),
    ("rejected_queue_full", "rejected", "queue_full"),
    ("rejected_shed", "rejected", "shed"),
    ("rejected_max_keys", "rejected", "max_keys"),
    ("timed_out", "timed_out", None),
    ("cancelled", "cancelled", None),
)

_TYPES = (RateLimiter, ConcurrencyLimiter, *UNKEYED)
_TYPE_NAMES = "RateLimiter, ConcurrencyLimiter, TokenBucket, Gcra, FixedWindow or SlidingWindow"


def checked_limiters(limiters: tuple[object, ...], where: str) -> tuple[AnyLimiter, ...]:
    """``limiters`` if each is a limiter and no two share a name; else a TypeError or
    ValueError naming the one at fault (``where``: the caller, for the message)."""
    if not limiters:
        raise ValueError(f"{where} needs at least one limiter ({_TYPE_NAMES})")
    seen: dict[str, int] = {}
    checked: list[AnyLimiter] = []
    for position, limiter in enumerate(limiters, start=1):
        if not isinstance(limiter, _TYPES):
            raise TypeError(
                f"{where} takes limiters ({_TYPE_NAMES}); limiter {position} is a "
                f"{type(limiter).__name__} ({limiter!r})"
            )
        name = limiter.name
        if name in seen:
            raise ValueError(
                f"{where}: limiters {seen[name]} and {position} are both named {name!r}; "
                "their series would be the same: give each a name= of its own"
            )
        seen[name] = position
        checked.append(limiter)
    return tuple(checked)
