//! `ManualClock`: time that moves only when a test says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::args;
use crate::clock::{AdvanceListener, Clock, ManualClock};
use crate::rate::NANOS_PER_SECOND;

/// The `ManualClock` a limiter reads, for the waiting code (`_waiting.py`), or None for a
/// real clock.
pub fn manual_clock(py: Python<'_>, clock: &Clock) -> PyResult<Option<Py<PyManualClock>>> {
    match clock {
        Clock::Manual(manual) => Ok(Some(Py::new(
            py,
            PyManualClock {
                clock: manual.clone(),
            },
        )?)),
        _ => Ok(None),
    }
}

/// A callback the clock calls once, when it is advanced to or past a time
/// (`ManualClock._alarm`): how a waiter sleeps on a `ManualClock`. Dropped or cancelled, it
/// is never called.
#[pyclass(frozen, name = "_Alarm", module = "rust_py_rate_limit._core")]
pub struct Alarm {
    listener: Mutex<Option<Arc<AdvanceListener>>>,
}

#[pymethods]
impl Alarm {
    /// Never calls the callback from now on.
    fn cancel(&self) {
        self.listener.lock().take();
    }
}

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

    /// Calls `callback()` once, when the clock reaches `seconds` from now (at once when that
    /// is now); the `_Alarm` returned cancels it. For the waiting code: sleeping on a manual
    /// clock lasts until a test advances it.
    fn _alarm(&self, seconds: &Bound<'_, PyAny>, callback: Py<PyAny>) -> PyResult<Alarm> {
        let (_, ns) = args::seconds(seconds, "seconds", true)?;
        let deadline = self.clock.now_ns().saturating_add(ns);
        let fired = Arc::new(AtomicBool::new(false));
        let ring = {
            let fired = fired.clone();
            move |now: u64| {
                if now >= deadline && !fired.swap(true, Ordering::AcqRel) {
                    Python::attach(|py| {
                        if let Err(error) = callback.call0(py) {
                            error.write_unraisable(py, None);
                        }
                    });
                }
            }
        };
        let listener: Arc<AdvanceListener> = Arc::new(ring);
        self.clock.subscribe(&listener);
        // Subscribed first, then read: an advance in between rings once, not never.
        listener(self.clock.now_ns());
        Ok(Alarm {
            listener: Mutex::new(Some(listener)),
        })
    }

    /// The current time in seconds since the clock's origin.
    fn now(&self) -> f64 {
        self.clock.now_ns() as f64 / NANOS_PER_SECOND as f64
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now={:?})", self.now())
    }
}
