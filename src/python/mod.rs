//! The PyO3 classes: argument conversion, error mapping and the GIL policy. No decisions are
//! made here; everything is delegated to [`crate::Limiter`].

mod args;
mod clock;
mod decision;
mod limiter;

use pyo3::prelude::*;

/// Checks a `cost` with the rule `allow()` applies, for callers that take one ahead of time
/// (the decorator, at decoration).
#[pyfunction]
fn _check_cost(cost: &Bound<'_, PyAny>) -> PyResult<()> {
    args::cost(Some(cost)).map(drop)
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<limiter::RateLimiter>()?;
    m.add_class::<decision::PyDecision>()?;
    m.add_class::<clock::PyManualClock>()?;
    // Private: set as an attribute so that it stays out of `__all__`.
    m.setattr("_check_cost", wrap_pyfunction!(_check_cost, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "ALGORITHMS",
        crate::AlgorithmKind::ALL.map(|kind| kind.name()).to_vec(),
    )?;
    Ok(())
}
