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
