//! `Lease`: permits held from a `ConcurrencyLimiter`, given back exactly once.
//!
//! `release()` (or leaving a `with` / `async with` block, on success, an exception or a
//! cancellation) gives them back; a second call does nothing. A lease dropped while still
//! held gives its permits back too, with a `ResourceWarning`, so a forgotten lease cannot
//! shrink the limiter for good.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use pyo3::exceptions::PyResourceWarning;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::concurrency::Shared;
use super::ready::Ready;
use super::waiting::deliver;
use crate::concurrency::Permit;
use crate::rate::NANOS_PER_SECOND;

#[pyclass(frozen, name = "Lease", module = "rust_py_rate_limit._core")]
pub struct Lease {
    shared: Arc<Shared>,
    permit: Permit,
    key: Option<Py<PyString>>,
    released: AtomicBool,
}

impl Lease {
    pub fn new(shared: Arc<Shared>, permit: Permit, key: Option<Py<PyString>>) -> Self {
        Lease {
            shared,
            permit,
            key,
            released: AtomicBool::new(false),
        }
    }

    /// Gives the permits back unless that was done already; wakes whoever they go to.
    pub fn release_now(&self, py: Python<'_>, dropped: bool) -> bool {
        if self.released.swap(true, Ordering::AcqRel) {
            return false;
        }
        let notices = self.shared.core.release(&self.permit, dropped);
        deliver(py, &self.shared, notices);
        true
    }
}

#[pymethods]
impl Lease {
    /// Gives the permits back; a second call does nothing. `dropped=True` tells an adaptive
    /// limit the request failed as overload (it timed out), which lowers the limit.
    #[pyo3(signature = (*, dropped=false))]
    fn release(&self, py: Python<'_>, dropped: bool) {
        self.release_now(py, dropped);
    }

    #[getter]
    fn released(&self) -> bool {
        self.released.load(Ordering::Acquire)
    }

    #[getter]
    fn key(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.key.as_ref().map(|key| key.clone_ref(py))
    }

    #[getter]
    fn cost(&self) -> u32 {
        self.permit.cost
    }

    /// Seconds since the permits were taken.
    #[getter]
    fn held_for(&self) -> f64 {
        let now = self.shared.core.now_ns();
        now.saturating_sub(self.permit.start_ns) as f64 / NANOS_PER_SECOND as f64
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.release_now(py, false);
        false
    }

    fn __aenter__(slf: PyRef<'_, Self>) -> PyResult<Ready> {
        let py = slf.py();
        Ready::new(slf, py)
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__(&self, py: Python<'_>, _exc: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<Ready> {
        self.release_now(py, false);
        Ready::new(false, py)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let key = match &self.key {
            Some(key) => key
                .bind(py)
                .repr()
                .map(|r| r.to_string())
                .unwrap_or_default(),
            None => "None".into(),
        };
        let state = if self.released() { "released" } else { "held" };
        format!("Lease(key={key}, cost={}, {state})", self.permit.cost)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released.load(Ordering::Acquire) {
            return;
        }
        Python::attach(|py| {
            let warned = PyErr::warn(
                py,
                &py.get_type::<PyResourceWarning>(),
                c"a Lease was dropped without being released; its permits are given back now",
                1,
            );
            if let Err(error) = warned {
                error.write_unraisable(py, None);
            }
            self.release_now(py, false);
        });
    }
}
