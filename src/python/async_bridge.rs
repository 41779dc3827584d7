//! Delivering Redis answers to asyncio without taking the GIL on tokio's threads.
//!
//! The obvious bridge (pyo3-async-runtimes' `future_into_py`) has each finished round trip
//! take the GIL on a tokio thread to schedule its future's result: with the event loop
//! holding the GIL, every answer waits for a GIL hand-over, which caps throughput far below
//! what Redis serves. Here a finished round trip only pushes its answer onto a queue and, if
//! the queue was empty, writes one byte to a socket pair. The event loop watches the other
//! end (`loop.add_reader`) and, on its own thread with the GIL it already holds, resolves
//! every queued future at once.
//!
//! One bridge per event loop (kept while the loop lives). A loop without `add_reader` (the
//! Windows proactor loop) gets `None`, and the caller uses `future_into_py` instead.

use pyo3::prelude::*;

use crate::decision::Decision;

#[cfg(unix)]
pub use unix::future_and_completer;

/// Without Unix sockets (Windows) there is no bridge: callers use `future_into_py`.
#[cfg(not(unix))]
pub fn future_and_completer<'py>(
    _py: Python<'py>,
    _convert: Convert,
) -> PyResult<Option<(Bound<'py, PyAny>, Completer)>> {
    Ok(None)
}

/// Never built without Unix sockets.
#[cfg(not(unix))]
pub struct Completer(std::convert::Infallible);

#[cfg(not(unix))]
impl Completer {
    pub fn complete(self, _answer: PyResult<Answer>) {}
}

/// What a round trip answers.
pub enum Answer {
    Decision(Decision),
    Bool(bool),
}

/// Turns an answer into the Python value the awaiting code gets (under the GIL).
pub type Convert = fn(Python<'_>, Answer) -> PyResult<Py<PyAny>>;

#[cfg(unix)]
mod unix {
    use std::collections::HashMap;
    use std::io::{ErrorKind, Read, Write};
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    use parking_lot::Mutex;
    use pyo3::exceptions::PyNotImplementedError;
    use pyo3::prelude::*;
    use pyo3::sync::PyOnceLock;
    use pyo3::types::PyWeakrefReference;

    use super::{Answer, Convert};

    struct Inner {
        reader: UnixStream,
        writer: UnixStream,
        /// Set while a wake-up byte is on its way and the queue not yet drained.
        signaled: AtomicBool,
        done: Mutex<Vec<(u64, PyResult<Answer>)>>,
        pending: Mutex<HashMap<u64, (Py<PyAny>, Convert)>>,
        next_id: AtomicU64,
    }

    /// The completion side handed to a tokio task.
    #[derive(Clone)]
    pub struct Completer {
        inner: Arc<Inner>,
        id: u64,
    }

    impl Completer {
        /// Queues the answer and wakes the event loop if it is not already awake; no GIL.
        pub fn complete(self, answer: PyResult<Answer>) {
            self.inner.done.lock().push((self.id, answer));
            if !self.inner.signaled.swap(true, Ordering::AcqRel) {
                // A full socket buffer means a wake-up is already pending: nothing is lost.
                let _ = (&self.inner.writer).write(&[1]);
            }
        }
    }

    /// The event loop's side: its reader callback is [`Bridge::drain`].
    #[pyclass(frozen, name = "_AsyncBridge", module = "rust_py_rate_limit._core")]
    pub struct Bridge {
        inner: Arc<Inner>,
    }

    #[pymethods]
    impl Bridge {
        /// Resolves every queued future (the loop calls this when the socket is readable).
        fn drain(&self, py: Python<'_>) -> PyResult<()> {
            let inner = &self.inner;
            // The order matters: consume the wake-up bytes, then clear the flag, then take the
            // queue. An answer queued after the flag is cleared writes a new byte; one queued
            // before it is in the queue taken below. (Clearing first could let a byte written
            // just after be consumed here while its flag stays set: a later answer would then
            // never wake the loop.)
            let mut sink = [0u8; 256];
            loop {
                match (&inner.reader).read(&mut sink) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            inner.signaled.store(false, Ordering::Release);
            let done = std::mem::take(&mut *inner.done.lock());
            for (id, answer) in done {
                let Some((future, convert)) = inner.pending.lock().remove(&id) else {
                    continue;
                };
                let future = future.bind(py);
                if future.call_method0("cancelled")?.is_truthy()? {
                    continue;
                }
                match answer.and_then(|a| convert(py, a)) {
                    Ok(value) => future.call_method1("set_result", (value,))?,
                    Err(error) => future.call_method1("set_exception", (error.value(py),))?,
                };
            }
            Ok(())
        }
    }

    impl Bridge {
        fn new() -> std::io::Result<Self> {
            let (reader, writer) = UnixStream::pair()?;
            reader.set_nonblocking(true)?;
            writer.set_nonblocking(true)?;
            Ok(Bridge {
                inner: Arc::new(Inner {
                    reader,
                    writer,
                    signaled: AtomicBool::new(false),
                    done: Mutex::new(Vec::new()),
                    pending: Mutex::new(HashMap::new()),
                    next_id: AtomicU64::new(0),
                }),
            })
        }

        /// Registers `future`, to be resolved with `convert(answer)` by the completer.
        fn register(&self, future: Py<PyAny>, convert: Convert) -> Completer {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            self.inner.pending.lock().insert(id, (future, convert));
            Completer {
                inner: self.inner.clone(),
                id,
            }
        }
    }

    /// The bridges of the event loops seen so far, by a weak reference to their loop.
    type Registry = Mutex<Vec<(Py<PyWeakrefReference>, Py<Bridge>)>>;

    fn registry() -> &'static Registry {
        static BRIDGES: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
        BRIDGES.get_or_init(|| Mutex::new(Vec::new()))
    }

    fn get_running_loop(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
        static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        GET_RUNNING_LOOP
            .get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import("asyncio")?.getattr("get_running_loop")?.unbind())
            })?
            .bind(py)
            .call0()
    }

    /// A new future of the running loop and the completer that resolves it; `None` when the
    /// loop cannot watch a socket (then the caller bridges another way).
    pub fn future_and_completer<'py>(
        py: Python<'py>,
        convert: Convert,
    ) -> PyResult<Option<(Bound<'py, PyAny>, Completer)>> {
        let event_loop = get_running_loop(py)?;
        let bridge = {
            let mut bridges = registry().lock();
            bridges.retain(|(loop_ref, _)| loop_ref.bind(py).upgrade().is_some());
            let found = bridges
                .iter()
                .find(|(loop_ref, _)| {
                    loop_ref
                        .bind(py)
                        .upgrade()
                        .is_some_and(|l| l.is(&event_loop))
                })
                .map(|(_, bridge)| bridge.clone_ref(py));
            match found {
                Some(bridge) => bridge,
                None => {
                    // A loop that cannot be weakly referenced or cannot watch a socket is bridged
                    // the other way by the caller.
                    let Ok(loop_ref) = PyWeakrefReference::new(&event_loop) else {
                        return Ok(None);
                    };
                    let bridge = Bridge::new().map_err(PyErr::from)?;
                    let fd = bridge.inner.reader.as_raw_fd();
                    let bridge = Py::new(py, bridge)?;
                    let drain = bridge.bind(py).getattr("drain")?;
                    match event_loop.call_method1("add_reader", (fd, drain)) {
                        Ok(_) => {}
                        Err(e) if e.is_instance_of::<PyNotImplementedError>(py) => return Ok(None),
                        Err(e) => return Err(e),
                    }
                    bridges.push((loop_ref.unbind(), bridge.clone_ref(py)));
                    bridge
                }
            }
        };
        let future = event_loop.call_method0("create_future")?;
        let completer = bridge.get().register(future.clone().unbind(), convert);
        Ok(Some((future, completer)))
    }
}
