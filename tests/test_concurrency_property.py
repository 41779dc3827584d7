"""Property test: `ConcurrencyLimiter` makes the reference model's decisions.

Random sequences of `try_acquire`, `acquire` (each in a task of its own), `release` (and a
second release of a released lease), task cancellation and clock advances run in one asyncio
loop with a `ManualClock`, for both orders. After every step the limiter and
`concurrency_model.ConcurrencyModel` agree on every caller's state (holding, released,
queued, refused and why, cancelled), on the counts per key and on `stats()`, and no key ever
holds more than its limit.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from dataclasses import dataclass, field

from concurrency_model import NS_PER_SECOND, ConcurrencyModel
from hypothesis import event, given, settings
from hypothesis import strategies as st

from rust_py_rate_limit import ConcurrencyLimiter, Lease, ManualClock, Overloaded

KEYS = [None, "a", "b"]
Status = tuple[str, object]


@dataclass
class Config:
    limit: int
    queue: int
    queue_timeout: float
    order: str
    max_keys: int | None


configs = st.builds(
    Config,
    limit=st.integers(1, 3),
    queue=st.sampled_from([0, 1, 2, 3, 3]),
    queue_timeout=st.sampled_from([0.0, 0.5, 1.0, math.inf]),
    order=st.sampled_from(["fifo", "lifo"]),
    max_keys=st.sampled_from([None, None, 1, 2]),
).filter(lambda c: c.queue == 0 or c.queue_timeout > 0)  # a queue needs a wait (ValueError)

# key, cost (capped at the limit), priority; mostly one key, cost 1 and one priority, so that
# queues fill and the order of service shows.
acquisitions = st.tuples(
    st.sampled_from([None, None, None, "a", "b"]),
    st.sampled_from([1, 1, 1, 2, 3]),
    st.sampled_from([0, 0, 0, -1, 1]),
)
picks = st.integers(0, 20)  # which holder, holder of a released lease or waiter (modulo)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("try"), acquisitions),
        st.tuples(st.just("acquire"), acquisitions),
        st.tuples(st.just("acquire"), acquisitions),
        st.tuples(st.just("release"), picks),
        st.tuples(st.just("release"), picks),
        st.tuples(st.just("release_again"), picks),
        st.tuples(st.just("cancel"), picks),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 0.25, 0.5, 1.0])),
    ),
    min_size=8,
    max_size=50,
)


async def settle() -> None:
    """Lets wake-ups (a callback, then the task) and their consequences run."""
    for _ in range(12):
        await asyncio.sleep(0)


@dataclass
class Harness:
    config: Config
    clock: ManualClock = field(default_factory=ManualClock)
    #: what the model says of each caller, by id
    expected: dict[int, Status] = field(default_factory=dict)
    #: each caller's key and cost
    calls: dict[int, tuple[str | None, int]] = field(default_factory=dict)
    leases: dict[int, Lease] = field(default_factory=dict)
    tasks: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    #: what each task got: its lease, or the reason it was refused
    got: dict[int, Lease | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        c = self.config
        self.limiter = ConcurrencyLimiter(
            c.limit,
            queue=c.queue,
            queue_timeout=c.queue_timeout,
            order=c.order,
            max_keys=c.max_keys,
            clock=self.clock,
        )
        self.model = ConcurrencyModel(
            c.limit,
            queue=c.queue,
            queue_timeout=c.queue_timeout,
            order=c.order,
            max_keys=c.max_keys,
        )

    def _record(self, ident: int, outcome: Status) -> None:
        kind, detail = outcome
        self.expected[ident] = ("held", None) if kind == "granted" else (kind, detail)

    def _take_model_outcomes(self) -> None:
        if len(self.model.outcomes) > 1:
            event("several waiters left the queue in one step")
        for ident, outcome in self.model.outcomes.items():
            assert self.expected[ident] == ("queued", None)
            event(f"a waiter left the queue: {outcome[0]} {outcome[1] or ''}".strip())
            self._record(ident, outcome)
        self.model.outcomes.clear()

    def _with(self, status: str) -> list[int]:
        return sorted(i for i, s in self.expected.items() if s[0] == status)

    async def step(self, action: str, argument: object) -> None:
        ident = len(self.expected)
        if action in ("try", "acquire"):
            key, cost, priority = argument  # type: ignore[misc]
            cost = min(cost, self.config.limit)
            self.calls[ident] = (key, cost)
            self._record(
                ident, self.model.acquire(ident, key, cost, priority, wait=action == "acquire")
            )
            if action == "try":
                try:
                    lease = self.limiter.try_acquire(key, cost, priority=priority)
                except Overloaded as error:
                    self.got[ident] = error.reason
                else:
                    if lease is not None:
                        self.leases[ident] = lease
                    else:
                        self.got[ident] = "no_permit"
            else:
                self.tasks[ident] = asyncio.create_task(self._wait(ident, key, cost, priority))
        elif action in ("release", "release_again", "cancel"):
            status = {"release": "held", "release_again": "released", "cancel": "queued"}
            candidates = self._with(status[action])
            if not candidates:
                return
            ident = candidates[argument % len(candidates)]  # type: ignore[operator]
            if action == "cancel":
                self.tasks[ident].cancel()
                assert self.model.cancel(ident)
                self.expected[ident] = ("cancelled", None)
            else:
                self.leases[ident].release()
                if action == "release":
                    self.model.release(*self.calls[ident])
                    self.expected[ident] = ("released", None)
        else:
            self.clock.advance(argument)  # type: ignore[arg-type]
            self.model.advance(round(argument * NS_PER_SECOND))  # type: ignore[operator]
        self._take_model_outcomes()
        await settle()
        self.check()

    async def _wait(self, ident: int, key: str | None, cost: int, priority: int) -> None:
        try:
            self.got[ident] = await self.limiter.acquire(key, cost, priority=priority)
        except Overloaded as error:
            self.got[ident] = error.reason

    def actual(self, ident: int) -> Status:
        task = self.tasks.get(ident)
        if task is not None and task.cancelled():
            return ("cancelled", None)
        got = self.got.get(ident)
        if isinstance(got, Lease):
            self.leases[ident] = got
        elif got is not None:
            return ("refused", got)
        lease = self.leases.get(ident)
        if lease is None:
            return ("queued", None)
        return ("released", None) if lease.released else ("held", None)

    def check(self) -> None:
        actual = {ident: self.actual(ident) for ident in self.expected}
        assert actual == self.expected
        for key in KEYS:
            status = self.limiter.status(key)
            assert status == {
                "limit": self.config.limit,
                "in_flight": self.model.in_flight(key),
                "queued": self.model.queued(key),
            }
            assert status["in_flight"] <= self.config.limit
        assert self.limiter.stats() == self.model.stats_dict(self.limiter.name)

    async def finish(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        await settle()
        for lease in self.leases.values():
            lease.release()
        stats = self.limiter.stats()
        assert (stats["in_flight"], stats["queued"], stats["active_keys"]) == (0, 0, 0)


@settings(max_examples=300, deadline=None)
@given(config=configs, steps=steps)
def test_the_limiter_makes_the_models_decisions(
    config: Config, steps: list[tuple[str, object]]
) -> None:
    async def main() -> None:
        harness = Harness(config)
        for action, argument in steps:
            await harness.step(action, argument)
        await harness.finish()

    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        asyncio.run(main())
