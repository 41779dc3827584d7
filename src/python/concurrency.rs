//! `ConcurrencyLimiter`: the Python face of [`crate::concurrency::ConcurrencyLimiter`]; its
//! settings, checked by name, and what the limiter and its leases share.

use std::sync::{Arc, Weak};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};

use super::acquisition::Acquisition;
use super::args;
use super::clock::clock_setting;
use super::histogram::histogram_dict;
use super::lease::Lease;
use super::waiting::{deliver, Wake};
use crate::clock::{AdvanceListener, Clock};
use crate::concurrency::adaptive::{AdaptiveConfig, AdaptiveKind};
use crate::concurrency::{
    Acquired, ConcurrencyConfig, ConcurrencyLimiter, LimitSetting, Order, Refusal, MAX_LIMIT,
};
use crate::rate::NANOS_PER_SECOND;

/// What the limiter, its leases and its waiters' callbacks share.
pub struct Shared {
    pub core: ConcurrencyLimiter<Wake>,
    /// Kept alive here: a `ManualClock` holds it weakly and calls it on each advance.
    _expiry: Option<Arc<AdvanceListener>>,
}

impl Shared {
    pub fn manual_clock(&self) -> bool {
        matches!(self.core.clock(), Clock::Manual(_))
    }

    /// The `Overloaded` error for a caller refused for `refusal`.
    pub fn overloaded(
        &self,
        py: Python<'_>,
        key: Option<&Py<PyString>>,
        refusal: Refusal,
    ) -> PyErr {
        match self.overloaded_error(py, key, refusal) {
            Ok(error) => error,
            Err(error) => error,
        }
    }

    fn overloaded_error(
        &self,
        py: Python<'_>,
        key: Option<&Py<PyString>>,
        refusal: Refusal,
    ) -> PyResult<PyErr> {
        static OVERLOADED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let class = OVERLOADED.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py
                .import("rust_py_rate_limit.exceptions")?
                .getattr("Overloaded")?
                .unbind())
        })?;
        // The key's bytes as the acquisition made them (a str with lone surrogates included).
        let key_bytes = match key {
            Some(key) => Some(args::with_key(key.bind(py), <[u8]>::to_vec)?),
            None => None,
        };
        let key_bytes = key_bytes.as_deref();
        let (in_flight, queued) = self.core.counts(key_bytes);
        let kwargs = PyDict::new(py);
        kwargs.set_item("limit", self.core.limit(key_bytes))?;
        kwargs.set_item("reason", refusal.name())?;
        kwargs.set_item("in_flight", in_flight)?;
        kwargs.set_item("queued", queued)?;
        kwargs.set_item(
            "retry_after",
            self.core.mean_hold_ns() as f64 / NANOS_PER_SECOND as f64,
        )?;
        let error = class.bind(py).call((key,), Some(&kwargs))?;
        Ok(PyErr::from_value(error))
    }
}

/// How many callers may hold a permit at once, with a bounded wait queue.
#[pyclass(
    frozen,
    name = "ConcurrencyLimiter",
    module = "rust_py_rate_limit._core"
)]
pub struct PyConcurrencyLimiter {
    shared: Arc<Shared>,
    /// `name=`, or one derived from the limit (`"concurrency:4"`, `"concurrency:auto"`).
    name: String,
    /// Whether `name=` was given (then `repr` shows it).
    named: bool,
}

/// An int `>= min` (not a bool) no larger than `max`.
fn int_in(value: &Bound<'_, PyAny>, name: &str, min: i64, max: i64) -> PyResult<i64> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "`{name}` must be an int, not {} ({})",
            args::type_name(value),
            value.repr()?
        )));
    }
    match value.extract::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(PyValueError::new_err(format!(
            "`{name}` must be between {min} and {max}, got {}",
            value.repr()?
        ))),
    }
}

/// The adaptive settings as given (all optional).
struct AdaptiveArgs<'a, 'py> {
    adaptive: Option<&'a Bound<'py, PyAny>>,
    initial_limit: Option<&'a Bound<'py, PyAny>>,
    min_limit: Option<&'a Bound<'py, PyAny>>,
    max_limit: Option<&'a Bound<'py, PyAny>>,
    tolerance: Option<&'a Bound<'py, PyAny>>,
    probe_limit: Option<&'a Bound<'py, PyAny>>,
}

fn limit_setting(limit: &Bound<'_, PyAny>, given: AdaptiveArgs<'_, '_>) -> PyResult<LimitSetting> {
    let AdaptiveArgs {
        adaptive,
        initial_limit,
        min_limit,
        max_limit,
        tolerance,
        probe_limit,
    } = given;
    let is_auto = limit
        .cast::<PyString>()
        .is_ok_and(|s| s.to_str().is_ok_and(|s| s == "auto"));
    if !is_auto {
        if limit.is_instance_of::<PyString>() {
            return Err(PyValueError::new_err(format!(
                "`limit` must be an int >= 1 or 'auto', got {}",
                limit.repr()?
            )));
        }
        let given = [
            ("adaptive", adaptive),
            ("initial_limit", initial_limit),
            ("min_limit", min_limit),
            ("max_limit", max_limit),
            ("tolerance", tolerance),
            ("probe_limit", probe_limit),
        ];
        if let Some((name, _)) = given.iter().find(|(_, value)| value.is_some()) {
            return Err(PyValueError::new_err(format!(
                "`{name}` applies only to limit='auto'; got limit={}",
                limit.repr()?
            )));
        }
        let limit = int_in(limit, "limit", 1, i64::from(MAX_LIMIT))?;
        return Ok(LimitSetting::Fixed(limit as u32));
    }
    let kind = match adaptive {
        None => AdaptiveKind::Gradient,
        Some(kind) => AdaptiveKind::parse(&args::choice(kind, "adaptive", "'gradient' or 'aimd'")?)
            .map_err(|e| PyValueError::new_err(e.to_string()))?,
    };
    let mut config = AdaptiveConfig::new(kind);
    let bounds = [
        ("initial_limit", initial_limit, &mut config.initial_limit),
        ("min_limit", min_limit, &mut config.min_limit),
        ("max_limit", max_limit, &mut config.max_limit),
        ("probe_limit", probe_limit, &mut config.probe_limit),
    ];
    for (name, value, field) in bounds {
        if let Some(value) = value {
            *field = int_in(value, name, 1, i64::from(MAX_LIMIT))? as u32;
        }
    }
    if let Some(value) = tolerance {
        if value.is_instance_of::<PyBool>()
            || !(value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>())
        {
            return Err(PyTypeError::new_err(format!(
                "`tolerance` must be a number, not {} ({})",
                args::type_name(value),
                value.repr()?
            )));
        }
        config.tolerance = value.extract::<f64>()?;
    }
    config
        .validate()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(LimitSetting::Adaptive(config))
}

/// A key's bytes (see [`args::with_key`]); anything but a `str` is a `TypeError` naming it.
fn key_bytes<R>(key: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    if !key.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "`key` must be a str or None, not {} ({})",
            args::type_name(key),
            key.repr()?
        )));
    }
    args::with_key(key, f)
}

/// `queue_timeout`: seconds >= 0, or `math.inf` to wait until served.
fn queue_timeout(value: &Bound<'_, PyAny>) -> PyResult<Option<u64>> {
    if let Ok(float) = value.cast::<PyFloat>() {
        if float.value() == f64::INFINITY {
            return Ok(None);
        }
    }
    Ok(Some(args::seconds(value, "queue_timeout", true)?.1))
}

#[pymethods]
impl PyConcurrencyLimiter {
    #[new]
    #[pyo3(signature = (limit, *, queue=None, queue_timeout=None, order=None, max_keys=None, clock=None, adaptive=None, initial_limit=None, min_limit=None, max_limit=None, tolerance=None, probe_limit=None, name=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        limit: &Bound<'_, PyAny>,
        queue: Option<&Bound<'_, PyAny>>,
        queue_timeout: Option<&Bound<'_, PyAny>>,
        order: Option<&Bound<'_, PyAny>>,
        max_keys: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
        adaptive: Option<&Bound<'_, PyAny>>,
        initial_limit: Option<&Bound<'_, PyAny>>,
        min_limit: Option<&Bound<'_, PyAny>>,
        max_limit: Option<&Bound<'_, PyAny>>,
        tolerance: Option<&Bound<'_, PyAny>>,
        probe_limit: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let given_name = args::name_setting(name)?;
        let adaptive_args = AdaptiveArgs {
            adaptive,
            initial_limit,
            min_limit,
            max_limit,
            tolerance,
            probe_limit,
        };
        let limit = limit_setting(limit, adaptive_args)?;
        let queue = match queue {
            Some(queue) => int_in(queue, "queue", 0, i64::from(u32::MAX))? as u32,
            None => 0,
        };
        let queue_timeout_ns = match queue_timeout {
            Some(value) => self::queue_timeout(value)?,
            None => Some(0),
        };
        if queue > 0 && queue_timeout_ns == Some(0) {
            return Err(PyValueError::new_err(format!(
                "`queue={queue}` needs a `queue_timeout` > 0: with 0 a waiter would time out at \
                 once; give the longest wait in seconds, or math.inf to wait until served"
            )));
        }
        let order = match order {
            None => Order::Fifo,
            Some(order) => Order::parse(&args::choice(order, "order", "'fifo' or 'lifo'")?)
                .map_err(PyValueError::new_err)?,
        };
        let max_keys = match max_keys.filter(|value| !value.is_none()) {
            Some(value) => {
                Some(args::positive_int(value, "max_keys", u64::from(u32::MAX))? as usize)
            }
            None => None,
        };
        let clock = clock_setting(clock)?;
        let named = given_name.is_some();
        let name = given_name.unwrap_or_else(|| match &limit {
            LimitSetting::Fixed(limit) => format!("concurrency:{limit}"),
            LimitSetting::Adaptive(_) => "concurrency:auto".to_string(),
        });
        let config = ConcurrencyConfig {
            limit,
            queue,
            queue_timeout_ns,
            order,
            max_keys,
        };
        let core = ConcurrencyLimiter::new(config, clock.clone())
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let expiry = match &clock {
                Clock::Manual(manual) => {
                    let weak = weak.clone();
                    let listener: Arc<AdvanceListener> = Arc::new(move |now_ns| {
                        if let Some(shared) = weak.upgrade() {
                            let notices = shared.core.expire(now_ns);
                            if !notices.is_empty() {
                                Python::attach(|py| deliver(py, &shared, notices));
                            }
                        }
                    });
                    manual.subscribe(&listener);
                    Some(listener)
                }
                _ => None,
            };
            Shared {
                core,
                _expiry: expiry,
            }
        });
        Ok(PyConcurrencyLimiter {
            shared,
            name,
            named,
        })
    }

    /// Takes `cost` permits now if they are free and nobody waits, else returns None.
    #[pyo3(signature = (key=None, cost=None, *, priority=None))]
    fn try_acquire(
        &self,
        py: Python<'_>,
        key: Option<&Bound<'_, PyAny>>,
        cost: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Lease>> {
        let request = Request::parse(&self.shared, key, cost, priority)?;
        let (acquired, notices) = request.with_key(|key| {
            self.shared
                .core
                .acquire(key, request.cost, request.priority, None)
        });
        deliver(py, &self.shared, notices);
        match acquired {
            Acquired::Granted(permit) => {
                Ok(Some(Lease::new(self.shared.clone(), permit, request.key)))
            }
            Acquired::Refused(Refusal::TooManyKeys) => {
                Err(self
                    .shared
                    .overloaded(py, request.key.as_ref(), Refusal::TooManyKeys))
            }
            _ => Ok(None),
        }
    }

    /// One permit for `key` (None: unkeyed) if it is free now and nobody waits, else None;
    /// records nothing when it gives none (for the middlewares' fast path: an `acquire` after
    /// it gives the answer that counts). Not public API.
    #[pyo3(signature = (key, /))]
    fn _try_grant(&self, key: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Lease>> {
        let request = Request::parse(&self.shared, key, None, None)?;
        let permit = request.with_key(|key| self.shared.core.try_grant(key, 1));
        Ok(permit.map(|permit| Lease::new(self.shared.clone(), permit, request.key)))
    }

    /// Permits for a `with` or `async with` block (or `await`): at once, after a wait in the
    /// queue, or `Overloaded`.
    #[pyo3(signature = (key=None, cost=None, *, priority=None))]
    fn acquire(
        &self,
        key: Option<&Bound<'_, PyAny>>,
        cost: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Acquisition> {
        let request = Request::parse(&self.shared, key, cost, priority)?;
        Ok(Acquisition::new(self.shared.clone(), request))
    }

    /// The limiter's name: `name=`, or one made from its limit (`"concurrency:4"`,
    /// `"concurrency:auto"`).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The limit now (an adaptive one moves); for a key, that key's.
    #[getter]
    fn limit(&self) -> u32 {
        self.shared.core.limit(None)
    }

    /// Permits held now, over all keys.
    #[getter]
    fn in_flight(&self) -> u64 {
        self.shared.core.stats().in_flight
    }

    /// Callers waiting now, over all keys.
    #[getter]
    fn queued(&self) -> u64 {
        self.shared.core.stats().queued
    }

    /// The limit, permits held and callers waiting for one key (or the unkeyed slot).
    #[pyo3(signature = (key=None))]
    fn status<'py>(
        &self,
        py: Python<'py>,
        key: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let key = key.filter(|k| !k.is_none());
        let (limit, (in_flight, queued)) = match key {
            Some(key) => key_bytes(key, |key| {
                (
                    self.shared.core.limit(Some(key)),
                    self.shared.core.counts(Some(key)),
                )
            })?,
            None => (self.shared.core.limit(None), self.shared.core.counts(None)),
        };
        let status = PyDict::new(py);
        status.set_item("limit", limit)?;
        status.set_item("in_flight", in_flight)?;
        status.set_item("queued", queued)?;
        Ok(status)
    }

    /// The name, totals since creation (acquired, rejected and its four reasons, timed_out,
    /// cancelled, deadline_missed, queued_total, max_in_flight_seen) and the counts now
    /// (in_flight, queued, active_keys).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = PyDict::new(py);
        stats.set_item("name", &self.name)?;
        for (name, value) in self.shared.core.stats().fields() {
            stats.set_item(name, value)?;
        }
        Ok(stats)
    }

    /// Counts a permit whose holder missed its deadline (the overload layers' `timeout`).
    fn _note_deadline_missed(&self) {
        self.shared.core.note_deadline_missed();
    }

    /// How long the callers that queued waited until they got their permits, as a histogram
    /// (the shape of `RateLimiter.storage_latency()`), on the limiter's clock. Callers that
    /// left the queue without permits (timed out, shed, cancelled) are counted in `stats()`,
    /// not here.
    fn queue_time<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        histogram_dict(py, &self.shared.core.queue_time())
    }

    /// How long permits were held, from grant to release, as a histogram, on the limiter's
    /// clock.
    fn lease_duration<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        histogram_dict(py, &self.shared.core.lease_duration())
    }

    #[getter]
    fn queue(&self) -> u32 {
        self.shared.core.config().queue
    }

    /// Seconds a caller may wait (`math.inf`: until served).
    #[getter]
    fn queue_timeout(&self) -> f64 {
        match self.shared.core.config().queue_timeout_ns {
            Some(ns) => ns as f64 / NANOS_PER_SECOND as f64,
            None => f64::INFINITY,
        }
    }

    #[getter]
    fn order(&self) -> &'static str {
        self.shared.core.config().order.name()
    }

    /// `None` for a fixed limit, else the algorithm's name.
    #[getter]
    fn adaptive(&self) -> Option<&'static str> {
        match &self.shared.core.config().limit {
            LimitSetting::Fixed(_) => None,
            LimitSetting::Adaptive(config) => Some(config.kind.name()),
        }
    }

    fn __repr__(&self) -> String {
        let config = self.shared.core.config();
        let limit = match &config.limit {
            LimitSetting::Fixed(limit) => limit.to_string(),
            LimitSetting::Adaptive(adaptive) => {
                format!(
                    "'auto' (now {}, {})",
                    self.shared.core.limit(None),
                    adaptive.kind.name()
                )
            }
        };
        let name = if self.named {
            format!(", name={:?}", self.name)
        } else {
            String::new()
        };
        format!(
            "ConcurrencyLimiter(limit={limit}, queue={}, queue_timeout={}, order='{}'{name})",
            config.queue,
            self.queue_timeout(),
            config.order.name()
        )
    }
}

/// One acquisition's arguments, checked.
pub struct Request {
    pub key: Option<Py<PyString>>,
    key_bytes: Option<Vec<u8>>,
    pub cost: u32,
    pub priority: i32,
}

impl Request {
    fn parse(
        shared: &Shared,
        key: Option<&Bound<'_, PyAny>>,
        cost: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let key = key.filter(|k| !k.is_none());
        let key_bytes = key.map(|key| key_bytes(key, <[u8]>::to_vec)).transpose()?;
        let max_cost = shared.core.config().limit.max_cost();
        let cost = match cost {
            None => 1,
            Some(cost) => {
                if cost.is_instance_of::<PyInt>() && !cost.is_instance_of::<PyBool>() {
                    let n = cost.extract::<i64>().unwrap_or(i64::MAX);
                    if n > i64::from(max_cost) {
                        return Err(PyValueError::new_err(format!(
                            "`cost` must be at most the limit ({max_cost}), got {n}"
                        )));
                    }
                }
                int_in(cost, "cost", 1, i64::from(max_cost))? as u32
            }
        };
        let priority = match priority {
            None => 0,
            Some(priority) => int_in(
                priority,
                "priority",
                i64::from(i32::MIN),
                i64::from(i32::MAX),
            )? as i32,
        };
        Ok(Request {
            key: key.map(|key| {
                key.cast::<PyString>()
                    .expect("checked by key_bytes")
                    .clone()
                    .unbind()
            }),
            key_bytes,
            cost,
            priority,
        })
    }

    pub fn with_key<R>(&self, f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        f(self.key_bytes.as_deref())
    }

    pub fn key_ref(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.key.as_ref().map(|key| key.clone_ref(py))
    }
}
