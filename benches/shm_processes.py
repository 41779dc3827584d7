"""Several processes on one limit: throughput and exactness of ``shm://`` against the others.

``--processes`` worker processes (8), started with spawn and pinned to ``--cpus`` (0,1: eight
processes on two cores), call ``limiter.allow(key)`` in a loop, all starting at one barrier:

- hot key: every call on one key, with a limit of half the calls made in all;
- random keys: each process draws its keys at random (its own seed) from 100,000, with a
  limit per key of half the calls a key gets on average.

Every algorithm gets these limits on every store. On ``shm://`` a sliding window counting more
than 65,535 a window keeps its state in two words a rate (table ``NAME+2words`` and up), one
counting at most that in one word a rate (for one rate the one-rate table ``NAME``): with the
default calls, sliding takes the wide path on the hot key (4,000,000) and the narrow one over
the random keys (40).

The limits are per year, so that no bucket algorithm refills a token during the run and no
fixed window ends in it: the exact number to admit is then known, ``L`` on the hot key and the
sum over keys of ``min(L, calls on the key)`` for the random keys (on ``shm://``, over the keys
that got room in the table: a key refused for want of room is refused on every call, as no slot
frees during a run, and holds no state after it; the bench finds those keys with ``remaining``,
checks that their calls are all the calls refused for want of room, and names their count).
Each run prints that number next to the admissions the processes counted, their calls per
second each and in all (all calls over the time from the first start to the last end), and
their context switches during the loop: voluntary ones are waits (a lock, a socket),
involuntary ones are the scheduler sharing two cores among eight processes.

With ``--rate RATE`` (a rate string, e.g. ``"10/second; 1000/hour"``) every limiter has as
many rates as RATE, built with ``RateLimiter.from_rate``: rate ``i`` (from 1) admits ``i * L``
per ``i`` years, where ``L`` is the one-rate limit above. Only RATE's count of rates is used,
not its windows: exactness needs windows that no run sees end or refill. No run reaches the
second rate's limit before the first's, so an exact shared limit still admits what it does with
one rate, and every admission is counted in every rate, atomically.

The stores, one after the other, each on a fresh state:

- ``shm://`` (a fresh table per run, ``capacity=--capacity``): shared, so exact;
- ``memory://``: each process counts alone, so it admits ``--processes`` times the limit (the
  problem ``shm://`` solves), at in-process speed;
- ``redis://`` on a ``redis-server`` the bench starts on a free loopback port (if one is
  installed), fewer calls (``--redis-calls``), in two layouts: the server on CPU 0 and the
  processes on CPU 1, and everything on both CPUs.

Run it from outside the checkout against an installed build::

    cd /tmp && python /path/to/checkout/benches/shm_processes.py
    #   --processes N (8)  --cpus 0,1  --calls N (per process, 1,000,000)  --keys N (100,000)
    #   --algorithms fixed,gcra (all)  --capacity N (400,000)  --redis-calls N (10,000)
    #   --no-redis  --json PATH  --rate RATE (several rates: as many as RATE has)
"""

from __future__ import annotations

import argparse
import array
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from local_server import redis_server

CHECKOUT = Path(__file__).resolve().parent.parent
YEAR = 365 * 24 * 3600
SHM_MAX_RATES = 4
MAX_COUNT = 2**32 - 1  # the largest limit a rate takes
HOT_KEY = "user:hot"


def import_library() -> Any:
    """The installed package, never the checkout's (which has no compiled ``_core``)."""
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != CHECKOUT]
    import rust_py_rate_limit

    return rust_py_rate_limit


# --- one worker process ---------------------------------------------------------------------


@dataclass
class Job:
    """What every process of a run does."""

    storage: str | None  # None: memory://
    key_prefix: str | None
    algorithm: str
    limit: int
    window_seconds: float
    scenario: str  # "hot key" or "random keys"
    calls: int
    keys: int
    cpus: list[int]
    rate: str | None = None  # several rates (--rate): their rate string, `limit` the first's


@dataclass
class Result:
    calls: int
    admitted: int
    started: float  # time.perf_counter(): CLOCK_MONOTONIC, the same clock in every process
    ended: float
    voluntary_switches: int
    involuntary_switches: int
    rejected_full: int
    storage_errors: int
    counts: bytes  # array('I') of calls per key index (random keys only)


def make_limiter(lib: Any, job: Job) -> Any:
    options: dict[str, Any] = {
        "storage": job.storage,
        "key_prefix": job.key_prefix,
        "timeout": 5.0 if job.storage and job.storage.startswith("redis") else None,
    }
    if job.rate is None:
        return lib.RateLimiter(job.limit, job.window_seconds, job.algorithm, **options)
    return lib.RateLimiter.from_rate(job.rate, job.algorithm, **options)


def key_names(keys: int) -> list[str]:
    return [f"user:{i:07d}" for i in range(keys)]


def worker(job: Job, seed: int, barrier: Any, results: Any) -> None:
    os.sched_setaffinity(0, job.cpus)
    lib = import_library()
    limiter = make_limiter(lib, job)
    counts = array.array("I")
    if job.scenario == "hot key":
        keys = [HOT_KEY] * job.calls
    else:
        names = key_names(job.keys)
        rng = random.Random(seed)
        drawn = [rng.randrange(job.keys) for _ in range(job.calls)]
        keys = [names[i] for i in drawn]
        counts = array.array("I", bytes(4 * job.keys))
        for i in drawn:
            counts[i] += 1
    limiter.allow(f"warm:{seed}")  # loads the code, opens the table or the connection
    allow = limiter.allow
    admitted = 0
    barrier.wait()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for key in keys:
        if allow(key):
            admitted += 1
    ended = time.perf_counter()
    after = resource.getrusage(resource.RUSAGE_SELF)
    stats = limiter.stats()
    results.put(
        Result(
            job.calls,
            admitted,
            started,
            ended,
            after.ru_nvcsw - before.ru_nvcsw,
            after.ru_nivcsw - before.ru_nivcsw,
            stats["rejected_full"],
            stats["storage_errors"],
            counts.tobytes(),
        )
    )


# --- one run: N processes ----------------------------------------------------------------


@dataclass
class Row:
    store: str
    layout: str
    algorithm: str
    scenario: str
    processes: int
    limit: int
    calls: int
    admitted: int
    expected: int  # what an exact shared limit admits
    exact: bool
    total_per_second: float
    per_process_per_second: list[float]
    voluntary_switches: int
    involuntary_switches: int
    rejected_full: int
    storage_errors: int
    rate: str | None = None
    # shm:// random keys with calls refused for want of room: the keys that hold no state
    refused_keys: int | None = None


def unheld(job: Job, per_key: list[int], processes: int) -> tuple[list[int], int]:
    """The keys (indices) called in a shm:// run that hold no state after it, and their calls
    (with the processes' warm-up calls that hold none).

    No state ends and no slot frees during a run (limits per year), so a key refused for want
    of room on its first call is refused on every call, and a key admitted once keeps its slot:
    the keys that hold no state are those refused, and their calls are all the calls refused for
    want of room. A key still holding no state reads the full limit from ``remaining``.
    """
    limiter = make_limiter(import_library(), job)
    names = key_names(job.keys)
    keys = [i for i, n in enumerate(per_key) if n and limiter.remaining(names[i]) >= job.limit]
    warm = sum(limiter.remaining(f"warm:{seed}") >= job.limit for seed in range(processes))
    return keys, warm + sum(per_key[i] for i in keys)


def run(job: Job, processes: int, store: str, layout: str, shared: bool) -> Row:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=worker, args=(job, seed, barrier, results)) for seed in range(processes)
    ]
    for w in workers:
        w.start()
    done = [results.get(timeout=600) for _ in workers]
    for w in workers:
        w.join(timeout=60)
        if w.exitcode != 0:
            sys.exit(f"a worker failed ({store}, {job.algorithm}, {job.scenario}): {w.exitcode}")
    calls = sum(r.calls for r in done)
    admitted = sum(r.admitted for r in done)
    if job.scenario == "hot key":
        per_key = [calls]
    else:
        total = array.array("I", bytes(4 * job.keys))
        for r in done:
            mine = array.array("I")
            mine.frombytes(r.counts)
            for i, n in enumerate(mine):
                total[i] += n
        per_key = list(total)
    # An exact shared limit admits min(L, calls) per key; processes counting alone admit up
    # to L each.
    expected = sum(min(job.limit, n) for n in per_key)
    # Keys refused for want of room on every call (shm://): an exact limit admits the others.
    refused_full = sum(r.rejected_full for r in done)
    refused_keys = None
    if refused_full and store == "shm://" and job.scenario != "hot key":
        keys, refused_calls = unheld(job, per_key, processes)
        refused_keys = len(keys)
        if refused_calls == refused_full:  # else a key lost its state: leave `expected` unmet
            expected -= sum(min(job.limit, per_key[i]) for i in keys)
    span = max(r.ended for r in done) - min(r.started for r in done)
    return Row(
        store,
        layout,
        job.algorithm,
        job.scenario,
        processes,
        job.limit,
        calls,
        admitted,
        expected,
        admitted == expected if shared else False,
        calls / span,
        [r.calls / (r.ended - r.started) for r in done],
        sum(r.voluntary_switches for r in done),
        sum(r.involuntary_switches for r in done),
        refused_full,
        sum(r.storage_errors for r in done),
        job.rate,
        refused_keys,
    )


def job_for(
    scenario: str, algorithm: str, storage: str | None, calls: int, args: argparse.Namespace
) -> Job:
    total = calls * args.processes
    limit = max(1, total // 2 if scenario == "hot key" else total // args.keys // 2)
    rate = None
    if args.rates:
        rate = "; ".join(
            f"{min(MAX_COUNT, i * limit)}/{'year' if i == 1 else f'{i} years'}"
            for i in range(1, args.rates + 1)
        )
    return Job(
        storage,
        f"bench{uuid.uuid4().hex[:12]}" if storage and storage.startswith("redis") else None,
        algorithm,
        limit,
        YEAR,
        scenario,
        calls,
        args.keys,
        args.cpus,
        rate,
    )


# --- reporting ------------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| store | layout | algorithm | scenario | limit | calls | admitted | exact limit "
        "would admit | exact | calls/s, all | calls/s per process (min-max) "
        "| voluntary / involuntary switches |",
        "|---|---|---|---|--:|--:|--:|--:|---|--:|--:|--:|",
    ]
    for r in rows:
        exact = "yes" if r.exact else ("**no**" if r.store.startswith(("shm", "redis")) else "-")
        if r.store == "memory://" and r.admitted > r.expected:
            exact = f"- ({r.admitted / r.expected:.1f}x)"
        if r.refused_keys:
            exact += f" ({r.refused_keys:,} keys refused for want of room)"
        lines.append(
            f"| {r.store} | {r.layout} | {r.algorithm} | {r.scenario} | {r.limit:,} "
            f"| {r.calls:,} | {r.admitted:,} | {r.expected:,} | {exact} "
            f"| {r.total_per_second:,.0f} | {min(r.per_process_per_second):,.0f}-"
            f"{max(r.per_process_per_second):,.0f} "
            f"| {r.voluntary_switches:,} / {r.involuntary_switches:,} |"
        )
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--cpus", default="0,1", help="CPUs the processes run on (0,1)")
    parser.add_argument("--calls", type=int, default=1_000_000, help="per process")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--algorithms", help="comma-separated (default: all)")
    parser.add_argument("--capacity", type=int, default=400_000, help="of the shm:// table")
    parser.add_argument("--redis-calls", type=int, default=10_000, help="per process")
    parser.add_argument("--no-redis", action="store_true")
    parser.add_argument("--json", metavar="PATH", help="also write every row as JSON")
    parser.add_argument(
        "--rate",
        metavar="RATE",
        help="limiters of as many rates as this rate string has (e.g. '10/second; 1000/hour'): "
        "rate i admits i x the one-rate limit per i years (default: one rate)",
    )
    args = parser.parse_args(argv)
    args.cpus = [int(c) for c in args.cpus.split(",")]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    lib = import_library()
    args.rates = 0
    if args.rate is not None:
        try:
            args.rates = len(lib.RateLimiter.from_rate(args.rate).rates)
        except ValueError as e:
            sys.exit(f"--rate: {e}")
        if args.rates > SHM_MAX_RATES:
            sys.exit(
                f"--rate: shm:// takes at most {SHM_MAX_RATES} rates, {args.rate!r} has "
                f"{args.rates}"
            )
    algorithms = args.algorithms.split(",") if args.algorithms else list(lib.ALGORITHMS)
    scenarios = ["hot key", "random keys"]
    cpus = ",".join(map(str, args.cpus))
    rows: list[Row] = []
    name = f"bench-processes-{os.getpid()}"
    shm = f"shm://{name}?capacity={args.capacity}"
    for scenario in scenarios:
        for algorithm in algorithms:
            lib.RateLimiter.destroy_shared(name)
            try:
                job = job_for(scenario, algorithm, shm, args.calls, args)
                rows.append(run(job, args.processes, "shm://", f"CPUs {cpus}", shared=True))
            finally:
                lib.RateLimiter.destroy_shared(name)
            job = job_for(scenario, algorithm, None, args.calls, args)
            rows.append(run(job, args.processes, "memory://", f"CPUs {cpus}", shared=False))
    redis_note = ""
    if args.no_redis:
        redis_note = "Redis: not run (--no-redis)."
    elif shutil.which("redis-server") is None or shutil.which("taskset") is None:
        redis_note = "Redis: not run, no redis-server (or taskset) installed."
    else:
        server_cpu, client_cpus = args.cpus[:1], args.cpus[1:] or args.cpus
        layouts = [
            (
                f"server CPU {server_cpu[0]}, processes CPU {','.join(map(str, client_cpus))}",
                server_cpu,
                client_cpus,
            ),
            (f"server and processes CPUs {cpus}", args.cpus, args.cpus),
        ]
        for layout, server, clients in layouts:
            with redis_server(server) as (port, _):
                url = f"redis://127.0.0.1:{port}/0"
                for scenario in scenarios:
                    for algorithm in algorithms:
                        job = job_for(scenario, algorithm, url, args.redis_calls, args)
                        job.cpus = clients
                        rows.append(run(job, args.processes, "redis://", layout, shared=True))
    print(
        f"# {args.processes} processes on CPUs {cpus}: rust_py_rate_limit {lib.__version__}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs\n"
    )
    print(
        f"- {args.calls:,} calls per process on shm:// and memory://, {args.redis_calls:,} on "
        f"redis://; random keys drawn from {args.keys:,}; limits per year (no refill, no "
        f"window end during a run); shm:// table of capacity {args.capacity:,}, fresh per run"
    )
    print(
        "- exact: the admissions counted by all processes equal what one exact shared limit "
        "admits (L on the hot key, the sum of min(L, calls) over the random keys, on shm:// "
        "those given room in the table); memory:// counts per process, so it admits up to "
        "processes x that"
    )
    print("- calls/s, all: every call over the time from the first start to the last end")
    if args.rates:
        print(
            f"- {args.rates} rates a limiter (--rate {args.rate!r}): rate i admits i x limit "
            "per i years, so the first binds (the limit column): "
            + ", ".join(f"`{rate}`" for rate in dict.fromkeys(r.rate for r in rows))
        )
    print()
    print("\n".join(table(rows)))
    full = [r for r in rows if r.rejected_full or r.storage_errors]
    for r in full:
        print(
            f"\n{r.store} {r.algorithm} {r.scenario}: {r.rejected_full:,} calls refused for want "
            f"of room, {r.storage_errors:,} storage errors"
        )
    if redis_note:
        print(f"\n{redis_note}")
    if args.json:
        docs = [asdict(r) for r in rows]
        for doc in docs:
            for field in ("rate", "refused_keys"):
                if doc[field] is None:
                    del doc[field]  # as before these fields
        Path(args.json).write_text(json.dumps(docs, indent=2))


if __name__ == "__main__":
    main()
