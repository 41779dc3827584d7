//! The PyO3 classes: argument conversion, error mapping and the GIL policy. No decisions are
//! made here; everything is delegated to [`crate::Limiter`].

mod acquisition;
mod args;
mod async_bridge;
mod clock;
mod concurrency;
mod decision;
mod failure;
mod fast_methods;
mod histogram;
mod lease;
mod limiter;
mod pending;
mod ready;
mod shared_storage;
mod storage;
mod unkeyed;
mod waiting;

use pyo3::prelude::*;

/// Checks a `cost` with the rule `allow()` applies, for callers that take one ahead of time
/// (the decorator, at decoration).
#[pyfunction]
fn _check_cost(cost: &Bound<'_, PyAny>) -> PyResult<()> {
    args::cost(Some(cost)).map(drop)
}

/// Checks a `key` with the rule `allow()` applies, for callers that take one ahead of time
/// (`acquire`, before it waits).
#[pyfunction]
fn _check_key(key: &Bound<'_, PyAny>) -> PyResult<()> {
    args::key(key).map(drop)
}

/// Before `fork()`: stops and joins every background sweeper (see `store::sweeper`).
#[pyfunction]
fn _before_fork() {
    crate::store::pause_all_for_fork();
}

/// After `fork()`, in the parent and in the child: starts the background sweepers again.
#[pyfunction]
fn _after_fork() {
    crate::store::resume_all_after_fork();
}

/// Hooks the sweepers into `os.register_at_fork`, so that a limiter made before a pre-fork
/// server (gunicorn `--preload`, multiprocessing) forks keeps sweeping in every worker and no
/// worker inherits a lock held by a sweep. Platforms without `fork` have no such function.
fn register_fork_hooks(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let os = m.py().import("os")?;
    if !os.hasattr("register_at_fork")? {
        return Ok(());
    }
    let kwargs = pyo3::types::PyDict::new(m.py());
    kwargs.set_item("before", m.getattr("_before_fork")?)?;
    kwargs.set_item("after_in_parent", m.getattr("_after_fork")?)?;
    kwargs.set_item("after_in_child", m.getattr("_after_fork")?)?;
    os.call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}

#[pymodule(gil_used = false)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<limiter::RateLimiter>()?;
    fast_methods::install(&m.py().get_type::<limiter::RateLimiter>())?;
    m.add_class::<decision::PyDecision>()?;
    m.add_class::<clock::PyManualClock>()?;
    m.add_class::<unkeyed::PyTokenBucket>()?;
    m.add_class::<unkeyed::PyGcra>()?;
    m.add_class::<unkeyed::PyFixedWindow>()?;
    m.add_class::<unkeyed::PySlidingWindow>()?;
    m.add_class::<ready::Ready>()?;
    m.add_class::<concurrency::PyConcurrencyLimiter>()?;
    m.add_class::<lease::Lease>()?;
    m.add_class::<acquisition::Acquisition>()?;
    m.add("StorageError", m.py().get_type::<storage::StorageError>())?;
    // Private: set as an attribute so that it stays out of `__all__`.
    m.setattr("_check_cost", wrap_pyfunction!(_check_cost, m)?)?;
    m.setattr("_check_key", wrap_pyfunction!(_check_key, m)?)?;
    m.setattr("_Alarm", m.py().get_type::<clock::Alarm>())?;
    m.setattr("_before_fork", wrap_pyfunction!(_before_fork, m)?)?;
    m.setattr("_after_fork", wrap_pyfunction!(_after_fork, m)?)?;
    register_fork_hooks(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "ALGORITHMS",
        crate::AlgorithmKind::ALL.map(|kind| kind.name()).to_vec(),
    )?;
    Ok(())
}
