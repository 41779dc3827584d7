"""How the property tests move a manual clock: steps biased to land on, and next to, the
instants where decisions change."""

from __future__ import annotations

from hypothesis import strategies as st
from reference_models import emission_interval

#: ``("ns", n)``: advance n nanoseconds; ``("retry" | "reset", d)``: advance to the last
#: decision's ``retry_after`` / ``reset_after``, plus d (-1, 0 or 1) nanoseconds.
Advance = tuple[str, int]


def advances(rates_ns: list[tuple[int, int]]) -> st.SearchStrategy[Advance]:
    """Steps from 0 to ~3 windows for rates of ``(limit, window_ns)``: window and
    emission-interval multiples, and the last retry_after and reset_after."""
    windows = [window for _, window in rates_ns]
    intervals = [emission_interval(limit, window) for limit, window in rates_ns]
    offset = st.integers(-1, 1)
    multiples = [
        st.builds(lambda k, d, unit=unit: max(0, k * unit + d), st.integers(1, 3), offset)
        for unit in windows + intervals
    ]
    steps = st.one_of(
        st.just(0),
        st.one_of([st.integers(0, interval) for interval in intervals]),
        st.one_of([st.integers(0, 3 * window) for window in windows]),
        st.one_of(multiples),
    ).map(lambda n: ("ns", n))
    edges = st.tuples(st.sampled_from(["retry", "reset"]), offset)
    return st.one_of(steps, edges)
