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
    """``RateLimiter.stats()``: the limiter's name, totals since creation, and the keys
    tracked now."""

    name: str
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
    """``ConcurrencyLimiter.stats()``: the limiter's name, totals since creation, then the
    counts now.

    ``rejected`` counts every refusal but timeouts, and is the sum of its four reasons:
    ``rejected_no_permit`` (no permit free and the caller would not wait, or no queue),
    ``rejected_queue_full``, ``rejected_shed`` (pushed out of the queue by a more important
    caller) and ``rejected_max_keys``. ``timed_out``: waited past ``queue_timeout``.
    ``cancelled``: waiters that gave up (a cancelled task, an interrupted thread).
    ``deadline_missed``: requests an overload layer answered because they passed its
    ``timeout`` (the SLA). ``max_in_flight_seen``: the most permits one key (or the unkeyed
    limiter) held.
    """

    name: str
    acquired: int
    rejected: int
    rejected_no_permit: int
    rejected_queue_full: int
    rejected_shed: int
    rejected_max_keys: int
    timed_out: int
    cancelled: int
    deadline_missed: int
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
