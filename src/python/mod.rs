//! The PyO3 classes: argument conversion, error mapping and the GIL policy. No decisions are
//! made here; everything is delegated to [`crate::Limiter`].

mod args;
mod clock;
mod decision;
mod limiter;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<limiter::RateLimiter>()?;
    m.add_class::<decision::PyDecision>()?;
    m.add_class::<clock::PyManualClock>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "ALGORITHMS",
        crate::AlgorithmKind::ALL.map(|kind| kind.name()).to_vec(),
    )?;
    Ok(())
}
