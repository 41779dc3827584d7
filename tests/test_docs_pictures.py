"""scripts/docs_pictures.py, which draws the pictures of docs/concepts/algorithms.md: its runs
show what the real limiter does (checked against the reference models and against each
algorithm's promise on this pattern of requests), and its drawing writes the PNGs."""

from __future__ import annotations

import importlib.util
import math
import sys
from itertools import pairwise
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import CHECKOUT
from reference_models import reference_model

from rust_py_rate_limit import ALGORITHMS

SCRIPT = CHECKOUT / "scripts" / "docs_pictures.py"
PAGE = CHECKOUT / "docs" / "concepts" / "algorithms.md"
IMAGES = CHECKOUT / "docs" / "images" / "algorithms"


def load_script() -> ModuleType:
    """The script as a module (it is no package's: scripts/ is not on the path)."""
    spec = importlib.util.spec_from_file_location("docs_pictures", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


pictures = load_script()
RUNS = {run.algorithm: run for run in pictures.simulate_all()}
LIMIT, WINDOW = pictures.LIMIT, pictures.WINDOW_MS / 1000
INTERVAL = WINDOW / LIMIT  # the bucket algorithms' emission interval T
EPS = 1e-9


def admitted_times(run: Any) -> list[float]:
    return [request.at for request in run.requests if request.admitted]


def admitted_between(run: Any, start: float, end: float) -> int:
    """Requests admitted at `start <= t < end`."""
    return sum(start - EPS <= t < end - EPS for t in admitted_times(run))


def most_in_one_window(run: Any) -> int:
    """The most requests admitted in any span of one window's length, `[t, t + W)`."""
    return max(admitted_between(run, t, t + WINDOW) for t in admitted_times(run))


def most_within(run: Any, span: float) -> int:
    """The most requests admitted at `t <= time <= t + span`, for any `t`."""
    times = admitted_times(run)
    return max(sum(t - EPS <= u <= t + span + EPS for u in times) for t in times)


def test_every_algorithm_decides_every_request_of_the_pattern() -> None:
    assert list(RUNS) == ALGORITHMS
    expected = [ms / 1000 for ms, count in pictures.arrivals().items() for _ in range(count)]
    for run in RUNS.values():
        assert [request.at for request in run.requests] == expected
        assert len(run.samples) == pictures.END_MS // pictures.STEP_MS
    # the pattern is what the page describes: a steady stream at twice the limit and a burst
    # of the limit either side of the boundary at 3 s
    assert pictures.arrivals()[2900] == pictures.arrivals()[3000] == LIMIT
    assert 1000 // pictures.STEADY_EVERY_MS == 2 * LIMIT


@pytest.mark.parametrize(
    ("algorithm", "burst"), [*((name, None) for name in ALGORITHMS), ("gcra", 1)]
)
def test_the_runs_agree_with_the_reference_models(algorithm: str, burst: int | None) -> None:
    """Each decision, and the state the pictures draw, is what the algorithm's description
    (tests/reference_models.py, exact arithmetic) gives at that instant."""
    run = pictures.simulate(algorithm, burst=burst)
    model = reference_model(algorithm, LIMIT, pictures.WINDOW_MS * 1_000_000, burst=burst)
    requests = iter(run.requests)
    for ms in range(0, pictures.END_MS, pictures.STEP_MS):
        now_ns = ms * 1_000_000
        for _ in range(pictures.arrivals().get(ms, 0)):
            request = next(requests)
            assert request.admitted == model.decide("client", now_ns, 1).allowed, (ms, request)
        sample = run.samples[ms // pictures.STEP_MS]
        standing = model.peek("client", now_ns)
        assert sample.remaining == standing.remaining, (ms, sample, standing)
        if run.burst is None:
            assert sample.backlog is None
        else:
            assert math.isclose(sample.backlog * 1e9, standing.reset_after_ns, abs_tol=1), ms
    assert next(requests, None) is None


def test_fixed_admits_the_limit_in_each_window_and_twice_it_across_a_boundary() -> None:
    run = RUNS["fixed"]
    # windows open at the first request after the last one ended: here back to back from 0
    assert run.window_starts == (0.0, 1.0, 2.0, 3.0)
    for start in run.window_starts:
        assert admitted_between(run, start, start + WINDOW) == LIMIT
    # the burst at 2.9 s fills what window [2, 3) has left, the one at 3.0 s a whole new one
    assert admitted_between(run, 2.9, 3.0) == LIMIT - 1
    assert admitted_between(run, 3.0, 3.01) == LIMIT
    # the page quotes it: 19 requests within 0.1 s
    assert most_within(run, 0.1) == 2 * LIMIT - 1


def test_sliding_has_no_double_burst_at_the_boundary_but_is_an_estimate() -> None:
    run = RUNS["sliding"]
    assert run.window_starts == (0.0, 1.0, 2.0, 3.0)  # tiled from the first request
    # around the boundary, no more than the limit (the fixed window: 19)
    assert most_within(run, 0.1) == LIMIT - 1
    # the burst at 3.0 s meets the previous window's count at full weight
    assert admitted_between(run, 3.0, 3.01) == 1
    # the estimate takes the previous window's requests as spread evenly; they came at its
    # end, so the second after the burst admits more than the limit (the page quotes 16)
    assert most_in_one_window(run) == 16
    # and the steady stream at twice the limit is held below the limit
    assert admitted_between(run, 1.0, 2.0) == LIMIT - 1


def test_the_bucket_algorithms_decide_alike_and_keep_to_burst_plus_rate() -> None:
    runs = [RUNS[name] for name in ("token_bucket", "leaky_bucket", "gcra")]
    assert runs[0].requests == runs[1].requests == runs[2].requests
    run = runs[0]
    assert run.burst == LIMIT and run.window_starts == ()
    times = admitted_times(run)
    # in any span, at most the burst plus what the rate refills
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            assert j - i + 1 <= run.burst + (times[j] - start) / INTERVAL + EPS
    # once the burst is spent, one request every T = window / limit: every other one
    steady = [t for t in times if 1.0 <= t <= 2.0]
    assert all(math.isclose(b - a, INTERVAL) for a, b in pairwise(steady))
    # 0.9 s of quiet refills 9 of the 10 (the page quotes these)
    assert admitted_between(run, 2.9, 2.91) == 9
    assert admitted_between(run, 0.0, 1.0) == 19
    assert most_within(run, 0.1) == LIMIT


def test_gcra_with_a_burst_of_one_spaces_every_admission() -> None:
    run = pictures.simulate("gcra", burst=1)
    times = admitted_times(run)
    assert min(b - a for a, b in pairwise(times)) >= INTERVAL - EPS
    assert most_in_one_window(run) == LIMIT
    assert run.admitted < RUNS["gcra"].admitted


def test_the_drawing_writes_every_picture_and_the_same_bytes_each_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pictures.main(["--out", str(tmp_path / "a")])
    names = [*ALGORITHMS, "all"]
    assert capsys.readouterr().out.count("wrote ") == len(names)
    for name in names:
        first = (tmp_path / "a" / f"{name}.png").read_bytes()
        assert first.startswith(b"\x89PNG\r\n\x1a\n")
        assert 10_000 < len(first) < 150_000, (name, len(first))
    pictures.write_all(tmp_path / "b")
    for name in names:
        assert (tmp_path / "b" / f"{name}.png").read_bytes() == (
            tmp_path / "a" / f"{name}.png"
        ).read_bytes(), name


def test_the_page_shows_every_committed_picture() -> None:
    text = PAGE.read_text()
    for name in [*ALGORITHMS, "all"]:
        assert (IMAGES / f"{name}.png").stat().st_size > 10_000
        assert f"](../images/algorithms/{name}.png)" in text, name
