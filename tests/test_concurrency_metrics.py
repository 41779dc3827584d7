"""`ConcurrencyLimiter.queue_time()` and `.lease_duration()`: the histograms of how long the
callers that queued waited and how long permits were held, on the limiter's clock (a
ManualClock makes every bucket exact). Their Prometheus export is in
test_metrics_prometheus.py."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from rust_py_rate_limit import (
    ConcurrencyLimiter,
    Histogram,
    ManualClock,
    Overloaded,
    StorageLatency,
)

#: The bounds, in seconds: 50 µs to 1 s as the storage latency's, then up to 5 minutes.
BOUNDS = [
    5e-05,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
]


def counts(histogram: Histogram) -> dict[float, int]:
    """Observations at or below each bound (cumulative), with +Inf as `inf`."""
    assert [bound for bound, _ in histogram["buckets"]] == BOUNDS
    out = dict(histogram["buckets"])
    out[float("inf")] = histogram["count"]
    return out


def at_or_below(histogram: Histogram, bound: float) -> int:
    return counts(histogram)[bound]


def test_a_new_limiter_has_empty_histograms_with_the_wait_and_lease_bounds() -> None:
    limiter = ConcurrencyLimiter(2)
    for histogram in (limiter.queue_time(), limiter.lease_duration()):
        assert histogram == {"buckets": [(b, 0) for b in BOUNDS], "count": 0, "sum": 0.0}
    assert StorageLatency is Histogram, "the old name still types storage_latency()"


def test_leases_are_timed_from_grant_to_release_on_the_limiters_clock(clock: ManualClock) -> None:
    pool = ConcurrencyLimiter(3, clock=clock)
    short, medium, long = pool.try_acquire(), pool.try_acquire(), pool.try_acquire("k")
    assert short is not None and medium is not None and long is not None
    clock.advance(0.0002)
    short.release()
    clock.advance(1.8)
    medium.release()
    medium.release()  # a second release does nothing, and is not timed again
    clock.advance(400)
    with pool.acquire():
        pass  # held for no time at all: the first bucket
    long.release()
    held = pool.lease_duration()
    assert held["count"] == 4
    assert held["sum"] == pytest.approx(0.0002 + 1.8002 + 401.8002)
    assert at_or_below(held, 5e-05) == 1
    assert at_or_below(held, 0.00025) == 2
    assert at_or_below(held, 1.0) == 2
    assert at_or_below(held, 2.5) == 3
    assert at_or_below(held, 300.0) == 3, "401.8 s is above every bound: +Inf only"
    assert pool.queue_time()["count"] == 0, "nobody queued"


def test_only_waiters_that_get_their_permits_have_their_wait_timed(clock: ManualClock) -> None:
    db = ConcurrencyLimiter(1, queue=3, queue_timeout=10, clock=clock)

    async def waiter(hold: float) -> str:
        try:
            async with db.acquire():
                if hold:
                    clock.advance(hold)
                return "served"
        except Overloaded as refused:
            return refused.reason

    async def run() -> None:
        held = db.try_acquire()
        assert held is not None
        first = asyncio.create_task(waiter(hold=0.02))
        gone = asyncio.create_task(waiter(hold=0))
        await asyncio.sleep(0)
        clock.advance(0.003)
        gone.cancel()  # cancelled: not timed
        with pytest.raises(asyncio.CancelledError):
            await gone
        second = asyncio.create_task(waiter(hold=0))
        await asyncio.sleep(0)
        clock.advance(0.001)
        held.release()  # first waited 4 ms; second waits on, behind it
        assert await first == "served"  # it held its permit 20 ms
        assert await second == "served"  # 21 ms in the queue
        held = db.try_acquire()
        assert held is not None
        late = asyncio.create_task(waiter(hold=0))
        await asyncio.sleep(0)
        clock.advance(10)  # timed out: not timed
        assert await late == "timed_out"
        held.release()

    asyncio.run(run())
    waited = db.queue_time()
    assert waited["count"] == 2
    assert waited["sum"] == pytest.approx(0.004 + 0.021)
    assert at_or_below(waited, 0.0025) == 0
    assert at_or_below(waited, 0.005) == 1
    assert at_or_below(waited, 0.01) == 1
    assert at_or_below(waited, 0.025) == 2
    stats = db.stats()
    assert (stats["queued_total"], stats["timed_out"], stats["cancelled"]) == (4, 1, 1)
    held = db.lease_duration()
    assert held["count"] == 4  # held 4 ms, first's 20 ms, second's 0, held again 10 s
    assert at_or_below(held, 5e-05) == 1
    assert at_or_below(held, 0.005) == 2
    assert at_or_below(held, 0.025) == 3
    assert at_or_below(held, 10.0) == 4


def test_a_thread_that_waits_has_its_wait_timed(clock: ManualClock) -> None:
    db = ConcurrencyLimiter(1, queue=1, queue_timeout=60, clock=clock)
    held = db.try_acquire()
    assert held is not None
    done = threading.Event()

    def work() -> None:
        with db.acquire():
            done.set()

    thread = threading.Thread(target=work)
    thread.start()
    deadline = time.monotonic() + 5
    while db.queued == 0:
        assert time.monotonic() < deadline, "the thread never queued"
        time.sleep(0.001)
    clock.advance(7)
    held.release()
    thread.join(5)
    assert done.is_set()
    waited = db.queue_time()
    assert (waited["count"], waited["sum"]) == (1, 7.0)
    assert (at_or_below(waited, 5.0), at_or_below(waited, 10.0)) == (0, 1)
