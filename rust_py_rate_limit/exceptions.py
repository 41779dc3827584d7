"""Exceptions raised by ``rust_py_rate_limit``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._core import Decision


class RateLimitExceeded(Exception):
    """A rate-limited call was refused.

    Attributes:
        key: the rate-limit key that was refused.
        limit: the limit of the rate that refused it.
        remaining: requests of cost 1 the key may still make (0 for a spent key).
        retry_after: seconds until the same call would be admitted (``math.inf`` if never,
            when its cost exceeds the capacity).
        decision: the whole :class:`~rust_py_rate_limit.Decision`, when known.

    The web integrations' own refusals (FastAPI's ``RateLimitRefused``) are subclasses, so
    ``except RateLimitExceeded`` catches every refusal of the library.
    """

    def __init__(
        self,
        key: str,
        *,
        limit: int,
        remaining: int,
        retry_after: float,
        decision: Decision | None = None,
    ) -> None:
        self.key = key
        self.decision = decision
        self.limit = limit
        self.remaining = remaining
        self.retry_after = retry_after
        wait = "never" if math.isinf(retry_after) else f"retry after {retry_after:.3f}s"
        super().__init__(f"rate limit exceeded for key {key!r} (limit={limit}); {wait}")


class Overloaded(Exception):
    """No permit from a :class:`~rust_py_rate_limit.ConcurrencyLimiter`.

    Raised when all permits are held and the caller could not wait for one: the limiter has
    no queue (``reason="no_permit"``), its queue was full of callers at least as important
    (``"queue_full"``), a more important caller took the place (``"shed"``), the wait passed
    ``queue_timeout`` (``"timed_out"``) or a new key found ``max_keys`` keys tracked
    (``"max_keys"``).

    Not a :class:`RateLimitExceeded`: that refuses a client for calling too often (HTTP 429);
    this refuses work because the server is full (HTTP 503), whoever asks.

    Attributes:
        key: the key asked for (``None`` for an unkeyed acquisition).
        limit: the concurrency limit at the time (it moves when adaptive).
        reason: why no permit came (above).
        in_flight: permits held at the time, for the key.
        queued: callers waiting at the time, for the key.
        retry_after: a hint in seconds: how long permits have been held lately (0.0 before
            the first release).
    """

    def __init__(
        self,
        key: str | None,
        *,
        limit: int,
        reason: str,
        in_flight: int,
        queued: int,
        retry_after: float,
    ) -> None:
        self.key = key
        self.limit = limit
        self.reason = reason
        self.in_flight = in_flight
        self.queued = queued
        self.retry_after = retry_after
        who = "" if key is None else f" for key {key!r}"
        super().__init__(
            f"overloaded{who}: {reason} ({in_flight} in flight of limit {limit}, {queued} queued)"
        )
