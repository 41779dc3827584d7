"""The dict shapes returned by ``RateLimiter.check()`` and ``stats()``, and by
``ConcurrencyLimiter.status()`` and ``stats()``."""

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
    evicted: int
    storage_errors: int


class ConcurrencyStatus(TypedDict):
    """``ConcurrencyLimiter.status(key)``: one key's limit, permits held and callers waiting."""

    limit: int
    in_flight: int
    queued: int


class ConcurrencyStats(TypedDict):
    """``ConcurrencyLimiter.stats()``: totals since creation, then the counts now.

    ``rejected`` counts every refusal but timeouts: no permit and no wait, queue full, shed,
    ``max_keys``. ``cancelled``: waiters that gave up (a cancelled task, an interrupted
    thread). ``max_in_flight_seen``: the most permits one key (or the unkeyed limiter) held.
    """

    acquired: int
    rejected: int
    timed_out: int
    cancelled: int
    queued_total: int
    max_in_flight_seen: int
    in_flight: int
    queued: int
    active_keys: int


class Histogram(TypedDict):
    """Durations in fixed buckets, read as Prometheus reads a histogram.

    ``RateLimiter.storage_latency()`` (Redis round trips, bounds 50 µs to 1 s),
    ``ConcurrencyLimiter.queue_time()`` and ``.lease_duration()`` (bounds 50 µs to 5 min).
    """

    #: ``(upper bound in seconds, observations at or below it)``, cumulative.
    buckets: list[tuple[float, int]]
    #: Every observation, those above the last bound included (Prometheus' ``+Inf`` bucket).
    count: int
    #: Their total duration, in seconds.
    sum: float


#: ``RateLimiter.storage_latency()``'s histogram (its earlier name, kept).
StorageLatency = Histogram
