"""A worker process for the Redis concurrency test: several threads hammer one key per algorithm
through a Redis-backed limiter and the admitted counts are printed as JSON.

Usage: ``python redis_worker.py URL PREFIX LIMIT WINDOW THREADS CALLS ALGORITHM...``. Run it
with the installed package (from a directory outside the checkout): every thread waits on a
barrier, then makes ``CALLS`` calls of ``allow()`` on the key ``hammer`` of each algorithm
(key prefix ``PREFIX-ALGORITHM``).
"""

from __future__ import annotations

import json
import sys
import threading

from rust_py_rate_limit import RateLimiter


def main(argv: list[str]) -> None:
    url, prefix, limit, window, threads, calls, *algorithms = argv
    limiters = {
        algorithm: RateLimiter(
            int(limit),
            float(window),
            algorithm,
            storage=url,
            key_prefix=f"{prefix}-{algorithm}",  # the algorithms' states must not share keys
            timeout=5.0,
        )
        for algorithm in algorithms
    }
    admitted = {algorithm: 0 for algorithm in algorithms}
    lock = threading.Lock()
    barrier = threading.Barrier(int(threads))

    def hammer() -> None:
        barrier.wait()
        for _ in range(int(calls)):
            for algorithm, limiter in limiters.items():
                if limiter.allow("hammer"):
                    with lock:
                        admitted[algorithm] += 1

    workers = [threading.Thread(target=hammer) for _ in range(int(threads))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    errors = {a: limiter.stats()["storage_errors"] for a, limiter in limiters.items()}
    print(json.dumps({"admitted": admitted, "storage_errors": errors}))


if __name__ == "__main__":
    main(sys.argv[1:])
