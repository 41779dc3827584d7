"""Pure-Python reference models of the rate-limiting algorithms, for the property tests.

Each model is written from the algorithm's own description, not from the Rust code, in exact
arithmetic (integers and `Fraction`s) over integer nanoseconds:

- `FixedWindow`: up to `limit` per window; a key's window opens at its first request and the
  next one at its first request after that window has ended.
- `SlidingWindowCounter`: windows tile the time line from an anchor (the key's first request);
  the count of the current window plus the previous window's count, weighted by the share of it
  a sliding window ending now still covers, must stay within the limit.
- `TokenBucket`, `LeakyBucketMeter`, `Gcra`: three formulations of one policy (a tank of tokens
  refilled continuously, a meter draining continuously, a theoretical arrival time) that are
  expected to make the same decisions.
- `AllRates`: several rates on one key; a request passes only if every rate admits it.

Every model answers `decide(key, now_ns, cost)` with a `Decision`: (allowed, limit, remaining,
reset_after_ns, retry_after_ns), where `retry_after_ns` is None for a request that can never
pass. A key never seen and a key whose past no longer matters behave identically, so a model
simply keeps every state forever.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

NS_PER_SECOND = 1_000_000_000

ALGORITHMS = ("fixed", "sliding", "token_bucket", "leaky_bucket", "gcra")
BUCKET_ALGORITHMS = ("token_bucket", "leaky_bucket", "gcra")


class Decision(NamedTuple):
    allowed: bool
    #: The limit of the rate that decided.
    limit: int
    #: Requests of cost 1 that would still pass right now (after this one, if admitted).
    remaining: int
    #: Nanoseconds until the key is back to its full capacity.
    reset_after_ns: int
    #: Nanoseconds until the same request would pass: 0 when admitted, None for never.
    retry_after_ns: int | None


class Model(Protocol):
    """What the tests need of a model, for one rate or several."""

    def decide(self, key: str, now_ns: int, cost: int) -> Decision:
        """Decides on `cost` for `key` at `now_ns`, consuming it when admitted."""
        ...

    def peek(self, key: str, now_ns: int) -> Decision:
        """The key's standing at `now_ns` (remaining, reset_after), consuming nothing."""
        ...

    def is_idle(self, key: str, now_ns: int) -> bool:
        """True when the key's past no longer matters: it stands as a key never seen."""
        ...


S = TypeVar("S")


class OneRate(ABC, Generic[S]):
    """One algorithm enforcing one rate (`limit` per `window_ns`) over per-key states."""

    def __init__(self, limit: int, window_ns: int) -> None:
        if limit < 1 or window_ns < 1:
            raise ValueError(f"bad rate {limit} per {window_ns} ns")
        self.limit = limit
        self.window_ns = window_ns
        self._states: dict[str, S] = {}

    @abstractmethod
    def judge(self, state: S | None, now: int, cost: int) -> tuple[Decision, S | None]:
        """The decision on `cost` at `now` for a key in `state` (None: never seen), and the
        key's new state if the request is admitted (None if denied: nothing is consumed)."""

    def would_decide(self, key: str, now_ns: int, cost: int) -> Decision:
        """The decision `decide` would make, without consuming anything."""
        return self.judge(self._states.get(key), now_ns, cost)[0]

    def decide(self, key: str, now_ns: int, cost: int) -> Decision:
        decision, state = self.judge(self._states.get(key), now_ns, cost)
        if state is not None:
            self._states[key] = state
        return decision

    def peek(self, key: str, now_ns: int) -> Decision:
        """What a request of cost 0 would see; `allowed` says whether one more of cost 1 fits."""
        decision, _ = self.judge(self._states.get(key), now_ns, 0)
        return decision._replace(allowed=decision.remaining > 0)

    def is_idle(self, key: str, now_ns: int) -> bool:
        state = self._states.get(key)
        return state is None or self.judge(state, now_ns, 0)[0] == self.judge(None, now_ns, 0)[0]


# --- Fixed window -------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenWindow:
    start: int
    count: int


class FixedWindow(OneRate[OpenWindow]):
    def judge(
        self, state: OpenWindow | None, now: int, cost: int
    ) -> tuple[Decision, OpenWindow | None]:
        limit, length = self.limit, self.window_ns
        if state is None or now >= state.start + length:
            window = OpenWindow(start=now, count=0)  # the first request opens a window
        else:
            window = state
        ends_in = window.start + length - now

        def decision(allowed: bool, count: int, retry: int | None) -> Decision:
            # Back to full capacity when the window ends, at once if nothing is counted.
            reset = ends_in if count > 0 else 0
            return Decision(allowed, limit, limit - count, reset, retry)

        if cost > limit:
            return decision(False, window.count, None), None
        if window.count + cost <= limit:
            opened = OpenWindow(window.start, window.count + cost)
            return decision(True, opened.count, 0), opened
        # Only a new window has room; it opens with the first request after this one ends.
        return decision(False, window.count, ends_in), None


# --- Sliding window counter ---------------------------------------------------------------


@dataclass(frozen=True)
class Tiling:
    """Windows `[anchor + i*W, anchor + (i+1)*W)` and the cost admitted in each (by index)."""

    anchor: int
    counts: dict[int, int]


class SlidingWindowCounter(OneRate[Tiling]):
    def judge(self, state: Tiling | None, now: int, cost: int) -> tuple[Decision, Tiling | None]:
        limit, length = self.limit, self.window_ns
        tiling, index, current, previous = None, 0, 0, 0
        if state is not None:
            index = (now - state.anchor) // length
            current = state.counts.get(index, 0)
            previous = state.counts.get(index - 1, 0)
            if current or previous:
                tiling = state
        if tiling is None:
            # Nothing of the past is left to weigh: the tiling starts afresh from this instant.
            tiling, index, current, previous = Tiling(anchor=now, counts={}), 0, 0, 0
        window_start = tiling.anchor + index * length
        # The share of the previous window that a sliding window ending now still covers.
        overlap = Fraction(window_start + length - now, length)

        def weighted(count: int) -> Fraction:
            return previous * overlap + count

        def decision(allowed: bool, count: int, retry: int | None) -> Decision:
            if count > 0:  # this window's requests weigh until the end of the next one
                full_at = window_start + 2 * length
            elif previous > 0:  # the previous window's until the end of this one
                full_at = window_start + length
            else:
                full_at = now
            remaining = max(0, math.floor(limit - weighted(count)))
            return Decision(allowed, limit, remaining, full_at - now, retry)

        if cost > limit:
            return decision(False, current, None), None
        if weighted(current) + cost <= limit:
            counts = {index - 1: previous, index: current + cost}
            return decision(True, current + cost, 0), Tiling(tiling.anchor, counts)
        if current + cost <= limit:
            # Later in this window, once enough of the previous one has slid out of view:
            # previous * (window_start + W - t) / W <= limit - current - cost.
            room = limit - current - cost
            passes_at = math.ceil(window_start + length - Fraction(room * length, previous))
        else:
            # Only once this window is the previous one and has slid out far enough:
            # current * (next_start + W - t) / W <= limit - cost.
            next_start = window_start + length
            room = limit - cost
            passes_at = max(
                next_start, math.ceil(next_start + length - Fraction(room * length, current))
            )
        return decision(False, current, passes_at - now), None


# --- Token bucket, leaky bucket (as a meter), GCRA ----------------------------------------


def emission_interval(limit: int, window_ns: int) -> int:
    """Nanoseconds per unit of cost: the window split into `limit` equal parts, rounded to the
    nearest nanosecond (halves up)."""
    return math.floor(Fraction(window_ns, limit) + Fraction(1, 2))


class Bucket(OneRate[S]):
    """A bucket of `capacity` (the burst, by default the limit) flowing at one unit per
    emission interval."""

    def __init__(self, limit: int, window_ns: int, burst: int | None = None) -> None:
        super().__init__(limit, window_ns)
        self.capacity = limit if burst is None else burst
        self.interval = emission_interval(limit, window_ns)
        if self.capacity < 1 or self.interval < 1:
            raise ValueError("bad bucket")


@dataclass(frozen=True)
class Tank:
    tokens: Fraction
    at: int


class TokenBucket(Bucket[Tank]):
    """Tokens refill continuously, one per interval, up to the capacity; a request takes as
    many tokens as it costs."""

    def judge(self, state: Tank | None, now: int, cost: int) -> tuple[Decision, Tank | None]:
        full, per_token = Fraction(self.capacity), self.interval
        if state is None:
            tokens = full
        else:
            tokens = min(full, state.tokens + Fraction(now - state.at, per_token))

        def decision(allowed: bool, left: Fraction, retry: int | None) -> Decision:
            refill = math.ceil((full - left) * per_token)
            return Decision(allowed, self.limit, math.floor(left), refill, retry)

        if cost > self.capacity:
            return decision(False, tokens, None), None
        if tokens >= cost:
            left = tokens - cost
            return decision(True, left, 0), Tank(left, now)
        return decision(False, tokens, math.ceil((cost - tokens) * per_token)), None


@dataclass(frozen=True)
class Meter:
    level: Fraction
    at: int


class LeakyBucketMeter(Bucket[Meter]):
    """A meter drains continuously, one unit per interval, down to empty; a request pours in
    its cost and passes if the meter does not overflow the capacity."""

    def judge(self, state: Meter | None, now: int, cost: int) -> tuple[Decision, Meter | None]:
        per_unit = self.interval
        if state is None:
            level = Fraction(0)
        else:
            level = max(Fraction(0), state.level - Fraction(now - state.at, per_unit))

        def decision(allowed: bool, level: Fraction, retry: int | None) -> Decision:
            room = math.floor(self.capacity - level)
            return Decision(allowed, self.limit, room, math.ceil(level * per_unit), retry)

        if cost > self.capacity:
            return decision(False, level, None), None
        if level + cost <= self.capacity:
            return decision(True, level + cost, 0), Meter(level + cost, now)
        overflow = level + cost - self.capacity
        return decision(False, level, math.ceil(overflow * per_unit)), None


class Gcra(Bucket[int]):
    """The generic cell rate algorithm: a theoretical arrival time (TAT) that each request
    pushes back by its cost in intervals; a request conforms while it keeps the TAT within
    `capacity * interval` of now."""

    def judge(self, state: int | None, now: int, cost: int) -> tuple[Decision, int | None]:
        tolerance = self.capacity * self.interval
        tat = now if state is None else max(state, now)

        def decision(allowed: bool, tat: int, retry: int | None) -> Decision:
            ahead = tat - now
            return Decision(allowed, self.limit, (tolerance - ahead) // self.interval, ahead, retry)

        if cost > self.capacity:
            return decision(False, tat, None), None
        new_tat = tat + cost * self.interval
        if new_tat - now <= tolerance:
            return decision(True, new_tat, 0), new_tat
        return decision(False, tat, new_tat - tolerance - now), None


# --- Several rates ------------------------------------------------------------------------


def most_restrictive(decisions: Sequence[Decision]) -> Decision:
    """The decision to report among those of several rates (in rate order, the first one
    winning ties): a denial over an admission; among denials the longest wait; among
    admissions the fewest remaining, then the longest time to reset."""
    denials = [d for d in decisions if not d.allowed]
    if denials:
        return max(
            denials, key=lambda d: math.inf if d.retry_after_ns is None else d.retry_after_ns
        )
    return min(decisions, key=lambda d: (d.remaining, -d.reset_after_ns))


class AllRates:
    """Several rates on each key: a request passes only if every rate admits it, and a denied
    request consumes from none of them."""

    def __init__(self, rates: Sequence[OneRate[Any]]) -> None:
        if not rates:
            raise ValueError("at least one rate")
        self.rates = list(rates)

    def decide(self, key: str, now_ns: int, cost: int) -> Decision:
        decisions = [rate.would_decide(key, now_ns, cost) for rate in self.rates]
        if all(d.allowed for d in decisions):
            for rate in self.rates:
                rate.decide(key, now_ns, cost)
        return most_restrictive(decisions)

    def peek(self, key: str, now_ns: int) -> Decision:
        return most_restrictive([rate.peek(key, now_ns) for rate in self.rates])

    def is_idle(self, key: str, now_ns: int) -> bool:
        return all(rate.is_idle(key, now_ns) for rate in self.rates)


def reference_model(
    algorithm: str, limit: int, window_ns: int, *, burst: int | None = None
) -> OneRate[Any]:
    """The model of `algorithm` enforcing `limit` per `window_ns`."""
    if algorithm in BUCKET_ALGORITHMS:
        buckets: dict[str, type[Bucket[Any]]] = {
            "token_bucket": TokenBucket,
            "leaky_bucket": LeakyBucketMeter,
            "gcra": Gcra,
        }
        return buckets[algorithm](limit, window_ns, burst)
    if burst is not None:
        raise ValueError(f"{algorithm!r} has no burst")
    if algorithm == "fixed":
        return FixedWindow(limit, window_ns)
    if algorithm == "sliding":
        return SlidingWindowCounter(limit, window_ns)
    raise ValueError(f"unknown algorithm {algorithm!r}")


def all_rates(algorithm: str, rates: Sequence[tuple[int, int]]) -> AllRates:
    """The model of `algorithm` enforcing every `(limit, window_ns)` of `rates` at once."""
    return AllRates([reference_model(algorithm, limit, window) for limit, window in rates])
