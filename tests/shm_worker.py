"""Work done in other processes by the shm:// tests (importable, so ``spawn`` can run it)."""

from __future__ import annotations

import os
import threading
from typing import Any

from rust_py_rate_limit import RateLimiter

#: The several rates the kill loop counts with: a request applied to one rate and not the
#: other would leave them apart.
TWO_RATES = "1000000/hour; 1000001/day"


def hammer(url: str, rate: str, algorithm: str, threads: int, tries: int, queue: Any) -> None:
    """Opens ``url`` in this process; ``threads`` threads each try ``tries`` times on one key;
    puts the number admitted on ``queue``."""
    limiter = RateLimiter.from_rate(rate, algorithm, storage=url)
    start = threading.Barrier(threads)
    counts = [0] * threads

    def run(i: int) -> None:
        start.wait()
        counts[i] = sum(limiter.allow("hot") for _ in range(tries))

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put(sum(counts))


def churn_until_killed(url: str, churn_url: str, report_fd: int, seed: int) -> None:
    """Runs until SIGKILLed: admissions on four counted keys of one rate and four of two (each
    reported on ``report_fd`` as one byte, the key's number, once admitted) and a flood of new
    keys on a small evicting table, so that kills land inside updates, inside requests being
    applied to several rates, and inside changes of membership alike."""
    counted = RateLimiter.from_rate("1000000/hour", storage=url)
    two = RateLimiter.from_rate(TWO_RATES, storage=url)
    churn = RateLimiter.from_rate("5/second", "gcra", storage=churn_url, on_full="evict")
    n = seed
    while True:
        n = (n * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        key = n >> 62
        if counted.allow(f"k{key}"):
            os.write(report_fd, bytes([key]))
        if two.allow(f"m{key}"):
            os.write(report_fd, bytes([4 + key]))
        churn.allow(f"c{n >> 40}")
