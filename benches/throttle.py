"""Waiting for a permit: the rate ``acquire()`` achieves against the configured rate.

10,000 acquisitions through ``100,000/second``, by 8 threads (``acquire()``, blocking) and by
100 asyncio tasks (``await aacquire()``), next to peers in the same run: aiolimiter's
``AsyncLimiter`` (asyncio) and pyrate-limiter's blocking ``try_acquire`` (threads). Each run
starts from an empty budget: the limiter is drained (non-blocking acquisitions until one is
refused) right before the workers are released, so what is measured is the steady rate, not a
burst. Variants with ``burst=1`` (nothing to drain) are measured too. A limiter whose budget
refills faster than non-blocking calls can take it (a rate above what one Python thread can
call) is not drained within 2 seconds: that round is left out of the rates and counted.

The achieved rate is acquisitions / (last acquisition done - release); the table gives its
median over rounds (variants interleaved in each round), the slowest and fastest rounds, and
the median as a fraction of the configured rate (issue 12's target: within 2%).

For rust_py_rate_limit one more round per variant records, around each sleep of
``rust_py_rate_limit._waiting`` (the reservation's), how late the sleeper woke after the
instant it reserved (requested wake-up = when the sleep began + the seconds the reservation
gave). The peers do not reserve (they sleep on a computed wait, then decide again), so they
have no such column.

Run it from outside the checkout against an installed build (see benches/README.md)::

    pip install aiolimiter pyrate-limiter        # peers; skipped when not installed
    python benches/throttle.py [--acquisitions N] [--rate R] [--rounds N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.metadata
import json
import math
import platform
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

CHECKOUT = Path(__file__).resolve().parent.parent
ACQUISITIONS = 10_000
RATE = 100_000  # per second
THREADS = 8
TASKS = 100
ROUNDS = 5
TARGET = 0.02  # achieved rate within 2% of the configured one


def import_library() -> ModuleType:
    """Imports the installed package, never the checkout's (which has no compiled ``_core``)."""
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != CHECKOUT]
    return importlib.import_module("rust_py_rate_limit")


# --- the variants: (name, how it is configured, factory) ------------------------------------

# A thread variant's factory returns (drain, acquire): drain() empties the budget without
# waiting (True once empty, False when it gave up), acquire() blocks until one acquisition
# goes and returns whether it went.
ThreadVariant = Callable[[], tuple[Callable[[], bool], Callable[[], bool]]]
# An asyncio variant's factory (called inside the loop) returns (drain, acquire) likewise,
# drain a coroutine function (aiolimiter drains by acquiring), acquire an awaitable's factory.
AsyncVariant = Callable[[], tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[Any]]]]
DRAIN_SECONDS = 2.0  # a budget not empty by then refills faster than it can be taken


@dataclass
class Variant:
    library: str
    config: str  # as a user writes it
    ours: bool
    make: Any  # ThreadVariant or AsyncVariant


def drainer(take: Callable[[], bool]) -> Callable[[], bool]:
    """drain(): calls ``take()`` (a non-blocking acquisition) until it is refused (True), or
    gives up after ``DRAIN_SECONDS`` (False)."""

    def drain() -> bool:
        deadline = time.perf_counter() + DRAIN_SECONDS
        while True:
            for _ in range(1024):
                if not take():
                    return True
            if time.perf_counter() > deadline:
                return False

    return drain


def thread_variants(lib: ModuleType, rate: int) -> Iterator[Variant]:
    def gcra(burst: int | None) -> ThreadVariant:
        def make() -> tuple[Callable[[], bool], Callable[[], bool]]:
            limiter = lib.Gcra(limit=rate, period_secs=1, burst=burst)
            return drainer(limiter.process), limiter.acquire

        return make

    def keyed() -> tuple[Callable[[], bool], Callable[[], bool]]:
        limiter = lib.RateLimiter(limit=rate, window_seconds=1, algorithm="gcra")
        return drainer(lambda: limiter.allow("k")), lambda: limiter.acquire("k")

    yield Variant("rust_py_rate_limit", f"Gcra(limit={rate}, period_secs=1)", True, gcra(None))
    yield Variant(
        "rust_py_rate_limit", f"Gcra(limit={rate}, period_secs=1, burst=1)", True, gcra(1)
    )
    yield Variant(
        "rust_py_rate_limit",
        f'RateLimiter({rate}, 1, "gcra").acquire("k")',
        True,
        keyed,
    )
    yield from pyrate_variants(rate)


def pyrate_variants(rate: int) -> Iterator[Variant]:
    try:
        from pyrate_limiter import GCRA, Duration, Limiter, Rate, StateBucket
    except ImportError:
        return
    # pyrate-limiter's clock counts milliseconds, so a burst under a millisecond's worth
    # (rate / 1000) could not be admitted within one tick; its blocking wait adds buffer_ms
    # (default 50 ms) to every sleep, which no throttle at 100,000/s survives: 0 here.
    per_ms = max(1, rate // 1000)

    def pyrate(make_limiter: Callable[[], Any]) -> ThreadVariant:
        def make() -> tuple[Callable[[], bool], Callable[[], bool]]:
            limiter = make_limiter()
            drain = drainer(lambda: limiter.try_acquire("k", blocking=False))
            return drain, lambda: limiter.try_acquire("k")

        return make

    def gcra() -> Any:
        bucket = StateBucket([Rate(rate, Duration.SECOND, burst=per_ms)], algorithm=GCRA())
        return Limiter(bucket, buffer_ms=0)

    def log() -> Any:
        return Limiter(Rate(per_ms, 1), buffer_ms=0)

    version = importlib.metadata.version("pyrate-limiter")
    yield Variant(
        f"pyrate-limiter {version}",
        f"StateBucket([Rate({rate}, Duration.SECOND, burst={per_ms})], GCRA()), buffer_ms=0",
        False,
        pyrate(gcra),
    )
    yield Variant(
        f"pyrate-limiter {version}",
        f"Rate({per_ms}, 1) (sliding log of 1 ms), buffer_ms=0",
        False,
        pyrate(log),
    )


def async_variants(lib: ModuleType, rate: int) -> Iterator[Variant]:
    def gcra(burst: int | None) -> AsyncVariant:
        def make() -> tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[Any]]]:
            limiter = lib.Gcra(limit=rate, period_secs=1, burst=burst)
            drain = drainer(limiter.process)

            async def adrain() -> bool:
                return drain()

            return adrain, limiter.aacquire

        return make

    def keyed() -> tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[Any]]]:
        limiter = lib.RateLimiter(limit=rate, window_seconds=1, algorithm="gcra")
        drain = drainer(lambda: limiter.allow("k"))

        async def adrain() -> bool:
            return drain()

        return adrain, lambda: limiter.aacquire("k")

    yield Variant("rust_py_rate_limit", f"Gcra(limit={rate}, period_secs=1)", True, gcra(None))
    yield Variant(
        "rust_py_rate_limit", f"Gcra(limit={rate}, period_secs=1, burst=1)", True, gcra(1)
    )
    yield Variant(
        "rust_py_rate_limit",
        f'RateLimiter({rate}, 1, "gcra").aacquire("k")',
        True,
        keyed,
    )
    yield from aiolimiter_variants(rate)


def aiolimiter_variants(rate: int) -> Iterator[Variant]:
    try:
        from aiolimiter import AsyncLimiter
    except ImportError:
        return

    def aio(max_rate: float, period: float) -> AsyncVariant:
        def make() -> tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[Any]]]:
            limiter = AsyncLimiter(max_rate, period)

            async def drain() -> bool:
                deadline = time.perf_counter() + DRAIN_SECONDS
                while limiter.has_capacity():
                    await limiter.acquire()  # returns at once while there is capacity
                    if time.perf_counter() > deadline:
                        return False
                return True

            return drain, limiter.acquire

        return make

    version = importlib.metadata.version("aiolimiter")
    yield Variant(f"aiolimiter {version}", f"AsyncLimiter({rate}, 1)", False, aio(rate, 1))
    yield Variant(
        f"aiolimiter {version}", f"AsyncLimiter(1, {1 / rate:g}) (burst 1)", False, aio(1, 1 / rate)
    )


# --- lateness of our sleepers (one instrumented round) ---------------------------------------


class SleepRecorder:
    """Wraps ``_waiting._sleep`` / ``_asleep``: for each sleep, how long after the requested
    wake-up (its start + the seconds asked) the sleeper came back."""

    def __init__(self, lib: ModuleType) -> None:
        self.waiting = importlib.import_module(f"{lib.__name__}._waiting")
        self.late_s: list[float] = []

    def __enter__(self) -> SleepRecorder:
        self.sleep, self.asleep = self.waiting._sleep, self.waiting._asleep
        late = self.late_s
        sleep, asleep = self.sleep, self.asleep

        def timed_sleep(clock: Any, seconds: float) -> None:
            due = time.perf_counter() + seconds
            sleep(clock, seconds)
            late.append(time.perf_counter() - due)

        async def timed_asleep(clock: Any, seconds: float) -> None:
            due = time.perf_counter() + seconds
            await asleep(clock, seconds)
            late.append(time.perf_counter() - due)

        self.waiting._sleep, self.waiting._asleep = timed_sleep, timed_asleep
        return self

    def __exit__(self, *exc: object) -> None:
        self.waiting._sleep, self.waiting._asleep = self.sleep, self.asleep


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float  # release to the last acquisition done
    acquired: int
    refused: int
    drained: bool  # False: the budget was not empty at the release (the round is left out)


def run_threads(make: ThreadVariant, acquisitions: int, threads: int) -> Run:
    drain, acquire = make()
    each = [acquisitions // threads + (i < acquisitions % threads) for i in range(threads)]
    start = threading.Barrier(threads + 1)
    done: list[float] = []
    counts: list[int] = []

    def worker(n: int) -> None:
        start.wait()
        ok = sum(bool(acquire()) for _ in range(n))
        done.append(time.perf_counter())
        counts.append(ok)

    workers = [threading.Thread(target=worker, args=(n,)) for n in each]
    for w in workers:
        w.start()
    drained = drain()
    released = time.perf_counter()
    start.wait()
    for w in workers:
        w.join()
    acquired = sum(counts)
    return Run(max(done) - released, acquired, acquisitions - acquired, drained)


def run_tasks(make: AsyncVariant, acquisitions: int, tasks: int) -> Run:
    async def main() -> Run:
        drain, acquire = make()
        go = asyncio.Event()
        each = [acquisitions // tasks + (i < acquisitions % tasks) for i in range(tasks)]

        async def worker(n: int) -> tuple[int, float]:
            await go.wait()
            ok = 0
            for _ in range(n):
                if await acquire() is not False:  # aiolimiter's acquire returns None
                    ok += 1
            return ok, time.perf_counter()

        running = [asyncio.create_task(worker(n)) for n in each]
        await asyncio.sleep(0)  # every task waiting on `go`
        drained = await drain()
        released = time.perf_counter()
        go.set()
        results = await asyncio.gather(*running)
        acquired = sum(ok for ok, _ in results)
        seconds = max(t for _, t in results) - released
        return Run(seconds, acquired, acquisitions - acquired, drained)

    return asyncio.run(main())


# --- rounds and the table --------------------------------------------------------------------


@dataclass
class Row:
    mode: str
    library: str
    config: str
    rates: list[float] = field(default_factory=list)  # per round, acquisitions per second
    refused: int = 0
    undrained: int = 0  # rounds left out: the budget was not empty at the release
    late_us: list[float] | None = None  # ours: one instrumented round

    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else math.nan


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    lib: ModuleType, mode: str, acquisitions: int, rate: int, rounds: int, workers: int
) -> list[Row]:
    variants = list(thread_variants(lib, rate) if mode == "threads" else async_variants(lib, rate))
    run = run_threads if mode == "threads" else run_tasks
    rows = [Row(mode, v.library, v.config) for v in variants]
    for _ in range(rounds):
        for variant, row in zip(variants, rows, strict=True):
            result = run(variant.make, acquisitions, workers)
            row.refused += result.refused
            if result.drained:
                row.rates.append(result.acquired / result.seconds)
            else:
                row.undrained += 1
    for variant, row in zip(variants, rows, strict=True):
        if variant.ours:
            with SleepRecorder(lib) as recorder:
                run(variant.make, acquisitions, workers)
            row.late_us = [s * 1e6 for s in recorder.late_s]
    return rows


def table(rows: list[Row], rate: int) -> list[str]:
    lines = [
        "| mode | library | configuration | achieved /s (median) | slowest - fastest round "
        "| x configured | within 2% | woke late vs reserved µs: p50 / p99 / max (sleeps) |",
        "|---|---|---|--:|--:|--:|---|--:|",
    ]
    for r in rows:
        ratio = r.median() / rate
        within = "yes" if abs(ratio - 1) <= TARGET else "**no**"
        late = "-"
        if r.late_us:
            p50, p99 = percentile(r.late_us, 0.5), percentile(r.late_us, 0.99)
            late = f"{p50:,.0f} / {p99:,.0f} / {max(r.late_us):,.0f} ({len(r.late_us):,})"
        elif r.late_us is not None:
            late = "no sleep"
        notes = f" ({r.refused} refused)" if r.refused else ""
        if r.undrained:
            notes += f" (not drained in {r.undrained} of {r.undrained + len(r.rates)} rounds)"
        if not r.rates:
            lines.append(f"| {r.mode} | {r.library} | `{r.config}`{notes} | - | - | - | - | - |")
            continue
        lines.append(
            f"| {r.mode} | {r.library} | `{r.config}`{notes} | {r.median():,.0f} "
            f"| {min(r.rates):,.0f} - {max(r.rates):,.0f} | {ratio:.3f} | {within} | {late} |"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--acquisitions", type=int, default=ACQUISITIONS)
    parser.add_argument("--rate", type=int, default=RATE, help="per second")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--threads", type=int, default=THREADS)
    parser.add_argument("--tasks", type=int, default=TASKS)
    parser.add_argument("--json", action="store_true", help="JSON instead of the table")
    args = parser.parse_args(argv)
    lib = import_library()
    rows = measure(lib, "threads", args.acquisitions, args.rate, args.rounds, args.threads)
    rows += measure(lib, "asyncio", args.acquisitions, args.rate, args.rounds, args.tasks)
    if args.json:
        doc = {"module": lib.__file__, "version": lib.__version__, "rate": args.rate}
        doc |= {"acquisitions": args.acquisitions, "rows": [asdict(r) for r in rows]}
        print(json.dumps(doc, indent=2))
        return
    lines = [
        "# Waiting for a permit: achieved rate against the configured one",
        "",
        f"- imported: {lib.__file__} (version {lib.__version__}); Python "
        f"{platform.python_version()} on {platform.machine()}",
        f"- {args.acquisitions:,} acquisitions through {args.rate:,}/second, by "
        f"{args.threads} threads (`acquire()`) and by {args.tasks} asyncio tasks "
        f"(`await aacquire()`); {args.rounds} rounds, variants interleaved",
        "- each run starts from an empty budget: drained by non-blocking acquisitions right "
        "before the workers are released (nothing to drain with burst 1)",
        "- achieved: acquisitions / (last one done - release); lateness: one more round of "
        "ours, each sleep's wake-up against the instant its reservation gave",
        "",
        *table(rows, args.rate),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
