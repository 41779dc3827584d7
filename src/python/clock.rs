//! `ManualClock`: time that moves only when a test says so.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::args;
use crate::clock::{Clock, ManualClock};
use crate::rate::NANOS_PER_SECOND;

/// The `clock=` setting: a `ManualClock`, or None for the real (monotonic) clock.
pub fn clock_setting(clock: Option<&Bound<'_, PyAny>>) -> PyResult<Clock> {
    match clock.filter(|c| !c.is_none()) {
        None => Ok(Clock::monotonic()),
        Some(clock) => {
            let manual = clock
                .cast::<PyManualClock>()
                .map_err(|_| PyTypeError::new_err("`clock` must be a ManualClock or None"))?;
            Ok(Clock::Manual(manual.get().clock.clone()))
        }
    }
}

/// A clock for tests: pass it as `clock=` and time stands still until `advance()`.
#[pyclass(frozen, name = "ManualClock", module = "rust_py_rate_limit._core")]
pub struct PyManualClock {
    pub(crate) clock: ManualClock,
}

#[pymethods]
impl PyManualClock {
    #[new]
    #[pyo3(signature = (start=None))]
    fn new(start: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let start_ns = match start {
            Some(start) => args::seconds(start, "start", true)?.1,
            None => 0,
        };
        Ok(PyManualClock {
            clock: ManualClock::new(start_ns),
        })
    }

    /// Moves the clock forward by `seconds` (an int or float >= 0).
    fn advance(&self, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let (_, ns) = args::seconds(seconds, "seconds", true)?;
        self.clock
            .advance_ns(ns)
            .map(drop)
            .map_err(|e| PyValueError::new_err(format!("invalid `seconds`: {e}")))
    }

    /// The current time in seconds since the clock's origin.
    fn now(&self) -> f64 {
        self.clock.now_ns() as f64 / NANOS_PER_SECOND as f64
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now={:?})", self.now())
    }
}
