"""`ConcurrencyLimiter` under asyncio: `async with`, `await`, the queue served by future,
timeouts on a `ManualClock` and on the loop's timers, cancellation at every await point, and
waiters on other loops."""

from __future__ import annotations

import asyncio
import gc
import math
import threading
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from rust_py_rate_limit import Acquisition, ConcurrencyLimiter, Lease, ManualClock, Overloaded

T = TypeVar("T")


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Runs `main()` in a fresh loop and fails on a ResourceWarning (a lease dropped
    unreleased): in these tests every lease is released on purpose, by the test or by the
    limiter."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        result = asyncio.run(main())
        gc.collect()
    dropped = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert dropped == []
    return result


async def settle(rounds: int = 8) -> None:
    """Lets every callback and task that is ready run (wake-ups take a few loop turns)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def take(acquisition: Acquisition) -> Lease:
    return await acquisition


def queue_up(acquisition: Acquisition) -> asyncio.Task[Lease]:
    """A task awaiting the acquisition (it starts on the next loop turn)."""
    return asyncio.create_task(take(acquisition))


def holder(limiter: ConcurrencyLimiter, key: str | None = None, cost: int = 1) -> Lease:
    lease = limiter.try_acquire(key, cost)
    assert lease is not None
    return lease


# --- the forms ----------------------------------------------------------------------------


def test_async_with_holds_and_releases() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1)
        async with limiter.acquire("k") as lease:
            assert isinstance(lease, Lease) and lease.key == "k"
            assert limiter.in_flight == 1
        assert lease.released and limiter.in_flight == 0

    run(main)


def test_await_gives_a_lease_the_caller_releases() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(2)
        lease = await limiter.acquire(cost=2)
        assert limiter.in_flight == 2 and not lease.released
        async with lease:
            pass
        assert lease.released and limiter.in_flight == 0

    run(main)


def test_an_exception_in_an_async_with_block_releases() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1)
        with pytest.raises(ZeroDivisionError):
            async with limiter.acquire():
                _ = 1 / 0
        assert limiter.in_flight == 0

    run(main)


def test_without_a_queue_async_with_is_refused_at_once() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1)
        held = holder(limiter)
        with pytest.raises(Overloaded) as caught:
            async with limiter.acquire():
                pass
        assert caught.value.reason == "no_permit"
        held.release()

    run(main)


def test_outside_a_running_loop_await_is_a_clear_error_and_takes_nothing() -> None:
    limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=1.0)
    acquisition = limiter.acquire()
    with pytest.raises(RuntimeError, match="running event loop"):
        acquisition.__await__()
    with pytest.raises(RuntimeError, match="running event loop"):
        acquisition.__aenter__()
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    with acquisition:  # the acquisition was not spent: it can still be entered
        assert limiter.in_flight == 1
    assert limiter.in_flight == 0


def test_on_a_closed_loop_nothing_is_taken() -> None:
    limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=1.0)
    loop = asyncio.new_event_loop()
    loop.close()

    async def use() -> None:
        async with limiter.acquire():
            pass

    coroutine = use()
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_until_complete(coroutine)
    coroutine.close()
    assert (limiter.in_flight, limiter.queued) == (0, 0)


# --- the queue ----------------------------------------------------------------------------


async def start_waiters(
    limiter: ConcurrencyLimiter, priorities: list[int], served: list[int]
) -> list[asyncio.Task[None]]:
    """One task per priority, queued in this order; each appends its index when served."""

    async def wait(index: int, priority: int) -> None:
        async with limiter.acquire(priority=priority):
            served.append(index)

    tasks = []
    for index, priority in enumerate(priorities):
        tasks.append(asyncio.create_task(wait(index, priority)))
        await settle()
    return tasks


@pytest.mark.parametrize(
    ("order", "priorities", "expected"),
    [
        ("fifo", [0, 0, 0, 0], [0, 1, 2, 3]),
        ("lifo", [0, 0, 0, 0], [3, 2, 1, 0]),
        ("fifo", [0, 1, 0, 2], [3, 1, 0, 2]),
        ("lifo", [0, 1, 0, 2], [3, 1, 2, 0]),
        ("fifo", [-5, 0, -5, 0], [1, 3, 0, 2]),
    ],
)
def test_waiters_are_served_by_priority_then_order(
    order: str, priorities: list[int], expected: list[int]
) -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1, queue=4, queue_timeout=math.inf, order=order)
        held = holder(limiter)
        served: list[int] = []
        tasks = await start_waiters(limiter, priorities, served)
        assert limiter.queued == 4
        held.release()
        await asyncio.gather(*tasks)
        assert served == expected
        assert (limiter.in_flight, limiter.queued) == (0, 0)

    run(main)


def test_a_waiter_at_the_head_that_does_not_fit_is_not_overtaken() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(3, queue=2, queue_timeout=math.inf)
        first, second = holder(limiter), holder(limiter, cost=2)
        big = queue_up(limiter.acquire(cost=3))
        await settle()
        small = queue_up(limiter.acquire(cost=1))
        await settle()
        first.release()  # one free: the small waiter would fit, but the big one is first
        await settle()
        assert not big.done() and not small.done()
        second.release()
        await settle()
        assert big.done() and not small.done()
        big.result().release()
        lease = await small
        lease.release()
        assert limiter.in_flight == 0

    run(main)


def test_shed_and_queue_full_for_tasks() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=math.inf)
        held = holder(limiter)
        low = queue_up(limiter.acquire(priority=0))
        await settle()
        with pytest.raises(Overloaded) as full:
            await limiter.acquire(priority=0)
        assert full.value.reason == "queue_full"
        high = queue_up(limiter.acquire(priority=1))
        await settle()
        with pytest.raises(Overloaded) as shed:
            await low
        assert (shed.value.reason, shed.value.queued) == ("shed", 1)
        held.release()
        (await high).release()
        stats = limiter.stats()
        assert (stats["rejected"], stats["acquired"], stats["in_flight"]) == (2, 2, 0)

    run(main)


def test_a_queued_task_times_out_on_a_manual_clock_and_never_takes_a_permit() -> None:
    async def main() -> None:
        clock = ManualClock()
        limiter = ConcurrencyLimiter(1, queue=2, queue_timeout=1.0, clock=clock)
        held = holder(limiter)
        waiter = queue_up(limiter.acquire())
        later = queue_up(limiter.acquire())
        await settle()
        clock.advance(0.5)
        await settle()
        assert not waiter.done() and limiter.queued == 2
        later_lease: Lease | None = None
        clock.advance(0.5)  # both deadlines pass
        await settle()
        assert limiter.queued == 0
        for task in (waiter, later):
            with pytest.raises(Overloaded) as caught:
                later_lease = await task
            assert caught.value.reason == "timed_out"
        assert later_lease is None
        held.release()
        await settle()
        assert limiter.in_flight == 0
        assert limiter.stats()["timed_out"] == 2

    run(main)


def test_a_queued_task_times_out_on_the_loop_timer() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=0.05)
        held = holder(limiter)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(Overloaded) as caught:
            async with limiter.acquire():
                pass
        assert caught.value.reason == "timed_out"
        assert 0.04 <= loop.time() - started < 1.0
        held.release()
        assert (limiter.in_flight, limiter.queued) == (0, 0)
        assert limiter.stats()["timed_out"] == 1

    run(main)


def test_a_task_served_before_its_timer_cancels_the_timer() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=0.05)
        held = holder(limiter)
        waiter = queue_up(limiter.acquire())
        await settle()
        held.release()
        lease = await waiter
        await asyncio.sleep(0.08)  # past the deadline: the timer must not fire
        assert not lease.released and limiter.in_flight == 1
        lease.release()
        assert limiter.stats()["timed_out"] == 0

    run(main)


# --- cancellation at every await point ----------------------------------------------------


def test_a_task_cancelled_while_queued_leaves_the_queue() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1, queue=2, queue_timeout=math.inf)
        held = holder(limiter)
        waiter = queue_up(limiter.acquire())
        await settle()
        assert limiter.queued == 1
        waiter.cancel()
        await settle()
        assert waiter.cancelled()
        assert limiter.queued == 0
        assert limiter.stats()["cancelled"] == 1
        held.release()
        assert limiter.in_flight == 0

    run(main)


@pytest.mark.parametrize("form", ["async with", "await"])
def test_a_task_cancelled_after_its_grant_before_it_resumes_gives_the_permit_back(
    form: str,
) -> None:
    """The permit reaches the task's future, then the task is cancelled before it runs
    again: the caller never sees the lease, so the limiter must take it back, at once and
    without blaming the caller with a ResourceWarning."""

    async def main() -> None:
        limiter = ConcurrencyLimiter(2, queue=2, queue_timeout=math.inf)
        held, other = holder(limiter), holder(limiter)
        entered = []

        async def wait() -> None:
            if form == "await":
                entered.append(await limiter.acquire())
            else:
                async with limiter.acquire() as lease:
                    entered.append(lease)

        waiter = asyncio.create_task(wait())
        await settle()
        assert limiter.queued == 1
        loop = asyncio.get_running_loop()
        held.release()  # the grant goes to the waiter's future on the next loop turn...
        # ...and this runs right after it in that turn, before the task's wake-up.
        loop.call_soon(lambda: granted.append((limiter.in_flight, waiter.cancel())))
        granted: list[tuple[int, bool]] = []
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert entered == []
        assert granted == [(2, True)]  # cancelled while holding its granted permit
        assert limiter.in_flight == 1, "the granted permit came back"
        other.release()
        assert limiter.in_flight == 0

    run(main)


def test_a_task_cancelled_in_the_same_turn_as_its_grant() -> None:
    """Cancelled after the grant left the lock but before the loop resolved its future."""

    async def main() -> None:
        limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=math.inf)
        held = holder(limiter)
        waiter = queue_up(limiter.acquire())
        await settle()
        held.release()
        waiter.cancel()
        await settle()
        assert waiter.cancelled()
        assert (limiter.in_flight, limiter.queued) == (0, 0)
        assert limiter.stats()["acquired"] == 2

    run(main)


def test_a_task_cancelled_inside_the_block_releases() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1)
        inside = asyncio.Event()

        async def work() -> None:
            async with limiter.acquire():
                inside.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(work())
        await inside.wait()
        assert limiter.in_flight == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert limiter.in_flight == 0

    run(main)


def test_wait_for_timeout_while_queued_leaves_the_queue() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=math.inf)
        held = holder(limiter)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(limiter.acquire(), 0.02)
        assert limiter.queued == 0
        held.release()
        assert limiter.in_flight == 0

    run(main)


def test_a_dropped_unreleased_lease_from_await_warns() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1)
        with pytest.warns(ResourceWarning):
            lease = await limiter.acquire()
            del lease
            gc.collect()
        assert limiter.in_flight == 0

    asyncio.run(main())


# --- other loops and threads --------------------------------------------------------------


def test_a_waiter_on_another_loop_is_served_by_a_release_on_this_one() -> None:
    limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=math.inf)
    held = holder(limiter)
    served: list[str | None] = []

    def other_loop() -> None:
        async def main() -> None:
            async with limiter.acquire() as lease:
                served.append(lease.key)

        asyncio.run(asyncio.wait_for(main(), 5))

    thread = threading.Thread(target=other_loop)
    thread.start()

    async def release_here() -> None:
        while limiter.queued == 0:
            await asyncio.sleep(0.001)
        held.release()

    run(release_here)
    thread.join(5)
    assert not thread.is_alive()
    assert served == [None]
    assert (limiter.in_flight, limiter.queued) == (0, 0)


def test_a_waiter_whose_loop_closed_does_not_keep_the_permit() -> None:
    limiter = ConcurrencyLimiter(1, queue=2, queue_timeout=math.inf)
    held = holder(limiter)
    loop = asyncio.new_event_loop()
    task = loop.create_task(take(limiter.acquire()))
    loop.run_until_complete(asyncio.sleep(0))
    assert limiter.queued == 1
    loop.close()  # the task is left pending, its loop gone
    held.release()  # the grant cannot reach the closed loop: it comes straight back
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    assert limiter.try_acquire() is not None
    del task


def test_a_lease_from_a_task_released_from_a_thread() -> None:
    async def main() -> None:
        limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=math.inf)
        lease = await limiter.acquire()
        waiter = queue_up(limiter.acquire())
        await settle()
        await asyncio.to_thread(lease.release)
        second = await asyncio.wait_for(waiter, 5)
        assert limiter.in_flight == 1
        second.release()

    run(main)


def _gather_hammer(order: str) -> Callable[[], Awaitable[None]]:
    async def main() -> None:
        limit, tasks, rounds = 3, 20, 10
        limiter = ConcurrencyLimiter(limit, queue=tasks, queue_timeout=math.inf, order=order)
        holding = peak = served = 0

        async def work() -> None:
            nonlocal holding, peak, served
            for _ in range(rounds):
                async with limiter.acquire():
                    holding += 1
                    peak = max(peak, holding)
                    await asyncio.sleep(0)
                    holding -= 1
                    served += 1

        await asyncio.gather(*(work() for _ in range(tasks)))
        assert served == tasks * rounds
        assert peak == limit
        assert limiter.stats()["in_flight"] == 0
        assert limiter.stats()["max_in_flight_seen"] == limit

    return main


@pytest.mark.parametrize("order", ["fifo", "lifo"])
def test_tasks_hammering_never_hold_more_than_the_limit(order: str) -> None:
    run(_gather_hammer(order))  # type: ignore[arg-type]
