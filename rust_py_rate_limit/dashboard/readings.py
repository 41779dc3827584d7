"""What the dashboard shows of each limiter, read at one moment, and the history it keeps of
the counters (to draw requests per second over the last minutes)."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from .._core import ConcurrencyLimiter, RateLimiter
from ..metrics._keys import KeyLabels
from ..metrics._limiters import CONCURRENCY_OUTCOMES, AnyLimiter

#: How much history the dashboard keeps, seconds.
HISTORY_SECONDS = 300.0

#: The least time between two samples, seconds (a page refreshes every 2 s; several open
#: pages do not sample more often).
SAMPLE_EVERY = 1.0


def read(limiter: AnyLimiter, keys: KeyLabels, top: int) -> dict[str, Any]:
    """One limiter's figures now, its keys shown as ``keys`` says."""
    if isinstance(limiter, RateLimiter):
        stats = limiter.stats()
        latency = limiter.storage_latency()
        top_keys: list[list[Any]] = []
        if top and limiter.track_top:
            top_keys = [[label, n] for label, n in keys.top(limiter.top_blocked(top))]
        healthy = limiter.storage_healthy
        return {
            "name": limiter.name,
            "kind": "rate",
            "algorithm": limiter.algorithm,
            "rates": [[limit, window] for limit, window in limiter.rates],
            "storage": limiter.storage,
            "remote": limiter._remote,
            "allowed": stats["allowed"],
            "blocked": stats["blocked"],
            "active_keys": None if limiter._remote else stats["active_keys"],
            "storage_errors": stats["storage_errors"],
            "storage_healthy": healthy,
            "latency_ms": None if latency is None else _mean_ms(latency["sum"], latency["count"]),
            "fallback": limiter.fallback,
            # the fallback decides while an outage is under way
            "fallback_active": limiter.fallback is not None and healthy is False,
            "tracking": bool(limiter.track_top),
            # why no key is listed though some were refused: "metrics_keys", "top" or None
            "keys_hidden_by": "metrics_keys" if keys.mode == "none" else None if top else "top",
            "top_blocked": top_keys,
        }
    if isinstance(limiter, ConcurrencyLimiter):
        held = limiter.stats()
        return {
            "name": limiter.name,
            "kind": "concurrency",
            "allowed": held["acquired"],
            "blocked": held["rejected"] + held["timed_out"],
            # refusals by reason, and timeouts: every way a caller went without a permit
            "refused": {
                reason or result: held[field]  # type: ignore[literal-required]
                for field, result, reason in CONCURRENCY_OUTCOMES
                if result in ("rejected", "timed_out")
            },
            "deadline_missed": held["deadline_missed"],
            "in_flight": held["in_flight"],
            "queued": held["queued"],
            "limit": limiter.limit,
            "active_keys": held["active_keys"],
        }
    return {
        "name": limiter.name,
        "kind": "unkeyed",
        "remaining": limiter.remaining(),
    }


def _mean_ms(total_seconds: float, count: int) -> float | None:
    return None if count == 0 else round(total_seconds / count * 1000, 3)


@dataclass(frozen=True)
class Sample:
    at: float
    #: name -> (allowed, blocked, in flight or None, queued or None, limit or None)
    figures: dict[str, tuple[int, int, int | None, int | None, int | None]]


class History:
    """Samples of every limiter's counters, one a second at most, for the last
    :data:`HISTORY_SECONDS`; taken when the dashboard is read (so while someone watches)."""

    def __init__(self) -> None:
        self._samples: collections.deque[Sample] = collections.deque()

    def add(self, now: float, readings: list[dict[str, Any]]) -> None:
        if self._samples and now - self._samples[-1].at < SAMPLE_EVERY:
            return
        figures = {
            r["name"]: (
                r.get("allowed", 0),
                r.get("blocked", 0),
                r.get("in_flight"),
                r.get("queued"),
                r.get("limit"),
            )
            for r in readings
            if r["kind"] != "unkeyed"
        }
        self._samples.append(Sample(now, figures))
        while self._samples and now - self._samples[0].at > HISTORY_SECONDS:
            self._samples.popleft()

    def series(self, name: str, now: float) -> dict[str, list[list[float]]]:
        """``{"allowed": [[seconds ago, per second], ...], "blocked": [...], "in_flight":
        [[seconds ago, value], ...], ...}`` for one limiter, oldest first."""
        out: dict[str, list[list[float]]] = {
            "allowed": [],
            "blocked": [],
            "in_flight": [],
            "queued": [],
            "limit": [],
        }
        previous: Sample | None = None
        for sample in self._samples:
            figures = sample.figures.get(name)
            if figures is None:
                continue
            ago = round(sample.at - now, 3)
            allowed, blocked, *gauges = figures
            if previous is not None and name in previous.figures:
                span = sample.at - previous.at
                before = previous.figures[name]
                for series, now_count, then_count in (
                    ("allowed", allowed, before[0]),
                    ("blocked", blocked, before[1]),
                ):
                    rate = max(0, now_count - then_count) / span
                    out[series].append([ago, round(rate, 3)])
            for series, value in zip(("in_flight", "queued", "limit"), gauges, strict=True):
                if value is not None:
                    out[series].append([ago, float(value)])
            previous = sample
        return out
