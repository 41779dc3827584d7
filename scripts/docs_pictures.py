"""The pictures of the documentation's algorithms page (docs/concepts/algorithms.md).

Each of the five algorithms of the real ``RateLimiter`` meets the same requests from one client
on a ``ManualClock``, so the run is exact and the same every time:

- a steady stream of one request every 50 ms (twice the limit of 10 a second) from 0 to 2 s;
- nothing until 2.9 s, then a burst of 10 requests at 2.9 s and 10 more at 3.0 s, either side of
  a window boundary (the fixed window's "double burst");
- the steady stream again from 3.05 s to 4 s.

The clock moves in steps of 10 ms; after each step the limiter's state is read with ``peek()``,
which consumes nothing. ``simulate()`` returns what happened (each request's time and whether
it was admitted, the state over time, the window boundaries the limiter used); ``draw()`` turns
one run into a PNG, ``draw_comparison()`` all of them into one figure.

    python scripts/docs_pictures.py [--out docs/images/algorithms]

Needs the package installed and matplotlib (in the ``test`` extra). tests/test_docs_pictures.py
checks the runs against the algorithms' semantics and that the drawing writes the files.
"""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

from rust_py_rate_limit import ALGORITHMS, ManualClock, RateLimiter

#: The limit: 10 requests per 1-second window (the bucket algorithms: a burst of 10 by default).
LIMIT = 10
WINDOW_MS = 1000
#: The clock's step, and the time the run lasts.
STEP_MS = 10
END_MS = 4000
#: The steady stream: one request every 50 ms, twice the limit.
STEADY_EVERY_MS = 50
#: Where the steady stream runs: [start, end) in milliseconds.
STEADY_SPANS = ((0, 2001), (3050, END_MS))
#: The bursts: requests at one instant, either side of the boundary at 3 s.
BURSTS = {2900: 10, 3000: 10}

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DEFAULT_OUT = Path("docs/images/algorithms")
#: Okabe-Ito colours (told apart with any colour vision); shapes and line styles differ too.
ADMITTED, REFUSED, SENT, STATE, BOUNDARY = "#0072B2", "#D55E00", "#999999", "#009E73", "#E69F00"
DPI = 100


def arrivals() -> dict[int, int]:
    """How many requests arrive at each millisecond of the run (times without any left out)."""
    at: Counter[int] = Counter()
    for start, end in STEADY_SPANS:
        for ms in range(start, end, STEADY_EVERY_MS):
            at[ms] += 1
    for ms, count in BURSTS.items():
        at[ms] += count
    return dict(sorted(at.items()))


@dataclass(frozen=True)
class Request:
    """One request: when it arrived (seconds) and whether the limiter admitted it."""

    at: float
    admitted: bool


@dataclass(frozen=True)
class Sample:
    """The limiter's state at one step, after that step's requests."""

    at: float
    #: ``remaining()``: requests of cost 1 that would be admitted now.
    remaining: int
    #: For the bucket algorithms, the backlog in seconds: GCRA's theoretical arrival time minus
    #: now (the time until the bucket is full again), from the decisions' ``reset_after``;
    #: None for the window algorithms.
    backlog: float | None


@dataclass(frozen=True)
class Run:
    """What one algorithm did with the requests of ``arrivals()``."""

    algorithm: str
    limit: int
    window: float
    #: The bucket capacity (``RateLimiter.burst``); None for the window algorithms.
    burst: int | None
    requests: tuple[Request, ...]
    samples: tuple[Sample, ...]
    #: Where the limiter's windows started (seconds), as its decisions report them; empty for
    #: the bucket algorithms, which have no windows.
    window_starts: tuple[float, ...]

    @property
    def admitted(self) -> int:
        return sum(request.admitted for request in self.requests)

    @property
    def rate(self) -> float:
        """The long-run rate the limit stands for, requests per second."""
        return self.limit / self.window


def simulate(algorithm: str, *, burst: int | None = None) -> Run:
    """Runs ``arrivals()`` through a real ``RateLimiter`` of ``algorithm`` on a manual clock."""
    clock = ManualClock()
    window = WINDOW_MS / 1000
    limiter = RateLimiter(LIMIT, window, algorithm=algorithm, burst=burst, clock=clock)
    buckets = limiter.burst is not None
    pending = arrivals()
    requests: list[Request] = []
    samples: list[Sample] = []
    starts: set[int] = set()
    arrival = 0.0  # the bucket algorithms' theoretical arrival time (seconds)
    for ms in range(0, END_MS, STEP_MS):
        if ms:
            clock.advance(STEP_MS / 1000)
        now = ms / 1000
        for _ in range(pending.pop(ms, 0)):
            decision = limiter.decide("client")
            requests.append(Request(now, decision.allowed))
            if not decision.allowed:
                continue
            if buckets:
                # After an admission, reset_after is how far the arrival time now runs ahead.
                arrival = now + decision.reset_after
            else:
                # An admitted request's reset_after ends the window it counted in (fixed) or
                # the window after it, whose sliding span still weighs it (sliding).
                windows = 1 if algorithm == "fixed" else 2
                starts.add(round(ms + decision.reset_after * 1000) - windows * WINDOW_MS)
        backlog = max(0.0, arrival - now) if buckets else None
        samples.append(Sample(now, limiter.remaining("client"), backlog))
    if pending:
        raise AssertionError(f"arrivals past the end of the run: {pending}")
    if abs(clock.now() - (END_MS - STEP_MS) / 1000) > 1e-9:
        raise AssertionError(f"the clock drifted: {clock.now()}")
    return Run(
        algorithm,
        LIMIT,
        window,
        limiter.burst,
        tuple(requests),
        tuple(samples),
        tuple(ms / 1000 for ms in sorted(starts)),
    )


def simulate_all() -> list[Run]:
    return [simulate(algorithm) for algorithm in ALGORITHMS]


def _title(run: Run) -> str:
    if run.burst is None:
        return f"{run.algorithm}: limit={run.limit} per {run.window:g} s window"
    default = " (the default)" if run.burst == run.limit else ""
    return f"{run.algorithm}: limit={run.limit} per {run.window:g} s, burst={run.burst}{default}"


def _state(run: Run) -> tuple[list[float], float, str, str]:
    """The state panel: its series in the algorithm's own vocabulary, its ceiling, the
    ceiling's name and the panel's label."""
    if run.burst is None:
        return [float(s.remaining) for s in run.samples], run.limit, "limit", "remaining()"
    interval = run.window / run.limit
    backlog = [s.backlog or 0.0 for s in run.samples]
    if run.algorithm == "token_bucket":
        tokens = [run.burst - b / interval for b in backlog]
        return tokens, run.burst, "burst: full", "tokens in\nthe bucket"
    if run.algorithm == "leaky_bucket":
        level = [b / interval for b in backlog]
        return level, run.burst, "burst: overflows above", "water in\nthe bucket"
    return backlog, run.burst * interval, "burst x T: refused above", "TAT - now (s)"


def _steps(run: Run) -> tuple[list[float], list[int], list[int]]:
    """Times (with the run's end), requests sent so far and admitted so far, for ``step``."""
    times = [r.at for r in run.requests]
    sent = list(range(1, len(times) + 1))
    admitted = list(accumulate(int(r.admitted) for r in run.requests))
    return [*times, END_MS / 1000], [*sent, sent[-1]], [*admitted, admitted[-1]]


def _boundaries(axis: Axes, run: Run, label: str | None = None) -> None:
    for index, start in enumerate(run.window_starts):
        axis.axvline(start, color=BOUNDARY, lw=1.2, ls="-.", label=None if index else label)


def draw(run: Run, path: Path) -> None:
    """One algorithm's picture: requests admitted so far against the rate line, each request,
    and the algorithm's state over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    end = END_MS / 1000
    figure, (total, each, state) = plt.subplots(
        3, 1, figsize=(8, 6.2), sharex=True, gridspec_kw={"height_ratios": [3, 1.6, 1.5]}
    )
    times, sent, admitted = _steps(run)
    total.step(times, sent, where="post", color=SENT, lw=1.5, ls="--", label="sent")
    total.step(times, admitted, where="post", color=ADMITTED, lw=2.2, label="admitted")
    total.plot(
        [0, end], [0, run.rate * end], color="black", lw=1, ls=":",
        label=f"{run.rate:g} per s (limit / window)",
    )  # fmt: skip
    _boundaries(total, run, "a window starts")
    total.set_xlim(-0.05, end)
    total.set_ylim(0, sent[-1] + 2)
    total.set_ylabel("requests so far")
    total.set_title(f"{_title(run)}: {run.admitted} of {len(run.requests)} admitted", fontsize=11)
    total.legend(loc="upper left", fontsize=8, framealpha=0.9)

    # Each request as a mark, those of one instant stacked.
    height: Counter[float] = Counter()
    points: dict[bool, tuple[list[float], list[int]]] = {True: ([], []), False: ([], [])}
    for request in run.requests:
        height[request.at] += 1
        points[request.admitted][0].append(request.at)
        points[request.admitted][1].append(height[request.at])
    each.scatter(*points[True], marker="o", s=14, color=ADMITTED, label="admitted", zorder=3)
    each.scatter(*points[False], marker="x", s=16, color=REFUSED, label="refused", zorder=3)
    _boundaries(each, run)
    each.set_ylim(0, max(height.values()) + 1.5)
    each.set_ylabel("requests at\none instant", fontsize=9)
    each.legend(loc="upper left", fontsize=8, ncol=2, framealpha=0.9)

    values, ceiling, ceiling_name, label = _state(run)
    state.plot([s.at for s in run.samples], values, color=STATE, lw=1.6)
    state.axhline(ceiling, color="black", lw=0.8, ls=":")
    state.text(end - 0.03, ceiling, ceiling_name, fontsize=7, ha="right", va="bottom")
    _boundaries(state, run)
    state.set_ylim(0, ceiling * 1.15)
    state.set_ylabel(label, fontsize=9)
    state.set_xlabel("time (s)")
    for axis in (total, each, state):
        axis.grid(alpha=0.25)
    figure.tight_layout()
    _save(figure, path)


def _name(run: Run) -> str:
    return (
        run.algorithm if run.burst in (None, run.limit) else f"{run.algorithm}, burst={run.burst}"
    )


def draw_comparison(runs: Sequence[Run], path: Path) -> None:
    """The runs on one chart: requests admitted so far against the rate line. Runs that made
    the same decisions share a line (and a label naming them all)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple[Request, ...], list[Run]] = {}
    for run in runs:
        groups.setdefault(run.requests, []).append(run)
    # colour, line style and width: the lines differ by more than their colour
    styles = [(ADMITTED, "-", 2.4), (REFUSED, "--", 2.2), (STATE, "-", 1.6), ("#CC79A7", ":", 2.4)]
    if len(groups) > len(styles):
        raise ValueError(f"{len(groups)} different runs, styles for {len(styles)}")
    figure, axis = plt.subplots(figsize=(8, 4.6))
    first = runs[0]
    end = END_MS / 1000
    times, sent, _ = _steps(first)
    axis.step(times, sent, where="post", color=SENT, lw=1.2, label="sent")
    for group, (colour, style, width) in zip(groups.values(), styles, strict=False):
        _, _, admitted = _steps(group[0])
        label = ", ".join(_name(run) for run in group) + f": {admitted[-1]} admitted"
        axis.step(times, admitted, where="post", color=colour, lw=width, ls=style, label=label)
    axis.plot(
        [0, end], [0, first.rate * end], color="black", lw=1, ls=":",
        label=f"{first.rate:g} per s (limit / window)",
    )  # fmt: skip
    windowed = [run for run in runs if run.window_starts]
    for index, start in enumerate(sorted({t for run in windowed for t in run.window_starts})):
        names = ", ".join(run.algorithm for run in windowed)
        first_label = None if index else f"a window starts ({names})"
        axis.axvline(start, color=BOUNDARY, lw=1, ls="-.", alpha=0.8, label=first_label)
    axis.set_xlim(-0.05, end)
    axis.set_ylim(0, len(first.requests) + 2)
    axis.grid(alpha=0.25)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("requests so far")
    axis.set_title(
        f"The same {len(first.requests)} requests, limit={first.limit} per {first.window:g} s",
        fontsize=11,
    )
    axis.legend(loc="upper left", fontsize=8, framealpha=0.9)
    figure.tight_layout()
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" entry (matplotlib's version): the same run gives the same bytes.
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(figure)


def write_all(out: Path) -> list[Path]:
    """Every picture into ``out``: one per algorithm, then ``all.png``; returns the paths."""
    runs = simulate_all()
    paths = []
    for run in runs:
        paths.append(out / f"{run.algorithm}.png")
        draw(run, paths[-1])
    paths.append(out / "all.png")
    draw_comparison([*runs, simulate("gcra", burst=1)], paths[-1])
    return paths


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"directory (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
