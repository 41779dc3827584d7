"""One run of a ConcurrencyLimiter through every way an acquisition ends, shared by the
exporters' tests: each checks what it exports at the point where all have happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from rust_py_rate_limit import ConcurrencyLimiter, ManualClock, Overloaded

#: How the acquisitions of :func:`run_every_outcome` ended when ``check`` runs:
#: ``(result, reason)`` -> count ("" where a result has no reason).
OUTCOMES = {
    ("acquired", ""): 2,
    ("rejected", "no_permit"): 1,
    ("rejected", "queue_full"): 1,
    ("rejected", "shed"): 1,
    ("rejected", "max_keys"): 0,
    ("timed_out", ""): 1,
    ("cancelled", ""): 1,
}


def run_every_outcome(clock: ManualClock, check: Callable[[ConcurrencyLimiter], None]) -> None:
    """On a limit of 2 (queue 2, 1 s queue timeout): :data:`OUTCOMES`, one deadline missed,
    and two waiting (5 queued in all) when ``check(db)`` runs; then the two held permits are
    released (at 1 s, so each was held 1 s) and both waiters are served at once."""
    db = ConcurrencyLimiter(2, queue=2, queue_timeout=1, clock=clock, name="db")

    async def waiter(priority: int = 0) -> str:
        try:
            async with db.acquire(priority=priority):
                return "served"
        except Overloaded as refused:
            return refused.reason

    async def run() -> None:
        held = [db.try_acquire(), db.try_acquire()]  # acquired: 2
        assert None not in held
        assert db.try_acquire() is None  # rejected, no permit: 1
        late = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        clock.advance(1)  # timed out: 1
        assert await late == "timed_out"
        gone = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        gone.cancel()  # cancelled: 1
        with pytest.raises(asyncio.CancelledError):
            await gone
        waiting = asyncio.create_task(waiter())
        doomed = asyncio.create_task(waiter())
        await asyncio.sleep(0)
        important = asyncio.create_task(waiter(priority=1))
        await asyncio.sleep(0)
        assert await doomed == "shed"  # rejected, shed: 1
        assert await waiter() == "queue_full"  # rejected, queue full: 1
        db._note_deadline_missed()  # what an overload layer does when its `timeout` passes
        check(db)
        for lease in held:
            assert lease is not None
            lease.release()
        assert [await waiting, await important] == ["served", "served"]

    asyncio.run(run())
