"""allow() next to the in-memory limiters of peer libraries, in one run.

Every limiter admits every call (a limit far above the number of calls), and each is driven by
the loop users write, ``for k in keys: check(k)``, over a hot key and over 100,000 keys
round-robin. Peers that are not installed are skipped (install them with
``pip install limits pyrate-limiter throttled-py``). Printed: ns per call and the multiple of
``rust_py_rate_limit``'s time for the same algorithm family.

Run from outside the checkout:  python benches/peers.py [--calls N] [--chart PNG]

``--chart`` also draws the table as a PNG (matplotlib, log scale: the peers are 30-400x
slower), one panel per scenario; docs/benchmarks.md shows ``docs/images/peers.png``.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parents[1]]

from rust_py_rate_limit import RateLimiter  # noqa: E402

LIMIT = 4_000_000_000
HOUR = 3600
Check = Callable[[str], object]


def ours(algorithm: str) -> Check:
    return RateLimiter(LIMIT, HOUR, algorithm).allow


def peer_checks() -> Iterator[tuple[str, str, Callable[[], Check]]]:
    """(library, algorithm family, factory) for every peer that imports."""
    try:
        from limits import parse, storage, strategies

        item = parse(f"{LIMIT}/hour")

        def limits_check(cls: type[strategies.RateLimiter]) -> Callable[[], Check]:
            def make() -> Check:
                limiter = cls(storage.MemoryStorage())
                return lambda key: limiter.hit(item, key)

            return make

        yield "limits", "fixed", limits_check(strategies.FixedWindowRateLimiter)
        yield "limits", "sliding", limits_check(strategies.SlidingWindowCounterRateLimiter)
        yield "limits (moving window)", "sliding", limits_check(strategies.MovingWindowRateLimiter)
    except ImportError:
        pass
    try:
        from pyrate_limiter import Duration, Limiter, Rate

        def pyrate() -> Check:
            limiter = Limiter(Rate(LIMIT, Duration.HOUR))
            return lambda key: limiter.try_acquire(key, blocking=False)

        yield "pyrate-limiter (sliding log)", "sliding", pyrate
    except ImportError:
        pass
    try:
        from throttled import MemoryStore, Throttled, per_hour

        def throttled_check(using: str) -> Callable[[], Check]:
            def make() -> Check:
                limiter = Throttled(using=using, quota=per_hour(LIMIT), store=MemoryStore())
                return lambda key: limiter.limit(key)

            return make

        for using, family in [
            ("fixed_window", "fixed"),
            ("sliding_window", "sliding"),
            ("token_bucket", "token_bucket"),
            ("gcra", "gcra"),
        ]:
            yield "throttled-py", family, throttled_check(using)
    except ImportError:
        pass


def ns_per_call(check: Check, keys: list[str], repeats: int) -> float:
    best = float("inf")
    gc.disable()
    try:
        for _ in range(repeats):
            start = time.perf_counter_ns()
            for k in keys:
                check(k)
            best = min(best, (time.perf_counter_ns() - start) / len(keys))
    finally:
        gc.enable()
    return best


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per loop")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chart", type=Path, help="also write the table as a PNG chart here")
    args = parser.parse_args()
    many = [f"user:{i:07d}" for i in range(100_000)]
    scenarios = {
        "hot key": ["user:0000001"] * args.calls,
        "100k keys": [many[i % len(many)] for i in range(args.calls)],
    }
    print(
        "versions: "
        + ", ".join(
            f"{d} {version(d)}"
            for d in ["rust-py-rate-limit", "limits", "pyrate-limiter", "throttled-py"]
        )
    )
    print(f"{args.calls:,} calls per loop, best of {args.repeats}\n")
    print("| library | algorithm | " + " | ".join(f"{s} ns (x ours)" for s in scenarios) + " |")
    print("|---|---|" + "--:|" * len(scenarios))
    baseline: dict[tuple[str, str], float] = {}
    rows: list[Row] = []
    for family in ["fixed", "sliding", "token_bucket", "gcra"]:
        cells = []
        for name, keys in scenarios.items():
            baseline[family, name] = ns_per_call(ours(family), keys, args.repeats)
            cells.append(f"{baseline[family, name]:,.0f}")
        rows.append(("rust-py-rate-limit", family, [baseline[family, n] for n in scenarios]))
        print(f"| rust-py-rate-limit | {family} | " + " | ".join(cells) + " |")
    for library, family, make in peer_checks():
        cells, times = [], []
        for name, keys in scenarios.items():
            ns = ns_per_call(make(), keys, args.repeats)
            times.append(ns)
            cells.append(f"{ns:,.0f} ({ns / baseline[family, name]:.0f}x)")
        rows.append((library, family, times))
        print(f"| {library} | {family} | " + " | ".join(cells) + " |")
    if args.chart:
        chart(rows, list(scenarios), args.chart)
        print(f"\nchart: {args.chart}")


#: (library, algorithm family, ns per call in each scenario)
Row = tuple[str, str, list[float]]


def chart(rows: list[Row], scenarios: list[str], path: Path) -> None:
    """The table as horizontal bars, one panel per scenario, ns on a log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{library} ({family})" for library, family, _ in rows]
    ours_color, peer_color = "#d9480f", "#868e96"
    colors = [ours_color if lib == "rust-py-rate-limit" else peer_color for lib, _, _ in rows]
    figure, axes = plt.subplots(
        1, len(scenarios), figsize=(11, 0.38 * len(rows) + 1.6), sharey=True
    )
    for column, (axis, scenario) in enumerate(zip(axes, scenarios, strict=True)):
        times = [row[2][column] for row in rows]
        axis.barh(range(len(rows)), times, color=colors)
        axis.set_xscale("log")
        axis.set_title(f"{scenario}: ns per call (log scale, lower is better)", fontsize=10)
        for y, ns in enumerate(times):
            axis.text(ns * 1.08, y, f"{ns:,.0f}", va="center", fontsize=8)
        axis.set_xlim(10, max(times) * 4)
        axis.grid(axis="x", which="major", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), labels, fontsize=9)
    axes[0].invert_yaxis()  # the table's order, top down (the axes share it)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    main()
