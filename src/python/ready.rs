//! `Ready`: an awaitable whose result is already known, for the async twins (`aallow`, ...) of
//! a limiter that answers without waiting (the in-memory store). Awaiting it costs one
//! `StopIteration`; no event loop, task or future is involved.

use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use pyo3::BoundObject;

/// An awaitable holding its result: `await ready` gives it at once.
#[pyclass(frozen, name = "Ready", module = "rust_py_rate_limit._core")]
pub struct Ready {
    value: Py<PyAny>,
}

impl Ready {
    pub fn new<'py>(value: impl IntoPyObject<'py>, py: Python<'py>) -> PyResult<Self> {
        let value = value
            .into_pyobject(py)
            .map_err(Into::into)?
            .into_any()
            .unbind();
        Ok(Ready { value })
    }
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Finishes at once: the result travels in `StopIteration`, as a coroutine's does.
    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Err(PyStopIteration::new_err((self.value.clone_ref(py),)))
    }

    /// The generator protocol's `send`, which asyncio uses to drive an awaitable.
    #[pyo3(signature = (value, /))]
    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let _ = value; // what is sent into a finished awaitable is ignored
        self.__next__(py)
    }

    /// The generator protocol's `throw`: the error goes straight back to the awaiting code.
    #[pyo3(signature = (error, value=None, traceback=None, /))]
    fn throw(
        &self,
        error: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = (value, traceback); // the old three-argument form: the error alone is raised
        Err(PyErr::from_value(error.clone()))
    }

    fn close(&self) {}

    fn result(&self, py: Python<'_>) -> Py<PyAny> {
        self.value.clone_ref(py)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Ready({})", self.value.bind(py).repr()?))
    }
}
