"""What a decision on Redis costs: ours next to a bare round trip and the `limits` library.

On loopback, against a `redis-server` this script starts on a free port (and stops by pid):

- sync: microseconds per call of `allow()` (GCRA and fixed window, every call admitted), a
  redis-py `PING` (the floor: one round trip doing nothing) and `limits`' Redis fixed window
  (`FixedWindowRateLimiter.hit`);
- async: decisions per second with 100 concurrent asyncio tasks, `await limiter.aallow()`
  vs `limits.aio`'s fixed window (`await hit()`).

Targets: sync `allow()` no slower than a redis-py `PING`; async throughput at least 5x
`limits.aio`'s. Needs `pip install redis 'limits[redis,async-redis]'` and Debian's
`redis-server`. Run it from outside the checkout:

    cd /tmp && /path/to/venv/bin/python /path/to/checkout/benches/redis_bench.py
    #   --calls N (20000)  --tasks N (100)  --async-calls N (per task, 200)  --repeats N (5)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable

from local_server import redis_server

import rust_py_rate_limit
from rust_py_rate_limit import RateLimiter

HUGE = 4_000_000_000  # a limit no run reaches: every call is admitted


def per_call_us(call: Callable[[], object], calls: int, repeats: int) -> float:
    """Best of `repeats` runs of `calls` calls, in microseconds per call."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


async def per_second(
    call: Callable[[], Awaitable[object]], tasks: int, calls: int, repeats: int
) -> float:
    """Best of `repeats` runs of `tasks` concurrent tasks making `calls` calls each."""

    async def worker() -> None:
        for _ in range(calls):
            await call()

    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        best = max(best, tasks * calls / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--async-calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    import limits
    import limits.aio.storage
    import limits.aio.strategies
    import limits.storage
    import limits.strategies
    import redis

    print(
        f"rust_py_rate_limit {rust_py_rate_limit.__version__}, redis-py {redis.__version__}, "
        f"limits {limits.__version__}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    with redis_server() as (port, _):
        url = f"redis://127.0.0.1:{port}/0"
        ping = redis.Redis(host="127.0.0.1", port=port)
        ours_gcra = RateLimiter(HUGE, 3600, "gcra", storage=url, timeout=1.0)
        ours_fixed = RateLimiter(HUGE, 3600, "fixed", storage=url, timeout=1.0)
        item = limits.RateLimitItemPerHour(HUGE)
        theirs = limits.strategies.FixedWindowRateLimiter(limits.storage.storage_from_string(url))
        for warm in (ping.ping, lambda: ours_gcra.allow("user:42")):
            warm()

        sync_calls: list[tuple[str, Callable[[], object]]] = [
            ("redis-py `PING` (the floor)", ping.ping),
            ("`allow()`, gcra", lambda: ours_gcra.allow("user:42")),
            ("`allow()`, fixed", lambda: ours_fixed.allow("user:42")),
            ("limits `FixedWindowRateLimiter.hit`", lambda: theirs.hit(item, "user:42")),
        ]
        # Rounds alternate between the calls, so that drift in the machine's loopback latency
        # hits them all alike; each keeps its best round.
        best = {name: float("inf") for name, _ in sync_calls}
        for _ in range(args.repeats):
            for name, call in sync_calls:
                best[name] = min(best[name], per_call_us(call, args.calls, 1))
        sync_rows = [(name, best[name]) for name, _ in sync_calls]
        floor = sync_rows[0][1]
        print(
            f"\n## Sync, one thread: microseconds per call ({args.calls} calls, best of "
            f"{args.repeats})\n"
        )
        print("| call | µs per call | x PING |")
        print("|---|--:|--:|")
        for name, us in sync_rows:
            print(f"| {name} | {us:.1f} | {us / floor:.2f} |")

        async def run_async() -> list[tuple[str, float]]:
            ours_async = RateLimiter(HUGE, 3600, "fixed", storage=url, timeout=1.0)
            their_storage = limits.storage.storage_from_string(f"async+{url}")
            theirs_async = limits.aio.strategies.FixedWindowRateLimiter(their_storage)
            await ours_async.aallow("user:42")
            await theirs_async.hit(item, "user:42")
            ours = await per_second(
                lambda: ours_async.aallow("user:42"), args.tasks, args.async_calls, args.repeats
            )
            their = await per_second(
                lambda: theirs_async.hit(item, "user:42"),
                args.tasks,
                args.async_calls,
                args.repeats,
            )
            return [("`await aallow()`, fixed", ours), ("limits.aio fixed window `hit`", their)]

        async_rows = asyncio.run(run_async())
        theirs_rate = async_rows[1][1]
        print(
            f"\n## Async: decisions per second, {args.tasks} concurrent tasks x "
            f"{args.async_calls} calls (best of {args.repeats})\n"
        )
        print("| call | decisions/s | x limits.aio |")
        print("|---|--:|--:|")
        for name, rate in async_rows:
            print(f"| {name} | {rate:,.0f} | {rate / theirs_rate:.1f} |")
        print(
            f"\ntargets: sync allow() <= PING: "
            f"{'met' if sync_rows[1][1] <= floor else 'missed'} "
            f"({sync_rows[1][1] / floor:.2f}x); async >= 5x limits.aio: "
            f"{'met' if async_rows[0][1] >= 5 * theirs_rate else 'missed'} "
            f"({async_rows[0][1] / theirs_rate:.1f}x)"
        )


if __name__ == "__main__":
    main()
