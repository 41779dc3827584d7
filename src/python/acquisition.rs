//! `Acquisition`: what `ConcurrencyLimiter.acquire()` returns, entered once as `with` (the
//! thread waits with the GIL released), `async with` or `await` (the task awaits a future on
//! its loop). Either way the caller gets a `Lease`, or `Overloaded` when no permit came.
//!
//! A queued thread wakes every [`SLICE`] to let Python run signal handlers (Ctrl-C leaves
//! the queue) and, on a real clock, to notice its deadline. A queued task's deadline is a
//! `loop.call_later` timer; a task cancelled while queued leaves the queue at once, and one
//! cancelled after its grant but before it ran again gives the permit back at once (see
//! [`super::pending`]). With a `ManualClock`, deadlines pass when the clock is advanced
//! (`ConcurrencyLimiter::expire`).

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyTuple};

use super::concurrency::{Request, Shared};
use super::lease::Lease;
use super::pending::PendingLease;
use super::ready::Ready;
use super::waiting::{deliver, Outcome, ThreadWaiter, Wake};
use crate::concurrency::{Acquired, Refusal, Ticket};
use crate::rate::NANOS_PER_SECOND;

/// The longest a waiting thread goes without checking for signals.
const SLICE: Duration = Duration::from_millis(50);

enum State {
    Fresh,
    Holding(Py<Lease>),
    Awaiting(Py<PyAny>),
    Entered,
}

#[pyclass(frozen, name = "Acquisition", module = "rust_py_rate_limit._core")]
pub struct Acquisition {
    shared: Arc<Shared>,
    request: Request,
    state: Mutex<State>,
}

impl Acquisition {
    pub fn new(shared: Arc<Shared>, request: Request) -> Self {
        Acquisition {
            shared,
            request,
            state: Mutex::new(State::Fresh),
        }
    }

    fn start(&self) -> PyResult<()> {
        let mut state = self.state.lock();
        if !matches!(*state, State::Fresh) {
            return Err(PyRuntimeError::new_err(
                "an Acquisition is entered once; call limiter.acquire() again for more permits",
            ));
        }
        *state = State::Entered;
        Ok(())
    }

    fn lease(&self, py: Python<'_>, outcome: Outcome) -> PyResult<Py<Lease>> {
        match outcome {
            Ok(permit) => Py::new(
                py,
                Lease::new(self.shared.clone(), permit, self.request.key_ref(py)),
            ),
            Err(refusal) => Err(self
                .shared
                .overloaded(py, self.request.key.as_ref(), refusal)),
        }
    }

    /// Waits in the queue with the GIL released, until served, refused, timed out or
    /// interrupted.
    fn wait_in_thread(
        &self,
        py: Python<'_>,
        ticket: Ticket,
        waiter: Arc<ThreadWaiter>,
    ) -> PyResult<Py<Lease>> {
        let core = &self.shared.core;
        let manual = self.shared.manual_clock();
        loop {
            let slice = if manual {
                SLICE
            } else {
                let left = ticket.deadline_ns.saturating_sub(core.now_ns());
                SLICE.min(Duration::from_nanos(left))
            };
            let waiter_ = waiter.clone();
            if let Some(outcome) = py.detach(move || waiter_.wait(slice)) {
                return self.lease(py, outcome);
            }
            if let Err(interrupt) = py.check_signals() {
                let (removed, notices) = core.cancel(&ticket, false);
                deliver(py, &self.shared, notices);
                if !removed {
                    // Served (or refused) meanwhile: take the outcome and give a permit back.
                    let outcome = loop {
                        let waiter_ = waiter.clone();
                        if let Some(outcome) = py.detach(move || waiter_.wait(SLICE)) {
                            break outcome;
                        }
                    };
                    if let Ok(lease) = self.lease(py, outcome) {
                        lease.get().release_now(py, false);
                    }
                }
                return Err(interrupt);
            }
            if !manual && core.now_ns() >= ticket.deadline_ns {
                let (removed, notices) = core.cancel(&ticket, true);
                deliver(py, &self.shared, notices);
                if removed {
                    return Err(self.shared.overloaded(
                        py,
                        self.request.key.as_ref(),
                        Refusal::TimedOut,
                    ));
                }
            }
        }
    }

    /// Starts an asynchronous acquisition: an awaitable giving the lease.
    fn begin_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // Before the acquisition is spent: outside a loop it can still be used with `with`.
        static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let get_running_loop = GET_RUNNING_LOOP.get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
        })?;
        let event_loop = get_running_loop.bind(py).call0().map_err(|_| {
            PyRuntimeError::new_err(
                "`async with` / `await` on limiter.acquire() needs a running event loop; \
                     in synchronous code use `with limiter.acquire():`",
            )
        })?;
        self.start()?;
        // Free now: no future, no loop call (the common case, and ~3x cheaper).
        let cost = self.request.cost;
        if let Some(permit) = self
            .request
            .with_key(|key| self.shared.core.try_grant(key, cost))
        {
            let lease = self.lease(py, Ok(permit))?;
            *self.state.lock() = State::Holding(lease.clone_ref(py));
            return Ok(Bound::new(py, Ready::new(lease, py)?)?.into_any());
        }
        let future = event_loop.call_method0(intern!(py, "create_future"))?;
        let wake = Wake::Task {
            event_loop: event_loop.clone().unbind(),
            future: future.clone().unbind(),
            key: self.request.key_ref(py),
        };
        let (acquired, notices) = self.request.with_key(|key| {
            self.shared
                .core
                .acquire(key, self.request.cost, self.request.priority, Some(wake))
        });
        deliver(py, &self.shared, notices);
        match acquired {
            Acquired::Granted(permit) => {
                let lease = self.lease(py, Ok(permit))?;
                *self.state.lock() = State::Holding(lease.clone_ref(py));
                Ok(Bound::new(py, Ready::new(lease, py)?)?.into_any())
            }
            Acquired::Refused(refusal) => {
                Err(self
                    .shared
                    .overloaded(py, self.request.key.as_ref(), refusal))
            }
            Acquired::Queued(ticket) => {
                let timer = if self.shared.manual_clock() || ticket.deadline_ns == u64::MAX {
                    None
                } else {
                    let left = ticket.deadline_ns.saturating_sub(self.shared.core.now_ns());
                    let expire = Expire {
                        shared: self.shared.clone(),
                        ticket: ticket.clone(),
                        future: future.clone().unbind(),
                        key: self.request.key_ref(py),
                    };
                    let delay = left as f64 / NANOS_PER_SECOND as f64;
                    Some(
                        event_loop
                            .call_method1(intern!(py, "call_later"), (delay, expire))?
                            .unbind(),
                    )
                };
                let on_done = LeaveIfCancelled {
                    shared: self.shared.clone(),
                    ticket,
                    timer,
                };
                future.call_method1(intern!(py, "add_done_callback"), (on_done,))?;
                *self.state.lock() = State::Awaiting(future.clone().unbind());
                Ok(Bound::new(py, PendingLease::new(&future)?)?.into_any())
            }
        }
    }

    /// Releases what the block held (the lease itself, or the one its future gave).
    fn finish(&self, py: Python<'_>) -> PyResult<()> {
        let state = std::mem::replace(&mut *self.state.lock(), State::Entered);
        match state {
            State::Holding(lease) => {
                lease.get().release_now(py, false);
            }
            State::Awaiting(future) => {
                let future = future.bind(py);
                if future.call_method0(intern!(py, "done"))?.is_truthy()?
                    && !future.call_method0(intern!(py, "cancelled"))?.is_truthy()?
                {
                    if let Ok(result) = future.call_method0(intern!(py, "result")) {
                        if let Ok(lease) = result.cast::<Lease>() {
                            lease.get().release_now(py, false);
                        }
                    }
                }
            }
            State::Fresh | State::Entered => {}
        }
        Ok(())
    }
}

#[pymethods]
impl Acquisition {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Py<Lease>> {
        self.start()?;
        let waiter = Arc::new(ThreadWaiter::default());
        let wake = Wake::Thread(waiter.clone());
        let (acquired, notices) = self.request.with_key(|key| {
            self.shared
                .core
                .acquire(key, self.request.cost, self.request.priority, Some(wake))
        });
        deliver(py, &self.shared, notices);
        let lease = match acquired {
            Acquired::Granted(permit) => self.lease(py, Ok(permit))?,
            Acquired::Refused(refusal) => {
                return Err(self
                    .shared
                    .overloaded(py, self.request.key.as_ref(), refusal))
            }
            Acquired::Queued(ticket) => self.wait_in_thread(py, ticket, waiter)?,
        };
        *self.state.lock() = State::Holding(lease.clone_ref(py));
        Ok(lease)
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.finish(py)?;
        Ok(false)
    }

    fn __aenter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.begin_async(py)
    }

    #[pyo3(signature = (*_exc))]
    fn __aexit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<Ready> {
        self.finish(py)?;
        Ready::new(false, py)
    }

    /// `lease = await limiter.acquire(key)`: the lease is the caller's to release.
    fn __await__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let awaitable = self.begin_async(py)?;
        // The lease is the caller's now, not this object's.
        *self.state.lock() = State::Entered;
        if awaitable.is_instance_of::<Ready>() {
            return Ok(awaitable); // its own iterator
        }
        awaitable.call_method0(intern!(py, "__await__"))
    }
}

/// A queued task's deadline (real clock): leave the queue and fail its future.
#[pyclass(frozen, module = "rust_py_rate_limit._core")]
struct Expire {
    shared: Arc<Shared>,
    ticket: Ticket,
    future: Py<PyAny>,
    key: Option<Py<PyString>>,
}

#[pymethods]
impl Expire {
    fn __call__(&self, py: Python<'_>) -> PyResult<()> {
        let (removed, notices) = self.shared.core.cancel(&self.ticket, true);
        deliver(py, &self.shared, notices);
        let future = self.future.bind(py);
        if removed && !future.call_method0(intern!(py, "done"))?.is_truthy()? {
            let error = self
                .shared
                .overloaded(py, self.key.as_ref(), Refusal::TimedOut);
            future.call_method1(intern!(py, "set_exception"), (error.into_value(py),))?;
        }
        Ok(())
    }
}

/// Run when a queued task's future is done: a cancelled one leaves the queue (a permit
/// already on its way is handed back by `Resolve`); the deadline timer is no longer needed.
#[pyclass(frozen, module = "rust_py_rate_limit._core")]
struct LeaveIfCancelled {
    shared: Arc<Shared>,
    ticket: Ticket,
    timer: Option<Py<PyAny>>,
}

#[pymethods]
impl LeaveIfCancelled {
    fn __call__(&self, py: Python<'_>, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Some(timer) = &self.timer {
            timer.bind(py).call_method0(intern!(py, "cancel"))?;
        }
        if future.call_method0(intern!(py, "cancelled"))?.is_truthy()? {
            let (_, notices) = self.shared.core.cancel(&self.ticket, false);
            deliver(py, &self.shared, notices);
        }
        Ok(())
    }
}
