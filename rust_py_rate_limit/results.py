"""The dict shapes returned by ``RateLimiter.check()`` and ``RateLimiter.stats()``."""

from __future__ import annotations

from typing import TypedDict


class CheckResult(TypedDict):
    """``RateLimiter.check()``: whole seconds, rounded up.

    ``retry_after_seconds`` is ``None`` (JSON ``null``) when the request can never pass (its
    cost exceeds the capacity), so the dict is always valid JSON.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after_seconds: int
    retry_after_seconds: int | None


class Stats(TypedDict):
    """``RateLimiter.stats()``: totals since creation, and the keys tracked now."""

    allowed: int
    blocked: int
    total_checks: int
    active_keys: int
    rejected_full: int
    storage_errors: int
