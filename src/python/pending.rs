//! `PendingLease`: what a queued task awaits. It passes the waiter's future through to the
//! task (so the task sleeps on the future, never polls) and closes one gap the bare future
//! leaves: a task cancelled after its permit reached the future but before it ran again never
//! receives the lease. The cancellation is thrown in here, so the lease is given back at
//! once, instead of waiting for the garbage collector and a `ResourceWarning` that would
//! blame the caller. A task that gives up while its future is still pending cancels the
//! future, which takes the waiter out of the queue.

use pyo3::intern;
use pyo3::prelude::*;

use super::lease::Lease;

#[pyclass(frozen, module = "rust_py_rate_limit._core")]
pub struct PendingLease {
    future: Py<PyAny>,
    /// `future.__await__()`: what drives the task while it waits.
    inner: Py<PyAny>,
}

impl PendingLease {
    pub fn new(future: &Bound<'_, PyAny>) -> PyResult<Self> {
        let py = future.py();
        let inner = future.call_method0(intern!(py, "__await__"))?;
        Ok(PendingLease {
            future: future.clone().unbind(),
            inner: inner.unbind(),
        })
    }

    /// The awaiting code will not take the outcome: a lease already given is released, a
    /// wait still pending is cancelled (the future's done callback leaves the queue).
    fn abandon(&self, py: Python<'_>) -> PyResult<()> {
        let future = self.future.bind(py);
        if !future.call_method0(intern!(py, "done"))?.is_truthy()? {
            future.call_method0(intern!(py, "cancel"))?;
            return Ok(());
        }
        if future.call_method0(intern!(py, "cancelled"))?.is_truthy()?
            || !future.call_method0(intern!(py, "exception"))?.is_none()
        {
            return Ok(());
        }
        let result = future.call_method0(intern!(py, "result"))?;
        if let Ok(lease) = result.cast::<Lease>() {
            lease.get().release_now(py, false);
        }
        Ok(())
    }
}

#[pymethods]
impl PendingLease {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self
            .inner
            .bind(py)
            .call_method0(intern!(py, "__next__"))?
            .unbind())
    }

    #[pyo3(signature = (value, /))]
    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        Ok(self
            .inner
            .bind(py)
            .call_method1(intern!(py, "send"), (value,))?
            .unbind())
    }

    /// An error thrown into the waiting task (its cancellation, most often): the outcome is
    /// abandoned, then the error goes on to the awaiting code.
    #[pyo3(signature = (error, value=None, traceback=None, /))]
    fn throw(
        &self,
        py: Python<'_>,
        error: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.abandon(py)?;
        let inner = self.inner.bind(py);
        let thrown = match (value, traceback) {
            (None, None) => inner.call_method1(intern!(py, "throw"), (error,)),
            (value, traceback) => {
                inner.call_method1(intern!(py, "throw"), (error, value, traceback))
            }
        };
        Ok(thrown?.unbind())
    }

    /// The awaiting coroutine is closed (collected while it waited).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.abandon(py)?;
        let inner = self.inner.bind(py);
        if inner.hasattr(intern!(py, "close"))? {
            inner.call_method0(intern!(py, "close"))?;
        }
        Ok(())
    }
}
