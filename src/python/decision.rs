//! `Decision`: the typed, cheap answer of `RateLimiter.decide()`, and the dict form that
//! `RateLimiter.check()` returns.

use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::decision::{Decision, NEVER};
use crate::rate::NANOS_PER_SECOND;

/// Seconds as a float; `inf` for a request that can never be admitted.
fn seconds_f64(ns: u64) -> f64 {
    if ns == NEVER {
        f64::INFINITY
    } else {
        ns as f64 / NANOS_PER_SECOND as f64
    }
}

/// Seconds given to `Decision(...)` in nanoseconds; `inf` (never) only where `never_ok`.
fn ns_from_seconds(name: &str, seconds: f64, never_ok: bool) -> PyResult<u64> {
    if never_ok && seconds.is_infinite() && seconds > 0.0 {
        return Ok(NEVER);
    }
    if seconds.is_nan() || seconds < 0.0 || !seconds.is_finite() {
        return Err(PyValueError::new_err(format!(
            "`{name}` must be >= 0{}, got {seconds}",
            if never_ok {
                " (or inf for never)"
            } else {
                " and finite"
            }
        )));
    }
    Ok((seconds * NANOS_PER_SECOND as f64)
        .round()
        .min((NEVER - 1) as f64) as u64)
}

/// Whole seconds rounded up, as `check()` reports them; None (JSON `null`) for never, so the
/// dict is always valid JSON (`inf` is not).
fn whole_seconds(py: Python<'_>, ns: u64) -> PyResult<Bound<'_, PyAny>> {
    if ns == NEVER {
        return Ok(py.None().into_bound(py));
    }
    Ok(ns.div_ceil(NANOS_PER_SECOND).into_pyobject(py)?.into_any())
}

/// `{"allowed", "limit", "remaining", "reset_after_seconds", "retry_after_seconds"}`.
pub fn decision_dict<'py>(py: Python<'py>, d: &Decision) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item(intern!(py, "allowed"), d.allowed)?;
    dict.set_item(intern!(py, "limit"), d.limit)?;
    dict.set_item(intern!(py, "remaining"), d.remaining)?;
    dict.set_item(
        intern!(py, "reset_after_seconds"),
        whole_seconds(py, d.reset_after_ns)?,
    )?;
    dict.set_item(
        intern!(py, "retry_after_seconds"),
        whole_seconds(py, d.retry_after_ns)?,
    )?;
    Ok(dict)
}

/// The outcome of one check: whether it was allowed, and the key's standing after it.
#[pyclass(
    frozen,
    eq,
    hash,
    name = "Decision",
    module = "rust_py_rate_limit._core"
)]
#[derive(PartialEq, Eq, Hash)]
pub struct PyDecision {
    inner: Decision,
}

impl From<Decision> for PyDecision {
    fn from(inner: Decision) -> Self {
        PyDecision { inner }
    }
}

#[pymethods]
impl PyDecision {
    #[new]
    #[pyo3(signature = (allowed, limit, remaining, reset_after, retry_after))]
    fn new(
        allowed: bool,
        limit: u64,
        remaining: u64,
        reset_after: f64,
        retry_after: f64,
    ) -> PyResult<Self> {
        Ok(PyDecision {
            inner: Decision {
                allowed,
                limit,
                remaining,
                reset_after_ns: ns_from_seconds("reset_after", reset_after, false)?,
                retry_after_ns: ns_from_seconds("retry_after", retry_after, true)?,
            },
        })
    }

    /// Whether the request was admitted (and consumed).
    #[getter]
    fn allowed(&self) -> bool {
        self.inner.allowed
    }

    /// A decision is true exactly when it admitted the request: `if limiter.decide(key):`.
    fn __bool__(&self) -> bool {
        self.inner.allowed
    }

    /// The limit of the rate that decided.
    #[getter]
    fn limit(&self) -> u64 {
        self.inner.limit
    }

    /// Requests of cost 1 still admissible now.
    #[getter]
    fn remaining(&self) -> u64 {
        self.inner.remaining
    }

    /// Seconds until the key is back to its full limit.
    #[getter]
    fn reset_after(&self) -> f64 {
        seconds_f64(self.inner.reset_after_ns)
    }

    /// Seconds until this request would be admitted: 0.0 when allowed, `inf` if never.
    #[getter]
    fn retry_after(&self) -> f64 {
        seconds_f64(self.inner.retry_after_ns)
    }

    /// The same dict as `RateLimiter.check()` returns (whole seconds, rounded up; a
    /// `retry_after` of `inf` is None).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        decision_dict(py, &self.inner)
    }

    fn __repr__(&self) -> String {
        let retry = if self.inner.retry_after_ns == NEVER {
            "inf".to_string()
        } else {
            format!("{:?}", self.retry_after())
        };
        format!(
            "Decision(allowed={}, limit={}, remaining={}, reset_after={:?}, retry_after={retry})",
            if self.inner.allowed { "True" } else { "False" },
            self.inner.limit,
            self.inner.remaining,
            self.reset_after(),
        )
    }
}
