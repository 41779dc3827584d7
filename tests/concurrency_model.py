"""A pure-Python reference model of `ConcurrencyLimiter`, for the property tests.

Written from the documented behaviour, not from the Rust code:

- each key (and the unkeyed limiter, key ``None``) holds at most ``limit`` permits; a caller is
  granted at once only when its cost fits and nobody of its key is waiting (no barging);
- otherwise a caller that may wait joins the key's queue if it has room (``queue`` places);
  when it is full, a caller more important than the least important waiter takes that
  waiter's place (the waiter is refused ``"shed"``), else it is refused ``"queue_full"``;
  without a queue the refusal is ``"no_permit"``;
- waiters are served highest priority first, and within a priority oldest first (``fifo``) or
  newest first (``lifo``); only the head is served, while its cost fits;
- a waiter leaves the queue when served, shed, timed out (its deadline, ``queue_timeout``
  after it queued, is reached when the clock moves) or cancelled; then the head is served
  again, as after a release;
- a key with nothing in flight and nobody waiting is not tracked; a new key when ``max_keys``
  keys are tracked is refused ``"max_keys"``.

Outcomes are reported per waiter id, so the model does not depend on the order in which
wake-ups of different waiters are delivered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

NS_PER_SECOND = 1_000_000_000


@dataclass
class ModelWaiter:
    ident: int
    key: str | None
    cost: int
    priority: int
    arrival: int
    deadline_ns: float


@dataclass
class ModelSlot:
    in_flight: int = 0
    waiters: list[ModelWaiter] = field(default_factory=list)

    def idle(self) -> bool:
        return self.in_flight == 0 and not self.waiters


@dataclass
class ModelStats:
    acquired: int = 0
    #: refusals by reason: no_permit, queue_full, shed, max_keys
    rejected: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("no_permit", "queue_full", "shed", "max_keys"), 0)
    )
    timed_out: int = 0
    cancelled: int = 0
    queued_total: int = 0
    max_in_flight_seen: int = 0


class ConcurrencyModel:
    """The limiter's decisions, in exact integer arithmetic over a clock in nanoseconds."""

    def __init__(
        self,
        limit: int,
        *,
        queue: int = 0,
        queue_timeout: float = 0.0,
        order: str = "fifo",
        max_keys: int | None = None,
    ) -> None:
        assert order in ("fifo", "lifo")
        self.limit = limit
        self.queue = queue
        self.timeout_ns = (
            math.inf if math.isinf(queue_timeout) else round(queue_timeout * NS_PER_SECOND)
        )
        self.order = order
        self.max_keys = max_keys
        self.now_ns = 0
        self.slots: dict[str | None, ModelSlot] = {None: ModelSlot()}
        self.stats = ModelStats()
        self.arrivals = 0
        #: waiter id -> ("granted", cost) or ("refused", reason), for waiters that left the queue.
        self.outcomes: dict[int, tuple[str, object]] = {}

    # --- the order of service -------------------------------------------------------------

    def _rank(self, waiter: ModelWaiter) -> tuple[int, int]:
        """Smaller is served sooner: higher priority first, then by arrival per `order`."""
        age = waiter.arrival if self.order == "fifo" else -waiter.arrival
        return (-waiter.priority, age)

    def _head(self, slot: ModelSlot) -> ModelWaiter:
        return min(slot.waiters, key=self._rank)

    def _tail(self, slot: ModelSlot) -> ModelWaiter:
        return max(slot.waiters, key=self._rank)

    # --- helpers ------------------------------------------------------------------------------

    def _fits(self, slot: ModelSlot, cost: int) -> bool:
        return slot.in_flight + cost <= self.limit

    def _take(self, slot: ModelSlot, cost: int) -> None:
        slot.in_flight += cost
        self.stats.acquired += 1
        self.stats.max_in_flight_seen = max(self.stats.max_in_flight_seen, slot.in_flight)

    def _forget_if_idle(self, key: str | None) -> None:
        if key is not None and key in self.slots and self.slots[key].idle():
            del self.slots[key]

    def _serve(self, key: str | None) -> None:
        slot = self.slots.get(key)
        if slot is None:
            return
        while slot.waiters:
            head = self._head(slot)
            if not self._fits(slot, head.cost):
                break
            slot.waiters.remove(head)
            self._take(slot, head.cost)
            self.outcomes[head.ident] = ("granted", head.cost)
        self._forget_if_idle(key)

    def _refuse(self, key: str | None, reason: str) -> tuple[str, object]:
        self.stats.rejected[reason] += 1
        self._forget_if_idle(key)
        return ("refused", reason)

    # --- operations ---------------------------------------------------------------------------

    def acquire(
        self, ident: int, key: str | None, cost: int, priority: int, wait: bool
    ) -> tuple[str, object]:
        """("granted", cost), ("queued", None) or ("refused", reason)."""
        if key not in self.slots:
            tracked = len(self.slots) - 1  # the unkeyed slot is not a key
            if self.max_keys is not None and tracked >= self.max_keys:
                self.stats.rejected["max_keys"] += 1
                return ("refused", "max_keys")
            self.slots[key] = ModelSlot()
        slot = self.slots[key]
        if not slot.waiters and self._fits(slot, cost):
            self._take(slot, cost)
            return ("granted", cost)
        if not wait or self.queue == 0:
            return self._refuse(key, "no_permit")
        if len(slot.waiters) >= self.queue:
            tail = self._tail(slot)
            if tail.priority < priority:
                slot.waiters.remove(tail)
                self.stats.rejected["shed"] += 1
                self.outcomes[tail.ident] = ("refused", "shed")
            else:
                return self._refuse(key, "queue_full")
        self.arrivals += 1
        slot.waiters.append(
            ModelWaiter(ident, key, cost, priority, self.arrivals, self.now_ns + self.timeout_ns)
        )
        self.stats.queued_total += 1
        return ("queued", None)

    def release(self, key: str | None, cost: int) -> None:
        self.slots[key].in_flight -= cost
        self._serve(key)

    def cancel(self, ident: int) -> bool:
        """Takes a waiter out; False if it had already left the queue."""
        for key, slot in list(self.slots.items()):
            for waiter in slot.waiters:
                if waiter.ident == ident:
                    slot.waiters.remove(waiter)
                    self.stats.cancelled += 1
                    self._serve(key)
                    return True
        return False

    def advance(self, delta_ns: int) -> None:
        self.now_ns += delta_ns
        for key, slot in list(self.slots.items()):
            expired = [w for w in slot.waiters if w.deadline_ns <= self.now_ns]
            for waiter in expired:
                slot.waiters.remove(waiter)
                self.stats.timed_out += 1
                self.outcomes[waiter.ident] = ("refused", "timed_out")
            if expired:
                self._serve(key)

    # --- what the limiter reports -------------------------------------------------------------

    def in_flight(self, key: str | None = None) -> int:
        slot = self.slots.get(key)
        return slot.in_flight if slot else 0

    def queued(self, key: str | None = None) -> int:
        slot = self.slots.get(key)
        return len(slot.waiters) if slot else 0

    def stats_dict(self, name: str) -> dict[str, object]:
        return {
            "name": name,
            "acquired": self.stats.acquired,
            "rejected": sum(self.stats.rejected.values()),
            **{f"rejected_{reason}": n for reason, n in self.stats.rejected.items()},
            "timed_out": self.stats.timed_out,
            "cancelled": self.stats.cancelled,
            "deadline_missed": 0,
            "queued_total": self.stats.queued_total,
            "max_in_flight_seen": self.stats.max_in_flight_seen,
            "in_flight": sum(s.in_flight for s in self.slots.values()),
            "queued": sum(len(s.waiters) for s in self.slots.values()),
            "active_keys": len(self.slots) - 1,
        }
