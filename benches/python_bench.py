"""Nanoseconds per ``limiter.allow(key)`` from Python, next to floors measured in the same run.

For each algorithm and scenario (a hot key, 100,000 keys round-robin, the denied path) this
times the loop users write, ``for k in keys: limiter.allow(k)``, and two floors with exactly the
same shape: ``d.get(k)`` on a dict of the same keys, and ``limiter._noop(k)`` (an extension
method that takes one str and does nothing). Every loop is a function with locals that looks the
method up on each iteration, timed with ``time.perf_counter_ns``. The loops of one scenario run
interleaved, one after the other in each of several rounds: each ns figure is a loop's best
round, and each ratio is the median over rounds of the ratio within a round (on a machine whose
speed drifts, the best of two loops can come from different rounds). A second, smaller table
times the pre-bound form (``f = obj.method; for k in keys: f(k)``), which has less loop
overhead.

Run it from outside the checkout against an installed build (see benches/README.md)::

    python benches/python_bench.py [--quick] [--json] [--repeats N] [--iterations N]
    python benches/python_bench.py --storage 'shm://bench?capacity=200000'
    python benches/python_bench.py --storage 'shm://bench' --rate '10/second; 1000/hour'

With ``--storage URL`` it times, instead, ``allow()`` on ``memory://`` and on that storage side
by side, interleaved in the same rounds, with ``dict.get`` as the floor: the table gives each
store's ns, their ratio (target for ``shm://``: at most 1.5x ``memory://``) and each against
``dict.get``. A ``shm://`` table is made fresh for each algorithm (``NAME-ALGORITHM``, removed
first with ``RateLimiter.destroy_shared``) and sized for the 100,000 keys (``capacity=200000``
unless the URL says otherwise). Every algorithm gets the scenario's limits: 4e9 an hour on the
hot key and over 100k keys (never reached), 1 an hour on the denied path.

Sliding takes two paths on ``shm://``: narrow, every window counting at most 65,535 (its state
in one word a rate: for one rate the cell of the one-rate table ``NAME``), and wide, a window
counting more (two words a rate, table ``NAME+2words`` and up). So that both are measured in
every scenario, sliding has two rows on ``shm://``, ``sliding (narrow)`` then ``sliding
(wide)``: one with the scenario's limits, like every other algorithm (wide on the admitted
scenarios, narrow on the denied one), and one more on the other path, with limits that keep
the scenario's outcome: 65,535 a millisecond on the hot key (reached at 65 million calls a
second) and 65,535 an hour over 100k keys, always admitted; 65,536 an hour on the denied path,
each key spent by one priming call of cost 65,536. Both stores' limiters of a row are the
same; the report states each sliding row's limits. (Other stores have one sliding row.)

With ``--rate RATE`` as well (a rate string, e.g. ``"10/second; 1000/hour"``), both stores'
limiters are built with ``RateLimiter.from_rate``, with as many rates as RATE and on its
windows; the limits are the bench's, so that each scenario stays on its path: on the hot key and
over 100k keys every rate admits more than a run can call (4e9 a window, at most 1e9 a second);
on the denied path every rate admits 1, on windows stretched by one factor so that the longest
lasts at least an hour. Sliding's second row on ``shm://`` is then 65,535 a window over 100k
keys (on the hot key a narrow window would run out within the first second, a rate string's
shortest window: that row is left out, with a note) and 65,536 a window, spent, on the denied
path. The report prints each scenario's rate strings.

The default run also times ``process()`` of the unkeyed limiters (``TokenBucket``, ``Gcra``,
``FixedWindow``, ``SlidingWindow``) in the loop ``for _ in keys: p.process()``, admitted and
denied, against the ``dict.get`` loop of the hot key in the same rounds (target: at most 1.2x),
with ``RateLimiter.allow(k)`` (gcra) beside them; ``--primitives`` runs only that table.

Numbers are noisy on a shared machine; the ratios, measured in the same run, are what to read.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rust_py_rate_limit import RateLimiter

CHECKOUT = Path(__file__).resolve().parent.parent
ITERATIONS = 1_000_000
QUICK_ITERATIONS = 200_000
REPEATS = 9
QUICK_REPEATS = 3
ROUND_ROBIN_KEYS = 100_000
HOT_KEY = "user:0000001"
ALWAYS_ADMITTED = 4_000_000_000  # per hour: never reached in a run
HOUR = 3600
# Targets: allow() within this multiple of the dict.get loop (user-shaped loop).
TARGETS = {"hot key": 1.6, "100k keys": 2.0, "denied": 1.6}
# Target: an unkeyed limiter's process() within this multiple of the dict.get loop.
PROCESS_TARGET = 1.2

# --- the timed loops: one shape, the one users write --------------------------------------


def loop_allow(limiter: RateLimiter, keys: list[str]) -> int:
    start = time.perf_counter_ns()
    for k in keys:
        limiter.allow(k)
    return time.perf_counter_ns() - start


def loop_noop(limiter: RateLimiter, keys: list[str]) -> int:
    start = time.perf_counter_ns()
    for k in keys:
        limiter._noop(k)
    return time.perf_counter_ns() - start


def loop_dict_get(d: dict[str, bool], keys: list[str]) -> int:
    start = time.perf_counter_ns()
    for k in keys:
        d.get(k)
    return time.perf_counter_ns() - start


def loop_process(limiter: Any, keys: list[str]) -> int:
    """An unkeyed limiter's ``process()``: no key, the same loop over the same list."""
    start = time.perf_counter_ns()
    for _ in keys:
        limiter.process()
    return time.perf_counter_ns() - start


def loop_reset(limiter: Any, keys: list[str]) -> int:
    """A floor for ``process()``: a no-argument method of the same kind of extension object
    that does next to nothing (``TokenBucket.reset()``: one 8-byte store)."""
    start = time.perf_counter_ns()
    for _ in keys:
        limiter.reset()
    return time.perf_counter_ns() - start


def loop_bound(f: Callable[[str], object], keys: list[str]) -> int:
    """The pre-bound form, for any of the three callables."""
    start = time.perf_counter_ns()
    for k in keys:
        f(k)
    return time.perf_counter_ns() - start


# --- setup ----------------------------------------------------------------------------------


def import_library() -> ModuleType:
    """Imports the installed package, never the checkout's (which has no compiled ``_core``)."""
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != CHECKOUT]
    return importlib.import_module("rust_py_rate_limit")


@dataclass
class Scenario:
    name: str
    keys: list[str]  # the timed sequence, ITERATIONS long
    distinct: list[str]  # the keys it cycles through
    limit: int


def build_scenarios(iterations: int) -> list[Scenario]:
    many = [f"user:{i:07d}" for i in range(ROUND_ROBIN_KEYS)]
    cycled = [many[i % ROUND_ROBIN_KEYS] for i in range(iterations)]
    hot = [HOT_KEY] * iterations
    return [
        Scenario("hot key", hot, [HOT_KEY], ALWAYS_ADMITTED),
        Scenario("100k keys", cycled, many, ALWAYS_ADMITTED),
        Scenario("denied", hot, [HOT_KEY], 1),
    ]


def make_limiters(lib: ModuleType, scenario: Scenario) -> dict[str, RateLimiter]:
    """One limiter per algorithm, every key already seen (and spent, for the denied path)."""
    limiters: dict[str, RateLimiter] = {}
    for algorithm in lib.ALGORITHMS:
        limiter = lib.RateLimiter(limit=scenario.limit, window_seconds=HOUR, algorithm=algorithm)
        for key in scenario.distinct:
            limiter.allow(key)
        limiters[algorithm] = limiter
    return limiters


# --- measuring ------------------------------------------------------------------------------


Loop = Callable[[list[str]], int]


@dataclass
class Timings:
    """Every loop's ns per call in each round, the loops of a round run back to back."""

    rounds: list[dict[str, float]]

    def best(self, name: str) -> float:
        return min(r[name] for r in self.rounds)

    def ratio(self, name: str, floor: str) -> float:
        """The median over rounds of ``name / floor`` within a round.

        On a shared machine whose speed drifts over seconds, the best of each loop can come
        from different rounds; a ratio taken within a round compares like with like.
        """
        return statistics.median(r[name] / r[floor] for r in self.rounds)


def time_rounds(loops: dict[str, Loop], scenario: Scenario, repeats: int) -> Timings:
    """Runs every loop once per round, interleaved, for `repeats` rounds.

    Before each timed run, an untimed pass over the scenario's distinct keys brings that
    loop's data back into cache (the other loops' runs evicted it), so a run's first pass over
    100k keys is not a cold one.
    """
    rounds: list[dict[str, float]] = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            times: dict[str, float] = {}
            for name, loop in loops.items():
                loop(scenario.distinct)
                times[name] = loop(scenario.keys) / len(scenario.keys)
            rounds.append(times)
    finally:
        if gc_was_enabled:
            gc.enable()
    return Timings(rounds)


@dataclass
class Row:
    scenario: str
    algorithm: str
    allow_ns: float  # best round
    dict_get_ns: float  # best round
    noop_ns: float  # best round
    vs_dict_get: float  # median of the rounds' ratios
    vs_noop: float  # median of the rounds' ratios
    target: float | None = None


def make_row(scenario: str, algorithm: str, timings: Timings, target: float | None = None) -> Row:
    return Row(
        scenario,
        algorithm,
        timings.best(algorithm),
        timings.best("dict.get"),
        timings.best("_noop"),
        timings.ratio(algorithm, "dict.get"),
        timings.ratio(algorithm, "_noop"),
        target,
    )


def measure_loops(lib: ModuleType, scenario: Scenario, repeats: int) -> list[Row]:
    """The user-shaped loops: ``obj.method(k)`` looked up on every iteration."""
    limiters = make_limiters(lib, scenario)
    d = dict.fromkeys(scenario.distinct, True)
    any_limiter = next(iter(limiters.values()))
    loops: dict[str, Loop] = {
        "dict.get": partial(loop_dict_get, d),
        "_noop": partial(loop_noop, any_limiter),
    }
    for algorithm, limiter in limiters.items():
        loops[algorithm] = partial(loop_allow, limiter)
    timings = time_rounds(loops, scenario, repeats)
    target = TARGETS[scenario.name]
    return [make_row(scenario.name, a, timings, target) for a in limiters]


def measure_bound(lib: ModuleType, scenario: Scenario, repeats: int) -> list[Row]:
    """The pre-bound form: ``f = obj.method`` once, then ``f(k)`` in the loop."""
    limiters = make_limiters(lib, scenario)
    d = dict.fromkeys(scenario.distinct, True)
    any_limiter = next(iter(limiters.values()))
    loops: dict[str, Loop] = {
        "dict.get": partial(loop_bound, d.get),
        "_noop": partial(loop_bound, any_limiter._noop),
    }
    for algorithm, limiter in limiters.items():
        loops[algorithm] = partial(loop_bound, limiter.allow)
    timings = time_rounds(loops, scenario, repeats)
    return [make_row(scenario.name, a, timings) for a in limiters]


# --- the unkeyed limiters' process() ---------------------------------------------------------

UNKEYED = ["TokenBucket", "Gcra", "FixedWindow", "SlidingWindow"]
PER_NS = 1_000_000_000  # a bucket refilled with a token a nanosecond never runs dry in a loop


def make_unkeyed(lib: ModuleType, admitted: bool) -> dict[str, Any]:
    """The four limiters: admitting every call of a run, or holding 1 an hour, spent."""
    if admitted:
        made = {
            "TokenBucket": lib.TokenBucket(capacity=PER_NS, increment=PER_NS, period_secs=1),
            "Gcra": lib.Gcra(limit=PER_NS, period_secs=1),
            "FixedWindow": lib.FixedWindow(capacity=ALWAYS_ADMITTED, interval_secs=HOUR),
            "SlidingWindow": lib.SlidingWindow(capacity=ALWAYS_ADMITTED, interval_secs=HOUR),
        }
    else:
        made = {
            "TokenBucket": lib.TokenBucket(capacity=1, increment=1, period_secs=HOUR),
            "Gcra": lib.Gcra(limit=1, period_secs=HOUR),
            "FixedWindow": lib.FixedWindow(capacity=1, interval_secs=HOUR),
            "SlidingWindow": lib.SlidingWindow(capacity=1, interval_secs=HOUR),
        }
        for limiter in made.values():
            limiter.process()
    return made


UNKEYED_ALLOW = "RateLimiter.allow(k), gcra"
UNKEYED_FLOOR = "TokenBucket.reset() (floor)"


def measure_unkeyed(lib: ModuleType, scenario: Scenario, repeats: int) -> list[Row]:
    """``p.process()`` of each unkeyed limiter, ``limiter.allow(k)`` (gcra, one key) and the
    ``reset()`` floor in the loop over the hot key's list, beside the ``dict.get`` loop,
    interleaved in each round. A row's ``algorithm`` is the call, ``allow_ns`` its ns
    (``noop_ns`` and ``vs_noop`` are not measured: 0)."""
    admitted = scenario.limit != 1
    limiters = make_unkeyed(lib, admitted)
    keyed = lib.RateLimiter(limit=scenario.limit, window_seconds=HOUR, algorithm="gcra")
    keyed.allow(HOT_KEY)
    d = dict.fromkeys(scenario.distinct, True)
    loops: dict[str, Loop] = {"dict.get": partial(loop_dict_get, d)}
    for name, limiter in limiters.items():
        loops[f"{name}.process()"] = partial(loop_process, limiter)
    loops[UNKEYED_ALLOW] = partial(loop_allow, keyed)
    floor = lib.TokenBucket(capacity=1, increment=1, period_secs=HOUR)
    loops[UNKEYED_FLOOR] = partial(loop_reset, floor)
    timings = time_rounds(loops, scenario, repeats)
    for name, limiter in limiters.items():
        if limiter.process() is not admitted:
            sys.exit(f"{name}: {scenario.name}: process() did not take the path measured")
    rows = []
    for name in list(loops)[1:]:
        target = PROCESS_TARGET if name.endswith(".process()") else None
        ns = timings.best(name)
        vs = timings.ratio(name, "dict.get")
        rows.append(Row(scenario.name, name, ns, timings.best("dict.get"), 0.0, vs, 0.0, target))
    return rows


def unkeyed_table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| path | call | ns | dict.get ns | x dict.get | target (x dict.get) | within target |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        target = "" if r.target is None else f"<= {r.target}"
        lines.append(
            f"| {r.scenario} | {r.algorithm} | {r.allow_ns:.1f} | {r.dict_get_ns:.1f} "
            f"| {r.vs_dict_get:.2f} | {target} | {verdict(r)} |"
        )
    return lines


def unkeyed_section(rows: Sequence[Row]) -> list[str]:
    return [
        "## Unkeyed limiters: `for _ in keys: p.process()`",
        "",
        "Over the hot key's list, interleaved in each round with the dict.get loop, "
        "`RateLimiter.allow(k)` (gcra, one key) and a floor, `TokenBucket.reset()` (a "
        "no-argument method of the same kind that does one 8-byte store); admitted: a token a "
        f"nanosecond (buckets), {ALWAYS_ADMITTED:,} an hour (windows); denied: 1 an hour, "
        f"spent. Target: process() <= {PROCESS_TARGET}x the dict.get loop.",
        "",
        *unkeyed_table(rows),
    ]


def unkeyed_rows(lib: ModuleType, scenarios: list[Scenario], repeats: int) -> list[Row]:
    """The hot-key scenarios: admitted ("hot key") and "denied"."""
    paths = {"hot key": "admitted", "denied": "denied"}
    rows = []
    for scenario in scenarios:
        if scenario.name in paths:
            for row in measure_unkeyed(lib, scenario, repeats):
                row.scenario = paths[scenario.name]
                rows.append(row)
    return rows


# --- memory:// against another storage (--storage URL) ---------------------------------------

SHM_CAPACITY = 200_000  # keys: the 100,000 of the round-robin scenario at half the capacity
# A sliding window on shm:// counting at most this many a window keeps its state narrow (one
# word a rate: for one rate the one-rate cell, table NAME); counting more, wide (two words a
# rate, table NAME+2words to +8words).
NARROW_SLIDING_MAX = 65_535
# Target: allow() on shm:// within this multiple of allow() on memory://, in the same run.
SHM_TARGET = 1.5


def is_shm(url: str) -> bool:
    return url[:6].lower() == "shm://"


def storage_url(url: str, algorithm: str) -> str:
    """The URL one algorithm's limiters use: for shm://, a table of its own (the five
    algorithms' 100,000 keys would not fit in one table sized for 100,000), with a capacity."""
    if not is_shm(url):
        return url
    name, _, query = url[6:].partition("?")
    options = [o for o in query.split("&") if o]
    if not any(o.startswith("capacity=") for o in options):
        options.append(f"capacity={SHM_CAPACITY}")
    return f"shm://{name}-{algorithm}?" + "&".join(options)


# --rate RATE: the windows of a rate string, the limits of each scenario's choosing.
UNITS = [("year", 360 * 86_400), ("month", 30 * 86_400), ("day", 86_400), ("hour", HOUR)]
UNITS += [("minute", 60), ("second", 1)]
ADMITTED_PER_SECOND = 1_000_000_000  # a bucket admits at most one a nanosecond


def rate_windows(lib: ModuleType, rate: str) -> list[int]:
    """The windows, in seconds, of the rate string `rate` (as the library reads it)."""
    try:
        rates = lib.RateLimiter.from_rate(rate).rates
    except ValueError as e:
        sys.exit(f"--rate: {e}")
    return [int(window) for _, window in rates]  # a rate string's unit is at least a second


def per(seconds: int) -> str:
    """A window as a rate string writes it: "second", "2 hours"."""
    unit, size = next((u, n) for u, n in UNITS if seconds % n == 0)
    count = seconds // size
    return unit if count == 1 else f"{count} {unit}s"


def denied_windows(windows: list[int]) -> list[int]:
    """`windows` stretched by one factor so that the longest is at least an hour (else a spent
    key would be admitted again during the run)."""
    factor = -(-HOUR // max(windows))  # 1 when the longest window is an hour or more
    return [w * factor for w in windows]


def scenario_rate(scenario: Scenario, windows: list[int]) -> str:
    """The rate string of a scenario's limiters under ``--rate``, the same on both stores and
    for every algorithm: `windows`, with limits that keep the scenario on its path.

    Admitted: 4e9 a window (at most 1e9 a second, a bucket's fastest), never reached in a run.
    Denied: 1 a window, on `denied_windows`.
    """
    if scenario.limit == 1:
        return "; ".join(f"1/{per(w)}" for w in denied_windows(windows))
    limits = [min(ALWAYS_ADMITTED, ADMITTED_PER_SECOND * w) for w in windows]
    return "; ".join(f"{n}/{per(w)}" for n, w in zip(limits, windows, strict=True))


@dataclass
class Entry:
    """One algorithm's pair of limiters in a scenario (memory:// and the storage), built alike:
    from (limit, window) with one rate, from a rate string under ``--rate``."""

    algorithm: str
    limit: int | None = None
    window_seconds: float | None = None
    rate: str | None = None
    cost: int = 1  # of each key's priming call
    path: str | None = None  # sliding on shm://: "narrow" or "wide"

    @property
    def name(self) -> str:
        return self.algorithm if self.path is None else f"{self.algorithm} ({self.path})"

    def limits(self) -> list[int]:
        if self.rate is None:
            assert self.limit is not None
            return [self.limit]
        return [int(part.split("/")[0]) for part in self.rate.split(";")]


def sliding_path(entry: Entry) -> str:
    wide = any(n > NARROW_SLIDING_MAX for n in entry.limits())
    return "wide" if wide else "narrow"


def other_sliding(scenario: Scenario, windows: list[int] | None) -> Entry | None:
    """On shm://, the sliding entry on the path the scenario's limits do not take (None: that
    path cannot keep this scenario's outcome).

    Admitted scenarios (4e9 a window: wide) get a narrow one, 65,535 a window: a millisecond on
    the hot key (reached at 65 million calls a second), an hour over 100k keys (each key is
    called some tens of times a run). Under ``--rate`` a window is at least a second, which the
    hot key would fill within the first: None. The denied scenario (1 a window: narrow) gets a
    wide one, 65,536 a window, each key spent by one priming call of cost 65,536.
    """
    top = NARROW_SLIDING_MAX
    if scenario.limit == 1:
        if windows is None:
            return Entry("sliding", top + 1, HOUR, cost=top + 1)
        rate = "; ".join(f"{top + 1}/{per(w)}" for w in denied_windows(windows))
        return Entry("sliding", rate=rate, cost=top + 1)
    if windows is None:
        return Entry("sliding", top, 0.001 if len(scenario.distinct) == 1 else HOUR)
    if len(scenario.distinct) == 1:
        return None
    return Entry("sliding", rate="; ".join(f"{top}/{per(w)}" for w in windows))


def scenario_entries(
    lib: ModuleType, scenario: Scenario, url: str, windows: list[int] | None, notes: list[str]
) -> list[Entry]:
    """Every algorithm with the scenario's limits; on shm://, sliding twice, narrow then wide:
    with those limits and on the other path (`other_sliding`)."""
    entries = []
    for algorithm in lib.ALGORITHMS:
        if windows is None:
            entry = Entry(algorithm, scenario.limit, HOUR)
        else:
            entry = Entry(algorithm, rate=scenario_rate(scenario, windows))
        if algorithm != "sliding" or not is_shm(url):
            entries.append(entry)
            continue
        pair = [entry]
        other = other_sliding(scenario, windows)
        if other is None:
            notes.append(
                f"sliding (narrow), {scenario.name}: not measured (a narrow sliding window "
                f"counts at most {NARROW_SLIDING_MAX:,} a window, and a rate string's shortest "
                "window is a second: the hot key would be refused within it)"
            )
        else:
            pair.append(other)
        for e in pair:
            e.path = sliding_path(e)
        entries += sorted(pair, key=lambda e: e.path != "narrow")
    return entries


@dataclass
class StoreRow:
    scenario: str
    algorithm: str
    limit: int | None  # None under --rate: see `rate`
    window_seconds: float | None
    memory_ns: float  # best round
    storage_ns: float  # best round
    dict_get_ns: float  # best round
    storage_vs_memory: float  # median of the rounds' ratios
    memory_vs_dict_get: float
    storage_vs_dict_get: float
    target: float | None
    rate: str | None = None  # the rate string, under --rate
    path: str | None = None  # sliding on shm://: "narrow" or "wide" (see NARROW_SLIDING_MAX)
    cost: int = 1  # of each key's priming call

    @property
    def name(self) -> str:
        return self.algorithm if self.path is None else f"{self.algorithm} ({self.path})"


def store_row_dict(row: StoreRow) -> dict[str, Any]:
    doc = asdict(row)
    for field in ("rate", "path"):
        if doc[field] is None:
            del doc[field]
    if row.cost == 1:
        del doc["cost"]
    return doc


def check_stats(limiter: RateLimiter, label: str, scenario: Scenario) -> str | None:
    """Refuses a run that did not take the path its scenario names; returns a note on the keys
    refused for want of room (``rejected_full``), which a table can do before it is full."""
    stats = limiter.stats()
    refused_full = stats["rejected_full"]
    if stats["storage_errors"]:
        sys.exit(f"{label}: {scenario.name}: storage errors: {stats}")
    if scenario.limit == 1 and stats["allowed"] != len(scenario.distinct):
        sys.exit(f"{label}: {scenario.name}: admitted more than the priming calls: {stats}")
    if scenario.limit != 1 and stats["blocked"] != refused_full:
        sys.exit(f"{label}: {scenario.name}: some calls were refused: {stats}")
    if not refused_full:
        return None
    return (
        f"{label}, {scenario.name}: {refused_full:,} of {stats['total_checks']:,} calls "
        f"refused for want of room (rejected_full), {stats['active_keys']:,} keys held"
    )


def measure_stores(
    lib: ModuleType,
    scenario: Scenario,
    url: str,
    repeats: int,
    notes: list[str],
    windows: list[int] | None = None,
) -> list[StoreRow]:
    """``allow()`` on memory:// and on `url`, every algorithm, interleaved in each round; with
    `windows` (``--rate``), limiters of several rates on them (see `scenario_rate`)."""
    try:
        return time_stores(lib, scenario, url, repeats, notes, windows)
    finally:
        if is_shm(url):
            for algorithm in lib.ALGORITHMS:
                lib.RateLimiter.destroy_shared(storage_url(url, algorithm))


def time_stores(
    lib: ModuleType,
    scenario: Scenario,
    url: str,
    repeats: int,
    notes: list[str],
    windows: list[int] | None,
) -> list[StoreRow]:
    entries = scenario_entries(lib, scenario, url, windows, notes)
    if is_shm(url):
        for algorithm in lib.ALGORITHMS:
            lib.RateLimiter.destroy_shared(storage_url(url, algorithm))
    limiters: dict[str, RateLimiter] = {}
    for entry in entries:
        own_url = storage_url(url, entry.algorithm)
        if entry.rate is None:
            memory = lib.RateLimiter(entry.limit, entry.window_seconds, entry.algorithm)
            storage = lib.RateLimiter(
                entry.limit, entry.window_seconds, entry.algorithm, storage=own_url
            )
        else:
            try:
                memory = lib.RateLimiter.from_rate(entry.rate, entry.algorithm)
                storage = lib.RateLimiter.from_rate(entry.rate, entry.algorithm, storage=own_url)
            except ValueError as e:  # e.g. more rates than the storage takes
                sys.exit(f"--rate: {entry.name}, {scenario.name}, {entry.rate!r}: {e}")
        limiters[f"{entry.name} memory"] = memory
        limiters[f"{entry.name} storage"] = storage
        for limiter in (memory, storage):
            for key in scenario.distinct:
                limiter.allow(key, entry.cost)
    d = dict.fromkeys(scenario.distinct, True)
    loops: dict[str, Loop] = {"dict.get": partial(loop_dict_get, d)}
    for name, limiter in limiters.items():
        loops[name] = partial(loop_allow, limiter)
    timings = time_rounds(loops, scenario, repeats)
    for name, limiter in limiters.items():
        note = check_stats(limiter, name.replace(" storage", f" {url.split(':', 1)[0]}"), scenario)
        if note:
            notes.append(note)
    rows = []
    for entry in entries:
        memory, storage = f"{entry.name} memory", f"{entry.name} storage"
        rows.append(
            StoreRow(
                scenario.name,
                entry.algorithm,
                entry.limit,
                entry.window_seconds,
                timings.best(memory),
                timings.best(storage),
                timings.best("dict.get"),
                timings.ratio(storage, memory),
                timings.ratio(memory, "dict.get"),
                timings.ratio(storage, "dict.get"),
                SHM_TARGET if is_shm(url) else None,
                entry.rate,
                entry.path,
                entry.cost,
            )
        )
    return rows


def stores_table(rows: Sequence[StoreRow], url: str) -> list[str]:
    label = url.split("://", 1)[0] + "://"
    lines = [
        f"| scenario | algorithm | memory:// ns | {label} ns | {label} / memory:// "
        f"| dict.get ns | memory:// x dict.get | {label} x dict.get | within target |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        within = ""
        if r.target is not None:
            within = "yes" if r.storage_vs_memory <= r.target else "**no**"
        lines.append(
            f"| {r.scenario} | {r.name} | {r.memory_ns:.1f} | {r.storage_ns:.1f} "
            f"| {r.storage_vs_memory:.2f} | {r.dict_get_ns:.1f} | {r.memory_vs_dict_get:.2f} "
            f"| {r.storage_vs_dict_get:.2f} | {within} |"
        )
    return lines


def stores_report(
    lib: ModuleType,
    iterations: int,
    repeats: int,
    url: str,
    rows: list[StoreRow],
    notes: list[str],
    rate: str | None = None,
) -> str:
    lines = header(lib, iterations, repeats, several_rates=rate is not None)
    lines += [
        f"## `allow()` on memory:// and on `{url}`, side by side",
        "",
        "Both stores' loops of a scenario run interleaved in the same rounds, with the "
        "dict.get loop; ratios are medians of the ratios within a round.",
    ]
    if is_shm(url):
        lines += [
            f"Each algorithm has a fresh table of its own, `{storage_url(url, 'ALGORITHM')}`; "
            f"target: shm:// at most {SHM_TARGET}x memory://.",
        ]
    if any(r.path for r in rows):
        lines += sliding_lines(rows, one_rate=rate is None)
    if rate is not None:
        lines += [f"Limiters of several rates (`--rate '{rate}'`), the same on both stores:", ""]
        lines += rate_lines(rows)
        lines += [""]
    lines += [
        "Checked after the run: no call of the admitted scenarios refused but for want of "
        "room (below), none of the denied one admitted.",
        "",
        *stores_table(rows, url),
        "",
        *(notes or ["No key was refused for want of room."]),
    ]
    return "\n".join(lines)


def sliding_lines(rows: Sequence[StoreRow], one_rate: bool) -> list[str]:
    """What the two sliding rows of a scenario on shm:// are."""
    words = "one word (the one-rate cell, table `NAME`)" if one_rate else "a word a rate"
    lines = [
        f"sliding takes two paths on shm://: narrow, every window counting at most "
        f"{NARROW_SLIDING_MAX:,}, its state in {words}, and wide, a window counting more, two "
        "words a rate (table `NAME+2words` and up). Each scenario has a sliding row with the "
        "limits of the other algorithms and one on the other path, on both stores alike"
    ]
    if one_rate:
        limits = [
            f"{r.scenario}, {r.path} {r.limit:,} per {r.window_seconds:g} s"
            + (f" (each key spent by one call of cost {r.cost:,})" if r.cost != 1 else "")
            for r in rows
            if r.path
        ]
        lines[0] += ": " + "; ".join(limits)
    else:
        lines[0] += " (their rate strings below)"
    lines[0] += "."
    return lines


def rate_lines(rows: Sequence[StoreRow]) -> list[str]:
    """One line per scenario: its rate string, and the algorithms with another."""
    lines = []
    for scenario in dict.fromkeys(r.scenario for r in rows):
        mine = [r for r in rows if r.scenario == scenario]
        usual = max(
            dict.fromkeys(r.rate for r in mine), key=lambda t: sum(r.rate == t for r in mine)
        )
        others = [f"{r.name} `{r.rate}`" for r in mine if r.rate != usual]
        lines.append(f"- {scenario}: `{usual}`" + (f" ({', '.join(others)})" if others else ""))
    return lines


# --- reporting ------------------------------------------------------------------------------


def verdict(row: Row) -> str:
    if row.target is None:
        return ""
    return "yes" if row.vs_dict_get <= row.target else "**no**"


def loops_table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| scenario | algorithm | allow ns | dict.get ns | _noop ns "
        "| x dict.get | x _noop | target (x dict.get) | within target |",
        "|---|---|--:|--:|--:|--:|--:|--:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.scenario} | {r.algorithm} | {r.allow_ns:.1f} | {r.dict_get_ns:.1f} "
            f"| {r.noop_ns:.1f} | {r.vs_dict_get:.2f} | {r.vs_noop:.2f} "
            f"| <= {r.target} | {verdict(r)} |"
        )
    return lines


def bound_table(rows: Sequence[Row]) -> list[str]:
    """One line per scenario: the floors, then each algorithm as ns (x f=d.get)."""
    algorithms = list(dict.fromkeys(r.algorithm for r in rows))
    lines = [
        "| scenario | f=d.get ns | f=_noop ns | " + " | ".join(algorithms) + " |",
        "|---|--:|--:|" + "--:|" * len(algorithms),
    ]
    for scenario in dict.fromkeys(r.scenario for r in rows):
        mine = {r.algorithm: r for r in rows if r.scenario == scenario}
        first = next(iter(mine.values()))
        cells = [f"{mine[a].allow_ns:.1f} ({mine[a].vs_dict_get:.2f}x)" for a in algorithms]
        lines.append(
            f"| {scenario} | {first.dict_get_ns:.1f} | {first.noop_ns:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def header(
    lib: ModuleType, iterations: int, repeats: int, several_rates: bool = False
) -> list[str]:
    core = importlib.import_module("rust_py_rate_limit._core")
    paths = (
        "- hot key: one key, always admitted; 100k keys: 100,000 keys round-robin, each "
        "already seen, always admitted; denied: "
        + ("every rate spent (below)" if several_rates else "limit 1 per hour, key already spent")
    )
    return [
        "# rust_py_rate_limit: allow() from Python",
        "",
        f"- imported: {lib.__file__} (core: {core.__file__})",
        f"- version {lib.__version__}; Python {platform.python_version()} "
        f"({platform.python_implementation()}) on {platform.machine()}",
        f"- {iterations:,} calls per loop, {repeats} rounds of interleaved loops, gc disabled, "
        "each run preceded by an untimed pass over the scenario's distinct keys",
        "- ns: each loop's best round; ratios (x): the median over rounds of the ratio within "
        "a round",
        paths,
        "",
    ]


def report(
    lib: ModuleType,
    iterations: int,
    repeats: int,
    loops: list[Row],
    bound: list[Row],
    unkeyed: list[Row],
) -> str:
    lines = header(lib, iterations, repeats)
    if not loops:  # --primitives
        return "\n".join(lines + unkeyed_section(unkeyed))
    lines += [
        "## The loop users write: `for k in keys: obj.method(k)`",
        "",
        "Targets: hot key and denied <= 1.6x the dict.get loop; 100k keys <= 2x.",
        "",
        *loops_table(loops),
        "",
        "## Pre-bound: `f = obj.method; for k in keys: f(k)`",
        "",
        "Less loop overhead around each call, so the fixed cost of the call weighs more and the",
        "ratios are higher; the targets above are for the user-shaped loop. Cells are",
        "`ns (x f=d.get)`.",
        "",
        *bound_table(bound),
        "",
        *unkeyed_section(unkeyed),
    ]
    return "\n".join(lines)


def as_json(
    lib: ModuleType,
    iterations: int,
    repeats: int,
    loops: list[Row],
    bound: list[Row],
    unkeyed: list[Row],
) -> str:
    doc: dict[str, Any] = {
        "module": lib.__file__,
        "version": lib.__version__,
        "python": platform.python_version(),
        "iterations": iterations,
        "repeats": repeats,
        "targets_vs_dict_get": TARGETS,
        "method_in_loop": [asdict(r) for r in loops],
        "pre_bound": [asdict(r) for r in bound],
        "target_process_vs_dict_get": PROCESS_TARGET,
        "unkeyed_process": [asdict(r) for r in unkeyed],
    }
    return json.dumps(doc, indent=2)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--iterations", type=int, help=f"calls per loop (default {ITERATIONS:,})")
    parser.add_argument("--repeats", type=int, help=f"repeats per loop (default {REPEATS})")
    parser.add_argument(
        "--storage",
        metavar="URL",
        help="time allow() on memory:// and on this storage side by side, e.g. "
        "'shm://bench' (a fresh table per algorithm, capacity=200000 unless given)",
    )
    parser.add_argument(
        "--rate",
        metavar="RATE",
        help="with --storage: limiters of several rates, on the windows of this rate string, "
        "e.g. '10/second; 1000/hour' (the limits are the bench's, to keep each scenario on "
        "its path; default: one rate)",
    )
    parser.add_argument(
        "--primitives",
        action="store_true",
        help="only the unkeyed limiters' process() against the dict.get loop",
    )
    args = parser.parse_args(argv)
    if args.primitives and args.storage:
        parser.error("--primitives and --storage are separate runs: give one")
    if args.rate is not None and not args.storage:
        parser.error("--rate is for the --storage comparison: give --storage URL too")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    iterations = args.iterations or (QUICK_ITERATIONS if args.quick else ITERATIONS)
    repeats = args.repeats or (QUICK_REPEATS if args.quick else REPEATS)
    lib = import_library()
    scenarios = build_scenarios(iterations)
    if args.storage:
        notes: list[str] = []
        windows = None if args.rate is None else rate_windows(lib, args.rate)
        rows = [
            row
            for s in scenarios
            for row in measure_stores(lib, s, args.storage, repeats, notes, windows)
        ]
        if args.json:
            doc = {
                "module": lib.__file__,
                "version": lib.__version__,
                "python": platform.python_version(),
                "iterations": iterations,
                "repeats": repeats,
                "storage": args.storage,
                **({} if args.rate is None else {"rate": args.rate}),
                "stores": [store_row_dict(r) for r in rows],
                "notes": notes,
            }
            print(json.dumps(doc, indent=2))
        else:
            print(stores_report(lib, iterations, repeats, args.storage, rows, notes, args.rate))
        return
    loops: list[Row] = []
    bound: list[Row] = []
    if not args.primitives:
        loops = [row for s in scenarios for row in measure_loops(lib, s, repeats)]
        bound = [row for s in scenarios for row in measure_bound(lib, s, repeats)]
    unkeyed = unkeyed_rows(lib, scenarios, repeats)
    if args.json:
        print(as_json(lib, iterations, repeats, loops, bound, unkeyed))
    else:
        print(report(lib, iterations, repeats, loops, bound, unkeyed))


if __name__ == "__main__":
    main()
