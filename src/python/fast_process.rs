//! `process()` of the unkeyed limiters as a hand-written `METH_FASTCALL` method, as
//! `RateLimiter.allow` is (see [`super::fast_methods`]): pyo3's generic wrapper around a
//! method of no arguments costs about as much as the decision itself (a clock read and one
//! compare-and-swap). A call with any argument goes to pyo3's wrapper, which reports it.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::PyClass;

use super::fast_methods::{new_bool, raise_panic, FastMethod};
use super::unkeyed::{PyFixedWindow, PyGcra, PySlidingWindow, PyTokenBucket};

/// An unkeyed limiter class whose `process` is installed here.
pub(super) trait Processes:
    PyClass<Frozen = pyo3::pyclass::boolean_struct::True> + Sync
{
    /// pyo3's `process` of this class, kept for the calls with arguments.
    const PROCESS: &'static FastMethod;
    /// One request now.
    fn process_now(&self) -> bool;
}

static TOKEN_BUCKET: FastMethod = FastMethod::new(c"process");
static GCRA: FastMethod = FastMethod::new(c"process");
static FIXED_WINDOW: FastMethod = FastMethod::new(c"process");
static SLIDING_WINDOW: FastMethod = FastMethod::new(c"process");

macro_rules! processes {
    ($class:ty, $method:ident) => {
        impl Processes for $class {
            const PROCESS: &'static FastMethod = &$method;
            #[inline(always)]
            fn process_now(&self) -> bool {
                self.process()
            }
        }
    };
}

processes!(PyTokenBucket, TOKEN_BUCKET);
processes!(PyGcra, GCRA);
processes!(PyFixedWindow, FIXED_WINDOW);
processes!(PySlidingWindow, SLIDING_WINDOW);

/// Installs `process` on each unkeyed limiter class.
pub fn install(py: Python<'_>) -> PyResult<()> {
    install_on::<PyTokenBucket>(py)?;
    install_on::<PyGcra>(py)?;
    install_on::<PyFixedWindow>(py)?;
    install_on::<PySlidingWindow>(py)
}

fn install_on<C: Processes>(py: Python<'_>) -> PyResult<()> {
    C::PROCESS.install(&py.get_type::<C>(), process::<C>)
}

unsafe extern "C" fn process<C: Processes>(
    slf: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargs: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    if nargs != 0 || !kwnames.is_null() {
        // SAFETY: the arguments are CPython's, passed on as they came.
        return unsafe { C::PROCESS.call_generic(slf, args, nargs, kwnames) };
    }
    // SAFETY: called from Python, so the thread is attached; the method descriptor has
    // checked that `slf` is a `C` (the classes cannot be subclassed).
    let py = unsafe { Python::assume_attached() };
    let this = unsafe { pyo3::Borrowed::from_ptr(py, slf).cast_unchecked::<C>() };
    match catch_unwind(AssertUnwindSafe(|| this.get().process_now())) {
        Ok(allowed) => new_bool(allowed),
        Err(payload) => raise_panic(payload),
    }
}
