"""Concurrency limits: at most N callers at once, the rest queued a while or refused.

Run with:  python examples/concurrency.py
"""

from __future__ import annotations

import asyncio
import threading
import time

from rust_py_rate_limit import (
    ConcurrencyLimiter,
    ConcurrencyStats,
    Lease,
    Overloaded,
)


def threads() -> None:
    # 2 at once; up to 8 threads wait, each for at most a second.
    limiter = ConcurrencyLimiter(2, queue=8, queue_timeout=1.0)
    busy: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        with limiter.acquire():
            with lock:
                busy.append(limiter.in_flight)
            time.sleep(0.01)

    workers = [threading.Thread(target=work) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print("threads: most permits held at once:", max(busy))


async def tasks() -> None:
    # Per key: each tenant gets 1 permit at a time; no queue, so extra callers are refused.
    limiter = ConcurrencyLimiter(1, max_keys=1000)

    async def handle(tenant: str) -> str:
        try:
            async with limiter.acquire(tenant):
                await asyncio.sleep(0.01)
                return "served"
        except Overloaded as refused:
            return f"refused ({refused.reason})"

    print("tasks:", await asyncio.gather(handle("a"), handle("a"), handle("b")))


def try_and_release() -> None:
    limiter = ConcurrencyLimiter(1)
    lease: Lease | None = limiter.try_acquire()
    assert lease is not None
    print("second try_acquire while held:", limiter.try_acquire())
    lease.release()
    stats: ConcurrencyStats = limiter.stats()
    print("acquired:", stats["acquired"], "rejected:", stats["rejected"])


if __name__ == "__main__":
    threads()
    asyncio.run(tasks())
    try_and_release()
