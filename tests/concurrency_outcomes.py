"""One run of a ConcurrencyLimiter through every way an acquisition ends, shared by the
exporters' tests: each checks what it exports at the point where all four have happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from rust_py_rate_limit import ConcurrencyLimiter, ManualClock, Overloaded


def run_every_outcome(clock: ManualClock, check: Callable[[ConcurrencyLimiter], None]) -> None:
    """On a limit of 2 (queue 2, 1 s queue timeout): 2 acquired, 1 rejected, 1 timed out,
    1 cancelled, and one more waiting when ``check(db)`` runs; then the two held permits are
    released (at 1 s, so each was held 1 s) and the waiter is served at once."""
    db = ConcurrencyLimiter(2, queue=2, queue_timeout=1, clock=clock, name="db")

    async def waiter() -> str:
        try:
            async with db.acquire():
                return "served"
        except Overloaded as refused:
            return refused.reason

    async def run() -> None:
        held = [db.try_acquire(), db.try_acquire()]  # acquired: 2
        assert None not in held
        assert db.try_acquire() is None  # rejected: 1
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
        await asyncio.sleep(0)
        check(db)
        for lease in held:
            assert lease is not None
            lease.release()
        assert await waiting == "served"

    asyncio.run(run())
