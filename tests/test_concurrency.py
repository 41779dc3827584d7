"""`ConcurrencyLimiter` through its public API: permits, leases, keys, the wait queue, threads
and bad input. The asyncio side is in test_concurrency_async.py, the property tests against
the reference model in test_concurrency_property.py."""

from __future__ import annotations

import _thread
import gc
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from rust_py_rate_limit import (
    Acquisition,
    ConcurrencyLimiter,
    Lease,
    ManualClock,
    Overloaded,
    RateLimitExceeded,
)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Polls `condition` (another thread is getting somewhere) for at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the other thread"
        time.sleep(0.001)


class Background:
    """Runs `work` on a thread; `join()` gives its result or raises what it raised."""

    def __init__(self, work: Callable[[], object]) -> None:
        self.result: object = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], object]) -> None:
        try:
            self.result = work()
        except BaseException as error:
            self.error = error

    def join(self, timeout: float = 5.0) -> object:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the thread is still blocked"
        if self.error is not None:
            raise self.error
        return self.result


def reason_of(call: Callable[[], object]) -> str:
    with pytest.raises(Overloaded) as caught:
        call()
    return caught.value.reason


# --- permits and leases -------------------------------------------------------------------


def test_try_acquire_takes_permits_up_to_the_limit_then_returns_none() -> None:
    limiter = ConcurrencyLimiter(3)
    leases = [limiter.try_acquire() for _ in range(3)]
    assert all(isinstance(lease, Lease) for lease in leases)
    assert limiter.in_flight == 3
    assert limiter.try_acquire() is None
    assert limiter.in_flight == 3
    leases[0].release()
    assert limiter.in_flight == 2
    assert limiter.try_acquire() is not None


def test_cost_takes_several_permits_all_or_nothing() -> None:
    limiter = ConcurrencyLimiter(5)
    big = limiter.try_acquire(cost=4)
    assert big is not None and big.cost == 4
    assert limiter.try_acquire(cost=2) is None
    assert limiter.in_flight == 4
    small = limiter.try_acquire(cost=1)
    assert small is not None and limiter.in_flight == 5
    big.release()
    assert limiter.in_flight == 1


def test_a_lease_is_released_exactly_once() -> None:
    limiter = ConcurrencyLimiter(2)
    first = limiter.try_acquire()
    second = limiter.try_acquire()
    assert first is not None and second is not None
    assert not first.released
    first.release()
    assert first.released
    first.release()  # a no-op: the second permit stays held
    first.release(dropped=True)
    assert limiter.in_flight == 1
    with first:  # leaving a released lease's block releases nothing either
        pass
    assert limiter.in_flight == 1
    assert second.released is False
    second.release()
    assert limiter.in_flight == 0
    assert limiter.stats()["acquired"] == 2


def test_lease_attributes_and_repr() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter(4, clock=clock)
    lease = limiter.try_acquire("tenant", 2)
    assert lease is not None
    assert (lease.key, lease.cost, lease.held_for) == ("tenant", 2, 0.0)
    clock.advance(1.5)
    assert lease.held_for == 1.5
    assert repr(lease) == "Lease(key='tenant', cost=2, held)"
    lease.release()
    assert repr(lease) == "Lease(key='tenant', cost=2, released)"
    unkeyed = limiter.try_acquire()
    assert unkeyed is not None and unkeyed.key is None
    unkeyed.release()


def test_with_block_holds_a_permit_and_releases_it_on_exit() -> None:
    limiter = ConcurrencyLimiter(1)
    with limiter.acquire() as lease:
        assert isinstance(lease, Lease)
        assert limiter.in_flight == 1
        assert limiter.try_acquire() is None
    assert lease.released
    assert limiter.in_flight == 0


def test_an_exception_in_the_block_releases_and_propagates() -> None:
    limiter = ConcurrencyLimiter(1)
    with pytest.raises(KeyError), limiter.acquire():
        raise KeyError("boom")
    assert limiter.in_flight == 0


def test_a_lease_from_try_acquire_is_a_context_manager() -> None:
    limiter = ConcurrencyLimiter(1)
    lease = limiter.try_acquire()
    assert lease is not None
    with pytest.raises(ValueError), lease:
        raise ValueError
    assert lease.released and limiter.in_flight == 0


def test_releasing_inside_the_block_is_not_counted_twice() -> None:
    limiter = ConcurrencyLimiter(2)
    other = limiter.try_acquire()
    with limiter.acquire() as lease:
        lease.release()
        assert limiter.in_flight == 1
    assert limiter.in_flight == 1
    assert other is not None
    other.release()
    assert limiter.in_flight == 0


def test_an_acquisition_is_entered_once() -> None:
    limiter = ConcurrencyLimiter(2)
    acquisition = limiter.acquire()
    assert isinstance(acquisition, Acquisition)
    with acquisition:
        with pytest.raises(RuntimeError, match="entered once"), acquisition:
            pass
        assert limiter.in_flight == 1
    assert limiter.in_flight == 0


def test_a_lease_dropped_unreleased_warns_and_gives_the_permit_back() -> None:
    limiter = ConcurrencyLimiter(1)
    with pytest.warns(ResourceWarning, match="without being released"):
        lease = limiter.try_acquire()
        assert lease is not None and limiter.in_flight == 1
        del lease
        gc.collect()
    assert limiter.in_flight == 0
    assert limiter.try_acquire() is not None  # dropped at once: no warning for a temporary


def test_a_released_lease_dropped_does_not_warn(recwarn: pytest.WarningsRecorder) -> None:
    limiter = ConcurrencyLimiter(1)
    lease = limiter.try_acquire()
    assert lease is not None
    lease.release()
    del lease
    gc.collect()
    assert not [w for w in recwarn if issubclass(w.category, ResourceWarning)]


def test_a_lease_released_from_another_thread() -> None:
    limiter = ConcurrencyLimiter(1)
    lease = limiter.try_acquire()
    assert lease is not None
    Background(lease.release).join()
    assert lease.released and limiter.in_flight == 0
    lease.release()
    assert limiter.in_flight == 0


# --- stats, status, keys ------------------------------------------------------------------


def test_stats_count_every_outcome() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=1, clock=clock, name="db")
    assert limiter.stats() == {
        "name": "db",
        "acquired": 0,
        "rejected": 0,
        "rejected_no_permit": 0,
        "rejected_queue_full": 0,
        "rejected_shed": 0,
        "rejected_max_keys": 0,
        "timed_out": 0,
        "cancelled": 0,
        "deadline_missed": 0,
        "queued_total": 0,
        "max_in_flight_seen": 0,
        "in_flight": 0,
        "queued": 0,
        "active_keys": 0,
    }
    held = limiter.try_acquire()
    assert limiter.try_acquire() is None  # rejected: would not wait
    waiting = Background(lambda: limiter.acquire().__enter__())
    wait_until(lambda: limiter.queued == 1)
    assert reason_of(limiter.acquire().__enter__) == "queue_full"  # rejected
    clock.advance(1)
    with pytest.raises(Overloaded, match="timed_out"):
        waiting.join()
    assert held is not None
    held.release()
    limiter._note_deadline_missed()  # what an overload layer does when `timeout` passes
    assert limiter.stats() == {
        "name": "db",
        "acquired": 1,
        "rejected": 2,
        "rejected_no_permit": 1,
        "rejected_queue_full": 1,
        "rejected_shed": 0,
        "rejected_max_keys": 0,
        "timed_out": 1,
        "cancelled": 0,
        "deadline_missed": 1,
        "queued_total": 1,
        "max_in_flight_seen": 1,
        "in_flight": 0,
        "queued": 0,
        "active_keys": 0,
    }


def test_max_in_flight_seen_is_the_peak_of_one_slot() -> None:
    limiter = ConcurrencyLimiter(3)
    leases = [limiter.try_acquire("a") for _ in range(3)]
    other = limiter.try_acquire("b")
    assert limiter.stats()["max_in_flight_seen"] == 3
    assert limiter.stats()["in_flight"] == 4
    for lease in [*leases, other]:
        assert lease is not None
        lease.release()
    assert limiter.stats()["max_in_flight_seen"] == 3


def test_status_reports_one_key() -> None:
    limiter = ConcurrencyLimiter(2, queue=3, queue_timeout=1.0)
    lease = limiter.try_acquire("a", 2)
    assert limiter.status("a") == {"limit": 2, "in_flight": 2, "queued": 0}
    assert limiter.status("b") == {"limit": 2, "in_flight": 0, "queued": 0}
    assert limiter.status() == {"limit": 2, "in_flight": 0, "queued": 0}
    assert limiter.status(None) == limiter.status()
    assert lease is not None
    lease.release()
    assert limiter.status("a") == {"limit": 2, "in_flight": 0, "queued": 0}


def test_keys_have_limits_of_their_own() -> None:
    limiter = ConcurrencyLimiter(2)
    a = [limiter.try_acquire("a") for _ in range(2)]
    assert limiter.try_acquire("a") is None
    b = [limiter.try_acquire("b") for _ in range(2)]
    assert None not in b
    unkeyed = [limiter.try_acquire() for _ in range(2)]
    assert None not in unkeyed
    assert limiter.in_flight == 6
    assert limiter.status("a")["in_flight"] == 2
    for lease in a:
        assert lease is not None
        lease.release()
    assert limiter.try_acquire("a") is not None


def test_idle_keys_are_dropped() -> None:
    limiter = ConcurrencyLimiter(1)
    leases = [limiter.try_acquire(f"k{i}") for i in range(5)]
    assert limiter.stats()["active_keys"] == 5
    assert limiter.try_acquire("k0") is None  # a refusal keeps a busy key tracked
    assert limiter.stats()["active_keys"] == 5
    for lease in leases:
        assert lease is not None
        lease.release()
    assert limiter.stats()["active_keys"] == 0
    assert limiter.try_acquire("k9", 1) is not None  # a temporary lease, dropped at once


def test_max_keys_refuses_a_new_key_with_overloaded() -> None:
    limiter = ConcurrencyLimiter(1, max_keys=2)
    a = limiter.try_acquire("a")
    b = limiter.try_acquire("b")
    with pytest.raises(Overloaded) as caught:
        limiter.try_acquire("c")
    error = caught.value
    assert (error.reason, error.key, error.limit) == ("max_keys", "c", 1)
    assert reason_of(limiter.acquire("c").__enter__) == "max_keys"
    assert limiter.try_acquire("a") is None  # a tracked key is answered as usual
    assert limiter.try_acquire() is not None  # the unkeyed slot is not a key
    assert a is not None
    a.release()
    assert limiter.try_acquire("c") is not None  # "a" was dropped: room for "c"
    assert limiter.stats()["rejected"] == 3
    assert b is not None
    b.release()


def test_overloaded_carries_the_state_and_is_not_a_rate_limit_refusal() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter(2, clock=clock)
    first = limiter.try_acquire("k", 2)
    assert first is not None
    clock.advance(0.25)
    first.release()
    held = limiter.try_acquire("k", 2)
    with pytest.raises(Overloaded) as caught, limiter.acquire("k"):
        pass
    error = caught.value
    assert not isinstance(error, RateLimitExceeded)
    assert (error.key, error.limit, error.reason) == ("k", 2, "no_permit")
    assert (error.in_flight, error.queued) == (2, 0)
    assert error.retry_after == 0.25  # the mean time permits were held
    assert "no_permit" in str(error) and "'k'" in str(error)
    assert held is not None
    held.release()


def test_properties_and_repr() -> None:
    limiter = ConcurrencyLimiter(7, queue=3, queue_timeout=0.5, order="lifo")
    assert (limiter.limit, limiter.queue, limiter.queue_timeout, limiter.order) == (
        7,
        3,
        0.5,
        "lifo",
    )
    assert limiter.adaptive is None
    assert (limiter.in_flight, limiter.queued) == (0, 0)
    assert repr(limiter) == (
        "ConcurrencyLimiter(limit=7, queue=3, queue_timeout=0.5, order='lifo')"
    )
    defaults = ConcurrencyLimiter(1)
    assert (defaults.queue, defaults.queue_timeout, defaults.order) == (0, 0.0, "fifo")
    assert ConcurrencyLimiter(1, queue_timeout=math.inf).queue_timeout == math.inf


def test_auto_limit_is_accepted_and_reports_its_algorithm() -> None:
    limiter = ConcurrencyLimiter("auto", adaptive="aimd", initial_limit=4, max_limit=8)
    assert limiter.adaptive == "aimd"
    # held at probe_limit (3) until the unloaded service has been measured
    assert limiter.limit == 3
    assert ConcurrencyLimiter("auto", initial_limit=4, probe_limit=5).limit == 4
    assert ConcurrencyLimiter("auto").adaptive == "gradient"
    with pytest.raises(ValueError, match=r"`cost` must be at most the limit \(8\), got 9"):
        limiter.try_acquire(cost=9)


# --- the queue (threads) ------------------------------------------------------------------


def test_without_a_queue_a_blocked_with_is_refused_no_permit() -> None:
    limiter = ConcurrencyLimiter(1)
    held = limiter.try_acquire()
    assert reason_of(limiter.acquire().__enter__) == "no_permit"
    assert limiter.stats()["rejected"] == 1
    assert held is not None
    held.release()


def test_a_queued_thread_is_served_when_a_permit_frees() -> None:
    limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=math.inf)
    held = limiter.try_acquire()

    def work() -> int:
        with limiter.acquire() as lease:
            return int(limiter.in_flight) + lease.cost

    waiter = Background(work)
    wait_until(lambda: limiter.queued == 1)
    assert limiter.try_acquire() is None  # no barging past the queue
    assert held is not None
    held.release()
    assert waiter.join() == 2
    assert (limiter.in_flight, limiter.queued) == (0, 0)


@pytest.mark.parametrize("order", ["fifo", "lifo"])
def test_queued_threads_are_served_in_order(order: str) -> None:
    limiter = ConcurrencyLimiter(1, queue=3, queue_timeout=math.inf, order=order)
    held = limiter.try_acquire()
    served: list[int] = []
    gate = threading.Lock()

    def work(index: int) -> None:
        with limiter.acquire(), gate:
            served.append(index)

    threads = []
    for index in range(3):
        threads.append(Background(lambda index=index: work(index)))
        wait_until(lambda index=index: limiter.queued == index + 1)
    assert held is not None
    held.release()
    for thread in threads:
        thread.join()
    assert served == ([0, 1, 2] if order == "fifo" else [2, 1, 0])


def test_a_queued_thread_times_out_on_a_manual_clock_and_never_takes_a_permit() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter(1, queue=2, queue_timeout=2, clock=clock)
    held = limiter.try_acquire()
    waiter = Background(lambda: limiter.acquire().__enter__())
    wait_until(lambda: limiter.queued == 1)
    clock.advance(1.5)
    time.sleep(0.01)
    assert limiter.queued == 1  # not yet
    clock.advance(0.5)
    with pytest.raises(Overloaded) as caught:
        waiter.join()
    assert caught.value.reason == "timed_out"
    assert limiter.queued == 0
    assert held is not None
    held.release()
    assert limiter.in_flight == 0
    assert limiter.stats()["timed_out"] == 1


def test_a_queued_thread_times_out_on_the_real_clock() -> None:
    limiter = ConcurrencyLimiter(1, queue=1, queue_timeout=0.05)
    held = limiter.try_acquire()
    started = time.monotonic()
    assert reason_of(limiter.acquire().__enter__) == "timed_out"
    assert 0.04 <= time.monotonic() - started < 1.0
    assert (limiter.queued, limiter.in_flight) == (0, 1)
    assert held is not None
    held.release()
    assert limiter.in_flight == 0


def test_a_full_queue_refuses_queue_full_and_sheds_the_least_important() -> None:
    clock = ManualClock()
    limiter = ConcurrencyLimiter(1, queue=2, queue_timeout=math.inf, clock=clock)
    held = limiter.try_acquire()
    low = Background(lambda: limiter.acquire(priority=-1).__enter__())
    wait_until(lambda: limiter.queued == 1)

    def served(priority: int) -> object:
        with limiter.acquire(priority=priority):
            return priority

    normal = Background(lambda: served(0))
    wait_until(lambda: limiter.queued == 2)
    # As important as the least important waiter: no place for it.
    assert reason_of(limiter.acquire(priority=-1).__enter__) == "queue_full"
    high = Background(lambda: served(5))
    with pytest.raises(Overloaded) as caught:
        low.join()
    assert caught.value.reason == "shed"
    wait_until(lambda: limiter.queued == 2)
    assert held is not None
    held.release()
    assert high.join() == 5
    assert normal.join() == 0
    assert limiter.in_flight == 0
    assert limiter.stats()["rejected"] == 2


@pytest.fixture
def frequent_thread_switches() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


@pytest.mark.usefixtures("frequent_thread_switches")
@pytest.mark.parametrize("order", ["fifo", "lifo"])
def test_threads_hammering_never_hold_more_than_the_limit(order: str) -> None:
    limit, threads, rounds = 3, 8, 40
    limiter = ConcurrencyLimiter(limit, queue=threads, queue_timeout=math.inf, order=order)
    gate = threading.Lock()
    holding = peak = served = arrivals = 0
    # The first `limit` holders wait for each other before letting go, so the limit is
    # reached whatever the scheduling (a loaded machine once ran the whole test at 2 at once).
    all_in = threading.Barrier(limit)

    def work() -> None:
        nonlocal holding, peak, served, arrivals
        for _ in range(rounds):
            with limiter.acquire():
                with gate:
                    holding += 1
                    peak = max(peak, holding)
                    first = arrivals < limit
                    arrivals += 1
                if first:
                    all_in.wait(timeout=30)
                time.sleep(0)  # let the others run while the permit is held
                with gate:
                    holding -= 1
                    served += 1

    workers = [Background(work) for _ in range(threads)]
    for worker in workers:
        worker.join(timeout=30)
    assert served == threads * rounds
    assert peak == limit  # reached, never passed
    stats = limiter.stats()
    assert (stats["in_flight"], stats["queued"]) == (0, 0)
    assert stats["acquired"] == threads * rounds
    assert stats["max_in_flight_seen"] == limit
    assert stats["rejected"] == stats["timed_out"] == 0


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "error", "text"),
    [
        (0, ValueError, "got 0"),
        (-1, ValueError, "got -1"),
        (True, TypeError, "True"),
        (1.5, TypeError, "1.5"),
        (math.nan, TypeError, "nan"),
        ("fast", ValueError, "'fast'"),
        (2**31, ValueError, str(2**31)),
        (None, TypeError, "None"),
    ],
)
def test_bad_limit(value: object, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match="`limit`") as caught:
        ConcurrencyLimiter(value)  # type: ignore[arg-type]
    assert text in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "error", "text"),
    [
        ({"queue": -1}, ValueError, "`queue` must be between 0 and 4294967295, got -1"),
        ({"queue": True}, TypeError, "`queue` must be an int, not bool (True)"),
        ({"queue": 1.5}, TypeError, "`queue` must be an int, not float (1.5)"),
        ({"queue_timeout": -1}, ValueError, "`queue_timeout` must be >= 0, got -1"),
        ({"queue_timeout": math.nan}, ValueError, "`queue_timeout` must be >= 0 and finite"),
        ({"queue_timeout": -math.inf}, ValueError, "`queue_timeout` must be >= 0 and finite"),
        ({"queue_timeout": "1"}, TypeError, "`queue_timeout`"),
        ({"queue_timeout": True}, TypeError, "`queue_timeout`"),
        ({"order": "random"}, ValueError, "`order` must be 'fifo' or 'lifo', got \"random\""),
        ({"order": 1}, TypeError, "`order` must be a str ('fifo' or 'lifo'), not int"),
        ({"max_keys": 0}, ValueError, "`max_keys` must be at least 1, got 0"),
        ({"max_keys": 1.0}, TypeError, "`max_keys` must be an int"),
        ({"clock": time.monotonic}, TypeError, "`clock` must be a ManualClock or None"),
        ({"adaptive": "aimd"}, ValueError, "`adaptive` applies only to limit='auto'; got limit=3"),
        ({"initial_limit": 2}, ValueError, "`initial_limit` applies only to limit='auto'"),
        ({"min_limit": 2}, ValueError, "`min_limit` applies only to limit='auto'"),
        ({"max_limit": 2}, ValueError, "`max_limit` applies only to limit='auto'"),
    ],
)
def test_bad_settings(settings: dict[str, object], error: type[Exception], text: str) -> None:
    with pytest.raises(error) as caught:
        ConcurrencyLimiter(3, **settings)  # type: ignore[arg-type]
    assert text in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "error", "text"),
    [
        ({"adaptive": "random"}, ValueError, "random"),
        ({"adaptive": 1}, TypeError, "`adaptive` must be a str"),
        ({"initial_limit": 0}, ValueError, "`initial_limit` must be between 1"),
        ({"max_limit": True}, TypeError, "`max_limit` must be an int"),
        ({"min_limit": 1.5}, TypeError, "`min_limit` must be an int"),
    ],
)
def test_bad_adaptive_settings(
    settings: dict[str, object], error: type[Exception], text: str
) -> None:
    with pytest.raises(error) as caught:
        ConcurrencyLimiter("auto", **settings)  # type: ignore[arg-type]
    assert text in str(caught.value)


@pytest.mark.parametrize(
    ("arguments", "error", "text"),
    [
        ({"cost": 0}, ValueError, "`cost` must be between 1 and 4, got 0"),
        ({"cost": -1}, ValueError, "`cost` must be between 1 and 4, got -1"),
        ({"cost": True}, TypeError, "`cost` must be an int, not bool (True)"),
        ({"cost": 1.5}, TypeError, "`cost` must be an int, not float (1.5)"),
        ({"cost": 5}, ValueError, "`cost` must be at most the limit (4), got 5"),
        ({"cost": 2**70}, ValueError, "`cost` must be at most the limit (4)"),
        ({"priority": 1.5}, TypeError, "`priority` must be an int, not float (1.5)"),
        ({"priority": 2**40}, ValueError, f"`priority` must be between {-(2**31)}"),
        ({"priority": True}, TypeError, "`priority` must be an int, not bool"),
        ({"key": 5}, TypeError, "`key` must be a str or None, not int (5)"),
        ({"key": b"k"}, TypeError, "not bytes (b'k')"),
    ],
)
@pytest.mark.parametrize("method", ["try_acquire", "acquire"])
def test_bad_acquisition(
    method: str, arguments: dict[str, object], error: type[Exception], text: str
) -> None:
    limiter = ConcurrencyLimiter(4, queue=2, queue_timeout=1.0)
    with pytest.raises(error) as caught:
        getattr(limiter, method)(**arguments)
    assert text in str(caught.value)
    assert limiter.stats() == ConcurrencyLimiter(4).stats()  # nothing counted, nothing held


@pytest.mark.parametrize("queue_timeout", [None, 0, 0.0])
def test_a_queue_without_a_wait_is_refused_by_name(queue_timeout: float | None) -> None:
    settings = {} if queue_timeout is None else {"queue_timeout": queue_timeout}
    with pytest.raises(ValueError, match=r"`queue=3` needs a `queue_timeout` > 0"):
        ConcurrencyLimiter(2, queue=3, **settings)  # type: ignore[arg-type]
    assert ConcurrencyLimiter(2, queue=0, queue_timeout=0).queue == 0


def test_status_with_a_bad_key() -> None:
    with pytest.raises(TypeError, match=r"`key` must be a str or None, not int \(5\)"):
        ConcurrencyLimiter(1).status(5)  # type: ignore[arg-type]


def test_release_takes_only_the_dropped_keyword() -> None:
    lease = ConcurrencyLimiter(1).try_acquire()
    assert lease is not None
    with pytest.raises(TypeError):
        lease.release(True)  # type: ignore[misc]
    assert not lease.released
    lease.release()


def test_a_queued_thread_interrupted_by_a_signal_leaves_the_queue() -> None:
    limiter = ConcurrencyLimiter(1, queue=2, queue_timeout=math.inf)
    held = limiter.try_acquire()

    def interrupt() -> None:
        wait_until(lambda: limiter.queued == 1)
        _thread.interrupt_main()

    interrupter = Background(interrupt)
    with pytest.raises(KeyboardInterrupt), limiter.acquire():
        pass
    interrupter.join()
    assert limiter.queued == 0
    assert limiter.stats()["cancelled"] == 1
    assert held is not None
    held.release()
    assert limiter.in_flight == 0


def test_overloaded_reports_the_counts_of_a_key_with_lone_surrogates() -> None:
    key = "user:\ud800"  # os.fsdecode makes such strs; its bytes are surrogatepass-encoded
    limiter = ConcurrencyLimiter(1)
    lease = limiter.try_acquire(key)
    assert lease is not None
    with pytest.raises(Overloaded) as refused, limiter.acquire(key):
        pass
    assert (refused.value.in_flight, refused.value.limit) == (1, 1)
    assert limiter.status(key)["in_flight"] == 1
    lease.release()
