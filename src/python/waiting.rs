//! How a queued caller is woken, and the wake-ups delivered after the limiter's lock is let go.
//!
//! A thread waits on a condition variable with the GIL released; an asyncio task awaits a
//! future, resolved on its own loop through `call_soon_threadsafe` (never polled). A future
//! whose task was cancelled before its permit arrived gives the permit straight back.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::concurrency::Shared;
use super::lease::Lease;
use crate::concurrency::{Notice, Permit, Refusal};

/// What a waiter ends with: its permits, or why none came.
pub type Outcome = Result<Permit, Refusal>;

/// A blocked thread's mailbox.
#[derive(Default)]
pub struct ThreadWaiter {
    outcome: Mutex<Option<Outcome>>,
    ready: Condvar,
}

impl ThreadWaiter {
    fn set(&self, outcome: Outcome) {
        *self.outcome.lock() = Some(outcome);
        self.ready.notify_one();
    }

    /// Waits up to `slice` for the outcome (call without the GIL).
    pub fn wait(&self, slice: Duration) -> Option<Outcome> {
        let mut outcome = self.outcome.lock();
        if outcome.is_none() {
            self.ready.wait_for(&mut outcome, slice);
        }
        outcome.take()
    }
}

pub enum Wake {
    Thread(Arc<ThreadWaiter>),
    Task {
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
        key: Option<Py<PyString>>,
    },
}

/// Wakes the waiters the limiter named; called with the GIL, never under the limiter's lock.
pub fn deliver(py: Python<'_>, shared: &Arc<Shared>, notices: Vec<Notice<Wake>>) {
    for notice in notices {
        let (wake, outcome) = match notice {
            Notice::Granted(wake, permit) => (wake, Ok(permit)),
            Notice::Refused(wake, refusal) => (wake, Err(refusal)),
        };
        match wake {
            Wake::Thread(waiter) => waiter.set(outcome),
            Wake::Task {
                event_loop,
                future,
                key,
            } => deliver_to_task(py, shared, event_loop, future, key, outcome),
        }
    }
}

fn deliver_to_task(
    py: Python<'_>,
    shared: &Arc<Shared>,
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    key: Option<Py<PyString>>,
    outcome: Outcome,
) {
    let (value, lease) = match outcome {
        Ok(permit) => match Py::new(py, Lease::new(shared.clone(), permit, key)) {
            Ok(lease) => (lease.clone_ref(py).into_any(), Some(lease)),
            Err(error) => {
                error.write_unraisable(py, None);
                return;
            }
        },
        Err(refusal) => (
            shared
                .overloaded(py, key.as_ref(), refusal)
                .into_value(py)
                .into_any(),
            None,
        ),
    };
    let resolve = Resolve { future, value };
    let scheduled = event_loop
        .bind(py)
        .call_method1(intern!(py, "call_soon_threadsafe"), (resolve,));
    if scheduled.is_err() {
        // The waiter's loop is closed: nobody will take these permits.
        if let Some(lease) = lease {
            lease.get().release_now(py, false);
        }
    }
}

/// Run on the waiter's loop: resolves its future, or hands a permit back to a cancelled one.
#[pyclass(frozen, module = "rust_py_rate_limit._core")]
struct Resolve {
    future: Py<PyAny>,
    value: Py<PyAny>,
}

#[pymethods]
impl Resolve {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let future = self.future.bind(py);
        let value = self.value.bind(py);
        if future.call_method0(intern!(py, "done"))?.is_truthy()? {
            if let Ok(lease) = value.cast::<Lease>() {
                lease.get().release_now(py, false);
            }
            return Ok(());
        }
        if value.is_instance_of::<pyo3::exceptions::PyBaseException>() {
            future.call_method1(intern!(py, "set_exception"), (value,))?;
        } else {
            future.call_method1(intern!(py, "set_result"), (value,))?;
        }
        Ok(())
    }
}
