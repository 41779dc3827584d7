"""Type stubs for the compiled core (checked against the built module by mypy's stubtest)."""

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, Generic, Literal, TypeVar, final

from ._waiting import Throttle
from .decorators import KeySpec
from .results import (
    CheckResult,
    ConcurrencyStats,
    ConcurrencyStatus,
    Histogram,
    Stats,
    StorageLatency,
)

__all__ = [
    "ALGORITHMS",
    "Acquisition",
    "ConcurrencyLimiter",
    "Decision",
    "FixedWindow",
    "Gcra",
    "Lease",
    "ManualClock",
    "RateLimiter",
    "Ready",
    "SlidingWindow",
    "StorageError",
    "TokenBucket",
    "__version__",
]

__version__: Final[str]
"""The package's version string."""
ALGORITHMS: Final[list[str]]
"""The algorithm names ``RateLimiter`` takes: ``fixed``, ``sliding``, ``token_bucket``,
``leaky_bucket``, ``gcra``."""

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")

def _check_cost(cost: object) -> None:
    """Raises as ``allow()`` would for this ``cost``."""

def _check_key(key: object) -> None:
    """Raises as ``allow()`` would for this ``key``."""

def _before_fork() -> None:
    """Stops and joins the background sweepers (an ``os.register_at_fork`` hook)."""

def _after_fork() -> None:
    """Starts the background sweepers again (an ``os.register_at_fork`` hook)."""

class StorageError(Exception):
    """The limiter's storage (Redis) failed: unreachable, too slow, or an error reply."""

@final
class Ready(Generic[_T]):
    """An awaitable whose result is already known: ``await ready`` gives it at once."""

    def __await__(self) -> Generator[Any, Any, _T]: ...
    def __iter__(self) -> Ready[_T]: ...
    def __next__(self) -> Any: ...
    def send(self, value: object, /) -> Any: ...
    def throw(
        self,
        error: BaseException | type[BaseException],
        value: object = None,
        traceback: object = None,
        /,
    ) -> Any: ...
    def close(self) -> None: ...
    def result(self) -> _T:
        """The result, without awaiting."""

@final
class ManualClock:
    """A clock for tests: pass it as ``clock=`` and time stands still until ``advance()``."""

    def __new__(cls, start: float | None = None) -> ManualClock: ...
    def advance(self, seconds: float) -> None:
        """Moves the clock forward by ``seconds`` (an int or float >= 0)."""
    def now(self) -> float:
        """The current time in seconds since the clock's origin."""
    def _alarm(self, seconds: float, callback: Callable[[], object]) -> _Alarm: ...

@final
class _Alarm:
    def cancel(self) -> None: ...

@final
class Decision:
    """The outcome of one check: whether it was allowed, and the key's standing after it."""

    def __new__(
        cls, allowed: bool, limit: int, remaining: int, reset_after: float, retry_after: float
    ) -> Decision: ...
    @property
    def allowed(self) -> bool:
        """Whether the request was admitted (and consumed)."""
    @property
    def limit(self) -> int:
        """The limit of the rate that decided."""
    @property
    def remaining(self) -> int:
        """Requests of cost 1 the key could still make now."""
    @property
    def reset_after(self) -> float:
        """Seconds until the key is back to its full limit (always finite)."""
    @property
    def retry_after(self) -> float:
        """Seconds until the same request would be admitted: 0.0 when it was, ``math.inf``
        when it never can (its cost is above the capacity)."""
    def __bool__(self) -> bool:
        """True exactly when the request was admitted: ``if limiter.decide(key): ...``."""
    def to_dict(self) -> CheckResult:
        """``check()``'s dict: whole seconds, ``retry_after_seconds`` None for never."""
    def __eq__(self, value: object, /) -> bool: ...
    def __ne__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class RateLimiter:
    """A rate limiter over per-key state held in Rust: ``limit`` requests per
    ``window_seconds`` for each key, by one of the five algorithms (``ALGORITHMS``), in memory
    (the default), in shared memory (``storage="shm://NAME"``) or on Redis
    (``storage="redis://..."``). A bad argument is a ``TypeError`` or ``ValueError`` naming
    it."""

    def __new__(
        cls,
        limit: int,
        window_seconds: float,
        algorithm: str | None = None,
        max_keys: int | None = None,
        cleanup_interval: float | None = None,
        *,
        burst: int | None = None,
        clock: ManualClock | None = None,
        storage: str | None = None,
        key_prefix: str | None = None,
        timeout: float | None = None,
        on_storage_error: Literal["allow", "deny", "raise"] | None = None,
        local_deny_cache: bool | None = None,
        fallback: Literal["memory"] | None = None,
        on_full: Literal["reject", "evict"] | None = None,
        track_top: int | None = None,
        name: str | None = None,
    ) -> RateLimiter: ...
    @classmethod
    def from_rate(
        cls,
        rate: str,
        algorithm: str | None = None,
        *,
        burst: int | None = None,
        max_keys: int | None = None,
        cleanup_interval: float | None = None,
        clock: ManualClock | None = None,
        storage: str | None = None,
        key_prefix: str | None = None,
        timeout: float | None = None,
        on_storage_error: Literal["allow", "deny", "raise"] | None = None,
        local_deny_cache: bool | None = None,
        fallback: Literal["memory"] | None = None,
        on_full: Literal["reject", "evict"] | None = None,
        track_top: int | None = None,
        name: str | None = None,
    ) -> RateLimiter:
        """A limiter for a rate string: ``"100/minute"``, ``"100 per minute"``, ``"5/10m"``,
        or several joined by ``;``, ``,`` or ``|`` (``"10/second; 1000/hour"``), decided
        together."""
    def with_rate(
        self,
        rate: str,
        *,
        algorithm: str | None = None,
        burst: int | None = None,
        max_keys: int | None = None,
        cleanup_interval: float | None = None,
        clock: ManualClock | None = None,
        storage: str | None = None,
        key_prefix: str | None = None,
        timeout: float | None = None,
        on_storage_error: Literal["allow", "deny", "raise"] | None = None,
        local_deny_cache: bool | None = None,
        fallback: Literal["memory"] | None = None,
        on_full: Literal["reject", "evict"] | None = None,
        track_top: int | None = None,
        name: str | None = None,
    ) -> RateLimiter:
        """A limiter for another rate with this one's settings (not its burst or counts);
        the keyword arguments given replace this limiter's."""
    def allow(self, key: str, cost: int | None = None) -> bool:
        """Whether ``key`` may make a request of ``cost`` (default 1) now; consumes it when
        admitted (all or nothing). The hot path."""
    def check(self, key: str, cost: int | None = None) -> CheckResult:
        """``allow()`` with the key's standing, as a JSON-ready dict in whole seconds."""
    def decide(self, key: str, cost: int | None = None) -> Decision:
        """``allow()`` with the key's standing, as a ``Decision`` (float seconds)."""
    def peek(self, key: str, cost: int | None = None) -> Decision:
        """The ``Decision`` ``decide()`` would return now, consuming and counting nothing."""
    def remaining(self, key: str) -> int:
        """Requests of cost 1 ``key`` could make now; consumes nothing."""
    def reset(self, key: str) -> bool:
        """Forgets ``key`` (its full limit is back): True if it was tracked."""
    def aallow(self, key: str, cost: int | None = None) -> Awaitable[bool]:
        """``allow()`` for ``await``; the in-memory limiter's awaitable is ready at once."""
    def acheck(self, key: str, cost: int | None = None) -> Awaitable[CheckResult]:
        """``check()`` for ``await``."""
    def adecide(self, key: str, cost: int | None = None) -> Awaitable[Decision]:
        """``decide()`` for ``await``."""
    def apeek(self, key: str, cost: int | None = None) -> Awaitable[Decision]:
        """``peek()`` for ``await``."""
    def aremaining(self, key: str) -> Awaitable[int]:
        """``remaining()`` for ``await``."""
    def areset(self, key: str) -> Awaitable[bool]:
        """``reset()`` for ``await``."""
    def clear(self) -> None:
        """Forgets every key (on Redis, deletes the prefix's keys); the statistics are kept."""
    def cleanup_expired(self) -> int:
        """Removes the keys whose state has expired (which never changes a decision): how
        many."""
    def stats(self) -> Stats:
        """The name, then totals since creation: allowed, blocked, checks, active keys, new
        keys refused by a full store, states evicted, failed storage round trips."""
    def stats_json(self) -> str:
        """``stats()`` as a JSON string."""
    def acquire(self, key: str, cost: int | None = None, timeout: float | None = None) -> bool:
        """Blocks until ``key`` admits the request (True), or False once it cannot within
        ``timeout`` seconds."""
    def aacquire(
        self, key: str, cost: int | None = None, timeout: float | None = None
    ) -> Awaitable[bool]:
        """``acquire()`` for asyncio."""
    def throttle(self, key: str, cost: int | None = None) -> Throttle:
        """``with``/``async with``: waits until ``key`` admits the request, then runs the block."""
    def _reserve(
        self, key: str, cost: int | None, max_wait: float | None
    ) -> tuple[int, float, Decision]: ...
    def _refund(self, key: str, cost: int | None) -> None: ...
    def _clock(self) -> ManualClock | None: ...
    @property
    def _remote(self) -> bool: ...
    def limit(
        self,
        key: KeySpec,
        *,
        cost: int | None = None,
        on_blocked: Callable[..., Any] | None = None,
        wait: bool | None = None,
        timeout: float | None = None,
    ) -> Callable[[_F], _F]:
        """A decorator limiting a function (plain or ``async def``) by ``key``, a ``str`` or a
        callable of the function's arguments: a refused call raises ``RateLimitExceeded``, or
        returns ``on_blocked(*args, **kwargs)``; with ``wait=True`` it waits for its turn, up
        to ``timeout`` seconds."""
    @property
    def name(self) -> str:
        """``name=``, or the algorithm and rates: ``"fixed:100/60s"``."""
    @property
    def track_top(self) -> int:
        """Keys monitored per shard for ``top_blocked`` (0: not tracked)."""
    @property
    def storage_healthy(self) -> bool | None:
        """On Redis, False while an outage is under way; None in process."""
    def storage_latency(self) -> StorageLatency | None:
        """The Redis round trips' latency histogram; None in process."""
    def top_blocked(self, n: int | None = None, *, reset: bool = False) -> list[tuple[str, int]]:
        """The keys refused most often since the last reset, most first: ``(key, refusals)``."""
    @property
    def max_requests(self) -> int:
        """The limit of the first rate."""
    @property
    def window_seconds(self) -> int | float:
        """The window of the first rate, in seconds."""
    @property
    def rates(self) -> list[tuple[int, int | float]]:
        """Every rate, as ``(limit, window_seconds)``."""
    @property
    def algorithm(self) -> str:
        """The algorithm's name."""
    @property
    def burst(self) -> int | None:
        """The bucket algorithms' capacity; None for the windows."""
    @property
    def max_keys(self) -> int | None:
        """The cap on tracked keys; None: unbounded."""
    @property
    def cleanup_interval(self) -> int | float | None:
        """Seconds between background sweeps; None: none."""
    @property
    def storage(self) -> str:
        """``"memory://"``, or the storage's URL with its password hidden."""
    @property
    def key_prefix(self) -> str | None:
        """The Redis keys' prefix; None in process."""
    @property
    def timeout(self) -> int | float | None:
        """Seconds a Redis round trip may take; None in process."""
    @property
    def on_storage_error(self) -> str | None:
        """What a failed Redis round trip answers; None in process."""
    @property
    def local_deny_cache(self) -> bool | None:
        """Whether Redis refusals are held in process; None in process."""
    @property
    def fallback(self) -> str | None:
        """``"memory"`` when Redis failures are decided in process, else None."""
    @property
    def on_full(self) -> Literal["reject", "evict"]:
        """What a new key gets when there is no room for it."""
    @staticmethod
    def destroy_shared(name: str) -> bool:
        """Removes the shared table ``name`` (or the one an ``shm://`` URL names), with its
        wider tables (several rates): True if there was one. Limiters made afterwards get a new,
        empty table."""
    def _noop(self, key: str) -> bool: ...
    def _check_shared_table(self) -> None: ...

@final
class Lease:
    """Permits held from a :class:`ConcurrencyLimiter`, given back exactly once: by
    ``release()``, on leaving a ``with`` / ``async with`` block, or (with a
    ``ResourceWarning``) when dropped unreleased."""

    def release(self, *, dropped: bool = False) -> None:
        """Gives the permits back; a second call does nothing. ``dropped=True``: the work
        failed as overload (it timed out), which lowers an adaptive limit."""
    @property
    def released(self) -> bool: ...
    @property
    def key(self) -> str | None: ...
    @property
    def cost(self) -> int: ...
    @property
    def held_for(self) -> float:
        """Seconds since the permits were taken."""
    def __enter__(self) -> Lease: ...
    def __exit__(self, *_exc: object) -> Literal[False]: ...
    def __aenter__(self) -> Ready[Lease]: ...
    def __aexit__(self, *_exc: object) -> Ready[Literal[False]]: ...

@final
class Acquisition:
    """What ``ConcurrencyLimiter.acquire()`` returns: use it once, as ``with`` (the thread
    waits), ``async with`` or ``await`` (the task waits); each gives a :class:`Lease` or raises
    :class:`~rust_py_rate_limit.Overloaded`."""

    def __enter__(self) -> Lease: ...
    def __exit__(self, *_exc: object) -> Literal[False]: ...
    def __aenter__(self) -> Awaitable[Lease]: ...
    def __aexit__(self, *_exc: object) -> Ready[Literal[False]]: ...
    def __await__(self) -> Generator[Any, Any, Lease]:
        """``lease = await limiter.acquire()``: the lease is the caller's to release."""

@final
class ConcurrencyLimiter:
    """How many callers may hold a permit at once, per key or for all, with a bounded wait
    queue served by priority, then oldest (``"fifo"``) or newest (``"lifo"``) first."""

    def __new__(
        cls,
        limit: int | Literal["auto"],
        *,
        queue: int | None = None,
        queue_timeout: float | None = None,
        order: Literal["fifo", "lifo"] | None = None,
        max_keys: int | None = None,
        clock: ManualClock | None = None,
        adaptive: Literal["gradient", "aimd"] | None = None,
        initial_limit: int | None = None,
        min_limit: int | None = None,
        max_limit: int | None = None,
        tolerance: float | None = None,
        probe_limit: int | None = None,
        name: str | None = None,
    ) -> ConcurrencyLimiter: ...
    def _try_grant(self, key: str | None, /) -> Lease | None:
        """One free permit, or None without recording a refusal (the middlewares' fast path)."""
    def try_acquire(
        self, key: str | None = None, cost: int | None = None, *, priority: int | None = None
    ) -> Lease | None:
        """Takes ``cost`` permits now if they are free and nobody waits, else returns None."""
    def acquire(
        self, key: str | None = None, cost: int | None = None, *, priority: int | None = None
    ) -> Acquisition:
        """Permits for a ``with`` or ``async with`` block (or ``await``)."""
    @property
    def name(self) -> str:
        """``name=``, or made from the limit: ``"concurrency:4"``, ``"concurrency:auto"``."""
    @property
    def limit(self) -> int:
        """The limit now (an adaptive one moves)."""
    @property
    def in_flight(self) -> int: ...
    @property
    def queued(self) -> int: ...
    @property
    def queue(self) -> int: ...
    @property
    def queue_timeout(self) -> float: ...
    @property
    def order(self) -> Literal["fifo", "lifo"]: ...
    @property
    def adaptive(self) -> Literal["gradient", "aimd"] | None: ...
    def status(self, key: str | None = None) -> ConcurrencyStatus:
        """The limit, permits held and callers waiting for one key (or the unkeyed slot)."""
    def stats(self) -> ConcurrencyStats:
        """The name, totals since creation (refusals by reason) and the counts now."""
    def _note_deadline_missed(self) -> None:
        """Counts a permit whose holder missed its deadline (the overload layers' ``timeout``)."""
    def queue_time(self) -> Histogram:
        """How long the callers that queued waited until granted (limiter's clock), seconds."""
    def lease_duration(self) -> Histogram:
        """How long permits were held, from grant to release (limiter's clock), seconds."""

@final
class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``increment`` every ``period_secs``."""

    def __new__(
        cls,
        capacity: int,
        increment: int,
        period_secs: float,
        *,
        clock: ManualClock | None = None,
        name: str | None = None,
    ) -> TokenBucket: ...
    def process(self) -> bool:
        """Whether one request goes now (consuming it)."""
    def allow(self, cost: int | None = None) -> bool:
        """Whether a request of ``cost`` goes now (consuming it when it does)."""
    def decide(self, cost: int | None = None) -> Decision:
        """The decision on a request of ``cost`` now."""
    def peek(self, cost: int | None = None) -> Decision:
        """The ``Decision`` ``decide(cost)`` would return now, consuming nothing."""
    def remaining(self) -> int:
        """Requests of cost 1 that would go now."""
    def reset(self) -> None:
        """Full again, as if never used."""
    def acquire(self, cost: int | None = None, timeout: float | None = None) -> bool:
        """Blocks until the request goes (True), or False once it cannot within ``timeout``."""
    def aacquire(self, cost: int | None = None, timeout: float | None = None) -> Awaitable[bool]:
        """``acquire()`` for asyncio."""
    def throttle(self, cost: int | None = None) -> Throttle:
        """``with``/``async with``: waits until the request goes, then runs the block."""
    def _reserve(self, cost: int | None, max_wait: float | None) -> tuple[int, float, Decision]: ...
    def _refund(self, cost: int | None) -> None: ...
    def _clock(self) -> ManualClock | None: ...
    @property
    def name(self) -> str:
        """``name=``, or made from the settings: ``"token_bucket:1/5s,capacity=2"``."""
    @property
    def capacity(self) -> int: ...

@final
class Gcra:
    """``limit`` requests every ``period_secs``, evenly spaced, in bursts of up to ``burst``."""

    def __new__(
        cls,
        limit: int,
        period_secs: float,
        burst: int | None = None,
        *,
        clock: ManualClock | None = None,
        name: str | None = None,
    ) -> Gcra: ...
    def process(self) -> bool:
        """Whether one request goes now (consuming it)."""
    def allow(self, cost: int | None = None) -> bool:
        """Whether a request of ``cost`` goes now (consuming it when it does)."""
    def decide(self, cost: int | None = None) -> Decision:
        """The decision on a request of ``cost`` now."""
    def peek(self, cost: int | None = None) -> Decision:
        """The ``Decision`` ``decide(cost)`` would return now, consuming nothing."""
    def remaining(self) -> int:
        """Requests of cost 1 that would go now."""
    def reset(self) -> None:
        """Full again, as if never used."""
    def acquire(self, cost: int | None = None, timeout: float | None = None) -> bool:
        """Blocks until the request goes (True), or False once it cannot within ``timeout``."""
    def aacquire(self, cost: int | None = None, timeout: float | None = None) -> Awaitable[bool]:
        """``acquire()`` for asyncio."""
    def throttle(self, cost: int | None = None) -> Throttle:
        """``with``/``async with``: waits until the request goes, then runs the block."""
    def _reserve(self, cost: int | None, max_wait: float | None) -> tuple[int, float, Decision]: ...
    def _refund(self, cost: int | None) -> None: ...
    def _clock(self) -> ManualClock | None: ...
    @property
    def name(self) -> str:
        """``name=``, or made from the settings: ``"gcra:10/1s"``."""
    @property
    def limit(self) -> int: ...

@final
class FixedWindow:
    """Up to ``capacity`` requests per window of ``interval_secs``."""

    def __new__(
        cls,
        capacity: int,
        interval_secs: float,
        *,
        clock: ManualClock | None = None,
        name: str | None = None,
    ) -> FixedWindow: ...
    def process(self) -> bool:
        """Whether one request goes now (consuming it)."""
    def allow(self, cost: int | None = None) -> bool:
        """Whether a request of ``cost`` goes now (consuming it when it does)."""
    def decide(self, cost: int | None = None) -> Decision:
        """The decision on a request of ``cost`` now."""
    def peek(self, cost: int | None = None) -> Decision:
        """The ``Decision`` ``decide(cost)`` would return now, consuming nothing."""
    def remaining(self) -> int:
        """Requests of cost 1 that would go now."""
    def reset(self) -> None:
        """Full again, as if never used."""
    def acquire(self, cost: int | None = None, timeout: float | None = None) -> bool:
        """Blocks until the request goes (True), or False once it cannot within ``timeout``."""
    def aacquire(self, cost: int | None = None, timeout: float | None = None) -> Awaitable[bool]:
        """``acquire()`` for asyncio."""
    def throttle(self, cost: int | None = None) -> Throttle:
        """``with``/``async with``: waits until the request goes, then runs the block."""
    def _reserve(self, cost: int | None, max_wait: float | None) -> tuple[int, float, Decision]: ...
    def _refund(self, cost: int | None) -> None: ...
    def _clock(self) -> ManualClock | None: ...
    @property
    def name(self) -> str:
        """``name=``, or made from the settings: ``"fixed:100/60s"``."""
    @property
    def capacity(self) -> int: ...

@final
class SlidingWindow:
    """Up to ``capacity`` requests in any sliding ``interval_secs``."""

    def __new__(
        cls,
        capacity: int,
        interval_secs: float,
        *,
        clock: ManualClock | None = None,
        name: str | None = None,
    ) -> SlidingWindow: ...
    def process(self) -> bool:
        """Whether one request goes now (consuming it)."""
    def allow(self, cost: int | None = None) -> bool:
        """Whether a request of ``cost`` goes now (consuming it when it does)."""
    def decide(self, cost: int | None = None) -> Decision:
        """The decision on a request of ``cost`` now."""
    def peek(self, cost: int | None = None) -> Decision:
        """The ``Decision`` ``decide(cost)`` would return now, consuming nothing."""
    def remaining(self) -> int:
        """Requests of cost 1 that would go now."""
    def reset(self) -> None:
        """Full again, as if never used."""
    def acquire(self, cost: int | None = None, timeout: float | None = None) -> bool:
        """Blocks until the request goes (True), or False once it cannot within ``timeout``."""
    def aacquire(self, cost: int | None = None, timeout: float | None = None) -> Awaitable[bool]:
        """``acquire()`` for asyncio."""
    def throttle(self, cost: int | None = None) -> Throttle:
        """``with``/``async with``: waits until the request goes, then runs the block."""
    def _reserve(self, cost: int | None, max_wait: float | None) -> tuple[int, float, Decision]: ...
    def _refund(self, cost: int | None) -> None: ...
    def _clock(self) -> ManualClock | None: ...
    @property
    def name(self) -> str:
        """``name=``, or made from the settings: ``"sliding:100/60s"``."""
    @property
    def capacity(self) -> int: ...
