//! `TokenBucket`, `FixedWindow`, `SlidingWindow` and `Gcra`: the unkeyed limiters
//! ([`crate::unkeyed`]) as Python classes. One macro writes the methods they share; each
//! class has its own constructor, with the argument names users of unkeyed limiters know.
//!
//! `process()` and `allow()` keep the GIL: a decision is one compare-and-swap. Waiting
//! (`acquire`, `aacquire`, `throttle`) is Python, in `rust_py_rate_limit._waiting`, over
//! `_reserve` and `_refund` here.

use std::time::Duration;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::args::{self, Seconds};
use super::clock::{clock_setting, manual_clock, PyManualClock};
use super::decision::PyDecision;
use crate::clock::{Clock, MAX_NS};
use crate::config::{ConfigError, MAX_COUNT};
use crate::decision::NEVER;
use crate::rate::NANOS_PER_SECOND;
use crate::unkeyed::{FixedWindow, Gcra, SlidingWindow, Strategy, TokenBucket};

fn config_error(e: ConfigError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// A bucket's refused setting, named as the Python constructor names it.
fn period_error(mut e: ConfigError) -> PyErr {
    if e.param == "period" {
        e.param = "period_secs";
    }
    config_error(e)
}

/// `(seconds as given, nanoseconds)` of a period argument.
fn period(value: &Bound<'_, PyAny>, name: &str) -> PyResult<(Seconds, u64)> {
    args::seconds(value, name, false)
}

/// The reservation step of `_waiting.py`: `(status, seconds, Decision)` with status 0
/// (admitted now), 1 (reserved: go in `seconds`) or 2 (refused: retry in `seconds`, `inf` for
/// never). `max_wait` is seconds or None.
pub fn reserve_step(
    strategy: impl FnOnce(u64) -> crate::unkeyed::Reservation,
    max_wait: Option<&Bound<'_, PyAny>>,
) -> PyResult<(u8, f64, PyDecision)> {
    let max_wait_ns = match max_wait.filter(|m| !m.is_none()) {
        None => u64::MAX,
        Some(m) => args::seconds(m, "timeout", true).map_or(MAX_NS, |(_, ns)| ns),
    };
    let reservation = strategy(max_wait_ns);
    let decision = reservation.decision;
    let seconds = |ns: u64| {
        if ns == NEVER {
            f64::INFINITY
        } else {
            ns as f64 / NANOS_PER_SECOND as f64
        }
    };
    Ok(match (decision.allowed, reservation.wait_ns) {
        (true, 0) => (0, 0.0, decision.into()),
        (true, wait) => (1, seconds(wait), decision.into()),
        (false, _) => (2, seconds(decision.retry_after_ns), decision.into()),
    })
}

macro_rules! unkeyed_class {
    ($class:ident, $name:literal, $inner:ty, $capacity:ident, { $($new:tt)* }) => {
        #[pyclass(frozen, name = $name, module = "rust_py_rate_limit._core")]
        pub struct $class {
            inner: $inner,
            /// The constructor's arguments as given, for `repr`.
            settings: String,
            $capacity: u64,
            /// `name=`, or one made from the settings (`"token_bucket:1/5s,capacity=2"`).
            name: String,
            /// Whether `name=` was given (then `repr` shows it).
            named: bool,
        }

        #[pymethods]
        impl $class {
            $($new)*

            /// Whether one request goes now (consuming it).
            // pyo3's wrapper, not a hand-written method as `allow` is: one was tried and
            // measured no faster (32.1 against 32.3 ns, the clock read and the swap dominate;
            // see docs/DESIGN.md).
            fn process(&self) -> bool {
                self.inner.decide(1).allowed
            }

            /// Whether a request of `cost` goes now (consuming it when it does).
            #[pyo3(signature = (cost=None))]
            fn allow(&self, cost: Option<&Bound<'_, PyAny>>) -> PyResult<bool> {
                Ok(self.inner.decide(args::cost(cost)?).allowed)
            }

            /// The decision on a request of `cost` now, as a `Decision`.
            #[pyo3(signature = (cost=None))]
            fn decide(&self, cost: Option<&Bound<'_, PyAny>>) -> PyResult<PyDecision> {
                Ok(self.inner.decide(args::cost(cost)?).into())
            }

            /// The `Decision` that `decide(cost)` would return now, consuming nothing.
            #[pyo3(signature = (cost=None))]
            fn peek(&self, cost: Option<&Bound<'_, PyAny>>) -> PyResult<PyDecision> {
                Ok(self.inner.preview(args::cost(cost)?).into())
            }

            /// Requests of cost 1 that would go now.
            fn remaining(&self) -> u64 {
                self.inner.peek().remaining
            }

            /// Full again, as if never used.
            fn reset(&self) {
                self.inner.reset()
            }

            #[pyo3(signature = (cost, max_wait))]
            fn _reserve(
                &self,
                cost: Option<&Bound<'_, PyAny>>,
                max_wait: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<(u8, f64, PyDecision)> {
                let cost = args::cost(cost)?;
                let now = self.inner.clock().now_ns();
                reserve_step(|max| self.inner.reserve_at(cost, now, max), max_wait)
            }

            #[pyo3(signature = (cost))]
            fn _refund(&self, cost: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
                self.inner.refund(args::cost(cost)?);
                Ok(())
            }

            fn _clock(&self, py: Python<'_>) -> PyResult<Option<Py<PyManualClock>>> {
                manual_clock(py, self.inner.clock())
            }

            #[getter]
            fn $capacity(&self) -> u64 {
                self.$capacity
            }

            /// The limiter's name: `name=`, or one made from its settings.
            #[getter]
            fn name(&self) -> &str {
                &self.name
            }

            fn __repr__(&self) -> String {
                let name = if self.named {
                    format!(", name={:?}", self.name)
                } else {
                    String::new()
                };
                format!("{}({}{name})", $name, self.settings)
            }
        }
    };
}

/// An int argument of at most [`MAX_COUNT`], named as the constructor names it.
fn count(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    args::positive_int(value, name, MAX_COUNT)
}

/// `(name, whether given)`: `name=` checked, or `default()`.
fn naming(
    name: Option<&Bound<'_, PyAny>>,
    default: impl FnOnce() -> String,
) -> PyResult<(String, bool)> {
    Ok(match args::name_setting(name)? {
        Some(given) => (given, true),
        None => (default(), false),
    })
}

fn clock_repr(clock: Option<&Bound<'_, PyAny>>) -> String {
    match clock.filter(|c| !c.is_none()) {
        Some(_) => ", clock=ManualClock(...)".into(),
        None => String::new(),
    }
}

unkeyed_class!(PyTokenBucket, "TokenBucket", TokenBucket, capacity, {
    /// `capacity` tokens, refilled continuously at `increment` tokens every `period_secs`
    /// seconds, starting full.
    #[new]
    #[pyo3(signature = (capacity, increment, period_secs, *, clock=None, name=None))]
    fn new(
        capacity: &Bound<'_, PyAny>,
        increment: &Bound<'_, PyAny>,
        period_secs: &Bound<'_, PyAny>,
        clock: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let capacity = count(capacity, "capacity")?;
        let increment = count(increment, "increment")?;
        let (given, ns) = period(period_secs, "period_secs")?;
        let inner = TokenBucket::new(capacity, increment, Duration::from_nanos(ns))
            .map_err(period_error)?
            .with_clock(clock_setting(clock)?);
        let (name, named) = naming(name, || {
            format!("token_bucket:{increment}/{given}s,capacity={capacity}")
        })?;
        Ok(PyTokenBucket {
            inner,
            name,
            named,
            settings: format!(
                "capacity={capacity}, increment={increment}, period_secs={given}{}",
                clock_repr(clock)
            ),
            capacity,
        })
    }
});

unkeyed_class!(PyGcra, "Gcra", Gcra, limit, {
    /// `limit` requests every `period_secs` seconds, evenly spaced, in bursts of up to
    /// `burst` (the limit when None).
    #[new]
    #[pyo3(signature = (limit, period_secs, burst=None, *, clock=None, name=None))]
    fn new(
        limit: &Bound<'_, PyAny>,
        period_secs: &Bound<'_, PyAny>,
        burst: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let limit = count(limit, "limit")?;
        let (given, ns) = period(period_secs, "period_secs")?;
        let burst = match burst.filter(|b| !b.is_none()) {
            Some(burst) => Some(count(burst, "burst")?),
            None => None,
        };
        let inner = Gcra::new(limit, Duration::from_nanos(ns), burst)
            .map_err(period_error)?
            .with_clock(clock_setting(clock)?);
        let burst_text = burst.map(|b| format!(", burst={b}")).unwrap_or_default();
        let (name, named) = naming(name, || {
            let burst = burst.map(|b| format!(",burst={b}")).unwrap_or_default();
            format!("gcra:{limit}/{given}s{burst}")
        })?;
        Ok(PyGcra {
            inner,
            name,
            named,
            settings: format!(
                "limit={limit}, period_secs={given}{burst_text}{}",
                clock_repr(clock)
            ),
            limit,
        })
    }
});

/// A window class's limiter, its `repr` arguments, its capacity and its name (`kind`, then
/// the rate: `"fixed:100/60s"`), from the constructor's arguments (`build` and `with_clock`
/// are the Rust type's).
fn window<T>(
    capacity: &Bound<'_, PyAny>,
    interval_secs: &Bound<'_, PyAny>,
    clock: Option<&Bound<'_, PyAny>>,
    name: Option<&Bound<'_, PyAny>>,
    kind: &str,
    build: fn(u64, Duration) -> Result<T, ConfigError>,
    with_clock: fn(T, Clock) -> T,
) -> PyResult<(T, String, u64, (String, bool))> {
    let capacity = count(capacity, "capacity")?;
    let (given, ns) = period(interval_secs, "interval_secs")?;
    let inner = build(capacity, Duration::from_nanos(ns)).map_err(config_error)?;
    let settings = format!(
        "capacity={capacity}, interval_secs={given}{}",
        clock_repr(clock)
    );
    let naming = naming(name, || format!("{kind}:{capacity}/{given}s"))?;
    Ok((
        with_clock(inner, clock_setting(clock)?),
        settings,
        capacity,
        naming,
    ))
}

unkeyed_class!(PyFixedWindow, "FixedWindow", FixedWindow, capacity, {
    /// Up to `capacity` requests per window of `interval_secs` seconds (a window starts at
    /// the first request after the last one ended).
    #[new]
    #[pyo3(signature = (capacity, interval_secs, *, clock=None, name=None))]
    fn new(
        capacity: &Bound<'_, PyAny>,
        interval_secs: &Bound<'_, PyAny>,
        clock: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let (inner, settings, capacity, (name, named)) = window(
            capacity,
            interval_secs,
            clock,
            name,
            "fixed",
            FixedWindow::new,
            FixedWindow::with_clock,
        )?;
        Ok(PyFixedWindow {
            inner,
            settings,
            capacity,
            name,
            named,
        })
    }
});

unkeyed_class!(PySlidingWindow, "SlidingWindow", SlidingWindow, capacity, {
    /// Up to `capacity` requests in any sliding `interval_secs` seconds (the previous
    /// window's count weighted by how much of it the sliding window still covers).
    #[new]
    #[pyo3(signature = (capacity, interval_secs, *, clock=None, name=None))]
    fn new(
        capacity: &Bound<'_, PyAny>,
        interval_secs: &Bound<'_, PyAny>,
        clock: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let (inner, settings, capacity, (name, named)) = window(
            capacity,
            interval_secs,
            clock,
            name,
            "sliding",
            SlidingWindow::new,
            SlidingWindow::with_clock,
        )?;
        Ok(PySlidingWindow {
            inner,
            settings,
            capacity,
            name,
            named,
        })
    }
});
