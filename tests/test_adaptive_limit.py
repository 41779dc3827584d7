"""limit="auto" through the Python API: the limiter measures each lease's round trip on its
own clock and moves the limit; a simulated service shows the wiring end to end. (The
algorithms themselves are tested in Rust against a queueing model, src/concurrency/adaptive.)"""

from __future__ import annotations

import heapq
import math

import pytest

from rust_py_rate_limit import ConcurrencyLimiter, Lease, ManualClock


def run_service(limiter: ConcurrencyLimiter, clock: ManualClock, workers: int, rounds: int) -> int:
    """A service of ``workers`` servers taking 10 ms each, under more demand than it can serve:
    every moment, as many requests as the limiter admits are in; a request admitted with more
    than ``workers`` in flight waits its turn, so its round trip grows with the queue."""
    service = 0.010
    finishing: list[tuple[float, int, Lease]] = []
    free_at = [0.0] * workers  # when each server is next free
    order = 0
    for _ in range(rounds):
        while (lease := limiter.try_acquire()) is not None:
            start = max(clock.now(), min(free_at))
            server = free_at.index(min(free_at))
            free_at[server] = start + service
            order += 1
            heapq.heappush(finishing, (start + service, order, lease))
        done_at, _, lease = heapq.heappop(finishing)
        clock.advance(max(0.0, done_at - clock.now()))
        lease.release()
    for _, _, lease in finishing:
        lease.release()
    return len(finishing)


@pytest.mark.parametrize("adaptive", ["gradient", "aimd"])
@pytest.mark.parametrize("workers", [4, 16, 64])
def test_auto_finds_the_capacity_of_a_simulated_service(adaptive: str, workers: int) -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter("auto", adaptive=adaptive, clock=clock)
    assert limiter.adaptive == adaptive
    assert limiter.limit == 3, "a fresh limiter measures the unloaded service first"
    last_in_flight = run_service(limiter, clock, workers, rounds=200 * workers)
    assert 0.5 * workers <= limiter.limit <= 2 * workers, limiter.limit
    assert last_in_flight >= 0.5 * workers - 1, "the service was kept busy to the end"


def test_the_limit_never_grows_while_less_than_half_of_it_is_used() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter("auto", adaptive="aimd", initial_limit=3, clock=clock)
    for _ in range(500):  # one request at a time, always fast
        lease = limiter.try_acquire()
        assert lease is not None
        clock.advance(0.01)
        lease.release()
    assert limiter.limit <= 3


def test_dropped_requests_lower_the_limit() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter("auto", adaptive="aimd", clock=clock, min_limit=2)
    run_service(limiter, clock, workers=32, rounds=3000)
    before = limiter.limit
    for _ in range(60):  # a burst of timed-out requests
        lease = limiter.try_acquire()
        if lease is None:
            break
        clock.advance(0.01)
        lease.release(dropped=True)
    assert limiter.limit < before


@pytest.mark.parametrize(
    ("settings", "error", "message"),
    [
        ({"adaptive": "vegas"}, ValueError, 'unknown algorithm "vegas"'),
        ({"adaptive": 1}, TypeError, "`adaptive`"),
        ({"min_limit": 0}, ValueError, "`min_limit`"),
        ({"min_limit": 10, "max_limit": 5}, ValueError, "`min_limit`"),
        ({"initial_limit": 2000}, ValueError, "`initial_limit`"),
        ({"tolerance": 0.5}, ValueError, "`tolerance`"),
        ({"tolerance": math.nan}, ValueError, "`tolerance`"),
        ({"tolerance": "1.5"}, TypeError, "`tolerance`"),
        ({"probe_limit": 0}, ValueError, "`probe_limit`"),
        ({"max_limit": True}, TypeError, "`max_limit`"),
    ],
)
def test_bad_adaptive_settings_are_refused_by_name(
    settings: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        ConcurrencyLimiter("auto", **settings)  # type: ignore[arg-type]


def test_adaptive_settings_with_a_fixed_limit_are_refused() -> None:
    with pytest.raises(ValueError, match=r"`tolerance` applies only to limit='auto'"):
        ConcurrencyLimiter(8, tolerance=1.5)
