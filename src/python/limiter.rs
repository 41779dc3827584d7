//! `RateLimiter`: the Python face of [`Limiter`].
//!
//! GIL policy (measured, see docs/DESIGN.md): `allow`/`check`/`decide` keep the GIL, because
//! detaching around a ~50 ns map operation costs more than it saves; the sweeps over the
//! whole map (`cleanup_expired`, the background sweeper) run without it.

use std::sync::Arc;
use std::time::Duration;

use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple, PyType};

use super::args::{self, Seconds};
use super::async_bridge::{Answer, Convert};
use super::clock::{clock_setting, manual_clock, PyManualClock};
use super::decision::{decision_dict, PyDecision};
use super::ready::Ready;
use super::shared_storage::{on_full_setting, region_error, shared_limiter, shared_url};
use super::storage::{RedisSide, StorageOptions};
use super::unkeyed::reserve_step;
use crate::algorithm::AlgorithmKind;
use crate::config::{ConfigError, LimiterConfig, MAX_COUNT};
use crate::decision::{Ask, Decision};
use crate::limiter::Limiter;
use crate::rate::{parse_rates, Rate};
use crate::store::shm::OnFull;
use crate::store::Sweeper;
use crate::unkeyed::Reservation;

/// The decision of a round trip that decides (not a reset).
fn decided(answer: Answer) -> Decision {
    match answer {
        Answer::Decision(decision) => decision,
        Answer::Bool(_) => unreachable!("a deciding round trip answers a decision"),
    }
}

/// A round trip's decision as a Python `Decision` (what `adecide` and `apeek` resolve to).
fn decision_object(py: Python<'_>, answer: Answer) -> PyResult<Py<PyAny>> {
    Ok(Bound::new(py, PyDecision::from(decided(answer)))?
        .into_any()
        .unbind())
}

/// The default `track_top`: keys monitored a shard (16 shards or more a limiter).
const DEFAULT_TRACK_TOP: usize = 16;

/// The largest `track_top`.
const MAX_TRACK_TOP: u64 = 65_536;

/// `track_top=`: None for the default, 0 for off, else keys monitored a shard.
fn track_top_setting(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<usize>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(Some(DEFAULT_TRACK_TOP));
    };
    if value.extract::<i128>().ok() == Some(0) && !value.is_instance_of::<pyo3::types::PyBool>() {
        return Ok(None);
    }
    let n = args::positive_int(value, "track_top", MAX_TRACK_TOP).map_err(|e| {
        let py = value.py();
        if e.is_instance_of::<PyValueError>(py) {
            PyValueError::new_err(format!(
                "`track_top` must be from 0 (off) to {MAX_TRACK_TOP}, got {}",
                value.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
        } else {
            e
        }
    })?;
    Ok(Some(n as usize))
}

/// The name of a limiter given none: its algorithm and rates, `"fixed:100/60s"`,
/// `"gcra:10/1s;1000/3600s"`.
fn default_name(config: &LimiterConfig, source: &RateSource) -> String {
    let rates: Vec<String> = match source {
        RateSource::LimitWindow(window) => vec![format!("{}/{window}s", config.rates[0].limit)],
        RateSource::Text(_) => config
            .rates
            .iter()
            .map(|r| format!("{}/{}s", r.limit, Seconds::from_ns(r.period_ns)))
            .collect(),
    };
    format!("{}:{}", config.algorithm.name(), rates.join(";"))
}

/// The shortest `cleanup_interval`: one millisecond.
const MIN_CLEANUP_INTERVAL_NS: u64 = 1_000_000;

fn config_error(e: ConfigError) -> PyErr {
    PyValueError::new_err(e.to_string())
}

/// How the rates were given, for `repr`.
enum RateSource {
    LimitWindow(Seconds),
    Text(String),
}

/// A rate limiter over per-key state held in Rust.
#[pyclass(frozen, name = "RateLimiter", module = "rust_py_rate_limit._core")]
pub struct RateLimiter {
    limiter: Arc<Limiter>,
    /// `name=`, or one derived from the settings (`"fixed:100/60s"`).
    name: String,
    /// `name=` as given (shown in `repr`).
    given_name: Option<String>,
    /// Keys monitored per shard for `top_blocked`; None when off.
    track_top: Option<usize>,
    source: RateSource,
    cleanup_interval: Option<Seconds>,
    _sweeper: Option<Sweeper>,
    /// Set when `storage=` is a Redis URL: decisions are made there, not in `limiter`. Boxed,
    /// so the in-memory hot path tests one pointer next to `limiter`.
    redis: Option<Box<RedisSide>>,
    /// The `shm://` URL when the states live in a table shared by the host's processes.
    shared: Option<String>,
    on_full: OnFull,
    /// The settings given besides the rates and the burst, as given: what `with_rate` carries
    /// over to a limiter for another rate.
    settings: Py<PyDict>,
}

/// The settings given besides the rates and the burst, which `with_rate` carries over (in the
/// order `build` reads them).
const SETTING_NAMES: [&str; 12] = [
    "algorithm",
    "max_keys",
    "on_full",
    "cleanup_interval",
    "clock",
    "storage",
    "key_prefix",
    "timeout",
    "on_storage_error",
    "local_deny_cache",
    "fallback",
    "track_top",
];

/// The settings shared by the constructor and `from_rate`.
struct Options<'a, 'py> {
    /// `None` means "fixed".
    algorithm: Option<&'a Bound<'py, PyAny>>,
    burst: Option<&'a Bound<'py, PyAny>>,
    max_keys: Option<&'a Bound<'py, PyAny>>,
    on_full: Option<&'a Bound<'py, PyAny>>,
    cleanup_interval: Option<&'a Bound<'py, PyAny>>,
    clock: Option<&'a Bound<'py, PyAny>>,
    track_top: Option<&'a Bound<'py, PyAny>>,
    name: Option<&'a Bound<'py, PyAny>>,
    storage: StorageOptions<'a, 'py>,
}

impl RateLimiter {
    fn build(
        py: Python<'_>,
        rates: Vec<Rate>,
        source: RateSource,
        opts: Options<'_, '_>,
    ) -> PyResult<Self> {
        let settings = PyDict::new(py);
        let storage = &opts.storage;
        let values = [
            opts.algorithm,
            opts.max_keys,
            opts.on_full,
            opts.cleanup_interval,
            opts.clock,
            storage.storage,
            storage.key_prefix,
            storage.timeout,
            storage.on_storage_error,
            storage.local_deny_cache,
            storage.fallback,
            opts.track_top,
        ];
        for (name, value) in SETTING_NAMES.into_iter().zip(values) {
            if let Some(value) = value.filter(|v| !v.is_none()) {
                settings.set_item(name, value)?;
            }
        }
        let algorithm = match opts.algorithm.filter(|a| !a.is_none()) {
            None => AlgorithmKind::Fixed,
            Some(name) => {
                let name = name.cast::<PyString>().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "`algorithm` must be a str, one of {}",
                        AlgorithmKind::valid_names()
                    ))
                })?;
                let name = name.to_str()?;
                AlgorithmKind::parse(name).ok_or_else(|| {
                    PyValueError::new_err(format!(
                        "invalid `algorithm`: {name:?} (expected one of {})",
                        AlgorithmKind::valid_names()
                    ))
                })?
            }
        };
        let burst = opts
            .burst
            .filter(|b| !b.is_none())
            .map(|b| args::positive_int(b, "burst", MAX_COUNT))
            .transpose()?;
        let max_keys = opts
            .max_keys
            .filter(|m| !m.is_none())
            .map(|m| args::positive_int(m, "max_keys", usize::MAX as u64).map(|m| m as usize))
            .transpose()?;
        let cleanup_interval = opts
            .cleanup_interval
            .filter(|c| !c.is_none())
            .map(|c| args::seconds(c, "cleanup_interval", false))
            .transpose()?;
        if let Some((given, ns)) = cleanup_interval {
            if ns < MIN_CLEANUP_INTERVAL_NS {
                return Err(PyValueError::new_err(format!(
                    "`cleanup_interval` must be at least 0.001 seconds (a sweeper thread \
                     looping faster would compete with every call for the map), got {given}"
                )));
            }
        }
        let clock = clock_setting(opts.clock)?;
        let on_full = on_full_setting(opts.on_full)?;
        let track_top = track_top_setting(opts.track_top)?;
        let given_name = args::name_setting(opts.name)?;
        let config = LimiterConfig {
            rates,
            algorithm,
            burst,
            max_keys,
            on_full,
        };
        let shared = shared_url(&opts.storage)?;
        let (limiter, redis) = match &shared {
            Some(url) => {
                let given_clock = opts.clock.filter(|c| !c.is_none()).map(|_| clock.clone());
                let limiter = shared_limiter(
                    url,
                    &opts.storage,
                    config,
                    given_clock,
                    cleanup_interval.is_some(),
                )?;
                (Arc::new(limiter), None)
            }
            None => {
                let limiter = Arc::new(Limiter::new(config, clock.clone()).map_err(config_error)?);
                let redis = RedisSide::from_options(&opts.storage, &limiter, &clock)?.map(Box::new);
                (limiter, redis)
            }
        };
        let sweeper = cleanup_interval
            .map(|(_, ns)| {
                let weak = Arc::downgrade(&limiter);
                Sweeper::spawn(Duration::from_nanos(ns), move || match weak.upgrade() {
                    Some(limiter) => {
                        limiter.cleanup_expired();
                        true
                    }
                    None => false,
                })
                .map_err(|e| {
                    PyRuntimeError::new_err(format!("cannot start the sweeper thread: {e}"))
                })
            })
            .transpose()?;
        // A Redis limiter's refusals are counted where Redis answers (its in-memory fallback's
        // shards would count an outage's twice).
        limiter.track_top(track_top, redis.is_none());
        let name = given_name
            .clone()
            .unwrap_or_else(|| default_name(limiter.config(), &source));
        Ok(RateLimiter {
            limiter,
            name,
            given_name,
            track_top,
            source,
            cleanup_interval: cleanup_interval.map(|(given, _)| given),
            _sweeper: sweeper,
            redis,
            shared,
            on_full,
            settings: settings.unbind(),
        })
    }

    fn config(&self) -> &LimiterConfig {
        self.limiter.config()
    }

    /// `allowed, blocked, total_checks, active_keys, rejected_full, evicted, storage_errors`.
    fn stats_fields(&self, py: Python<'_>) -> [(&'static str, u64); 7] {
        if let Some(redis) = &self.redis {
            return redis.stats();
        }
        // A shared table's live states are counted by a scan of the whole table: without the
        // GIL (a map's count is kept, and taking it is quick either way).
        let stats = if self.shared.is_some() {
            let limiter = self.limiter.clone();
            py.detach(move || limiter.stats())
        } else {
            self.limiter.stats()
        };
        let [a, b, c, d, e, f] = stats.fields();
        [a, b, c, d, e, f, ("storage_errors", 0)]
    }

    /// The async twin of a method that answers `ask` (made by `ask`, which checks the cost):
    /// on Redis, the awaitable of the round trip, answered through `convert`; in memory,
    /// `in_memory()`'s result in a ready awaitable.
    fn twin<'py, T>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        ask: impl FnOnce() -> PyResult<Ask>,
        convert: Convert,
        in_memory: impl FnOnce() -> PyResult<T>,
    ) -> PyResult<Bound<'py, PyAny>>
    where
        T: IntoPyObject<'py>,
    {
        let Some(redis) = &self.redis else {
            return Ok(Bound::new(py, Ready::new(in_memory()?, py)?)?.into_any());
        };
        let ask = ask()?;
        let key = args::with_key(key, |k| k.to_vec())?;
        redis.answer_async(py, key, ask, convert)
    }

    /// The answer to `ask` made on Redis; out of line, so that it does not weigh on the
    /// in-memory methods that branch to it.
    #[cold]
    #[inline(never)]
    fn on_redis(&self, redis: &RedisSide, key: &Bound<'_, PyAny>, ask: Ask) -> PyResult<Decision> {
        let key_bytes = args::with_key(key, |k| k.to_vec())?;
        redis.answer(key.py(), &key_bytes, ask)
    }

    /// The answer to `ask` for `key`, on Redis or in memory.
    fn answer(&self, key: &Bound<'_, PyAny>, ask: Ask) -> PyResult<Decision> {
        if let Some(redis) = &self.redis {
            return self.on_redis(redis, key, ask);
        }
        args::with_key(key, |key| self.limiter.answer(key, ask))
    }
}

impl RateLimiter {
    /// The limiter that decides in process, or `None` when decisions are made on Redis: the
    /// hand-written `allow` (`fast_methods`) decides on it directly.
    #[inline(always)]
    pub(super) fn in_memory(&self) -> Option<&Limiter> {
        match self.redis {
            None => Some(&self.limiter),
            Some(_) => None,
        }
    }
}

#[pymethods]
impl RateLimiter {
    // `window_seconds` is optional to the argument parser only, so that a missing one can be
    // explained (a rate string given as `limit`); the signature shown says it is required.
    #[new]
    #[pyo3(
        text_signature = "(limit, window_seconds, algorithm=None, max_keys=None, cleanup_interval=None, *, burst=None, clock=None, storage=None, key_prefix=None, timeout=None, on_storage_error=None, local_deny_cache=None, fallback=None, on_full=None, track_top=None, name=None)"
    )]
    #[pyo3(signature = (limit, window_seconds=None, algorithm=None, max_keys=None, cleanup_interval=None, *, burst=None, clock=None, storage=None, key_prefix=None, timeout=None, on_storage_error=None, local_deny_cache=None, fallback=None, on_full=None, track_top=None, name=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        limit: &Bound<'_, PyAny>,
        window_seconds: Option<&Bound<'_, PyAny>>,
        algorithm: Option<&Bound<'_, PyAny>>,
        max_keys: Option<&Bound<'_, PyAny>>,
        cleanup_interval: Option<&Bound<'_, PyAny>>,
        burst: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
        storage: Option<&Bound<'_, PyAny>>,
        key_prefix: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        on_storage_error: Option<&Bound<'_, PyAny>>,
        local_deny_cache: Option<&Bound<'_, PyAny>>,
        fallback: Option<&Bound<'_, PyAny>>,
        on_full: Option<&Bound<'_, PyAny>>,
        track_top: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        if let Ok(text) = limit.cast::<PyString>() {
            if parse_rates(text.to_str()?).is_ok() {
                return Err(PyTypeError::new_err(format!(
                    "RateLimiter(limit, window_seconds) takes a count and a window in seconds, \
                     not a rate string: write RateLimiter.from_rate({})",
                    text.repr()?
                )));
            }
        }
        let limit = args::positive_int(limit, "limit", MAX_COUNT)?;
        let window_seconds = window_seconds.filter(|w| !w.is_none()).ok_or_else(|| {
            PyTypeError::new_err(
                "`window_seconds` must be an int or float number of seconds, not None (or \
                 missing): RateLimiter(10, 60) admits 10 a minute",
            )
        })?;
        let (window, period_ns) = args::seconds(window_seconds, "window_seconds", false)?;
        let opts = Options {
            algorithm,
            burst,
            max_keys,
            on_full,
            cleanup_interval,
            clock,
            track_top,
            name,
            storage: StorageOptions {
                storage,
                key_prefix,
                timeout,
                on_storage_error,
                local_deny_cache,
                fallback,
            },
        };
        Self::build(
            window_seconds.py(),
            vec![Rate { limit, period_ns }],
            RateSource::LimitWindow(window),
            opts,
        )
    }

    /// A limiter from a rate string such as `"10/second; 1000/hour"`; with several rates every
    /// one must admit a request.
    #[classmethod]
    #[pyo3(signature = (rate, algorithm=None, *, burst=None, max_keys=None, cleanup_interval=None, clock=None, storage=None, key_prefix=None, timeout=None, on_storage_error=None, local_deny_cache=None, fallback=None, on_full=None, track_top=None, name=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_rate(
        _cls: &Bound<'_, PyType>,
        rate: &Bound<'_, PyAny>,
        algorithm: Option<&Bound<'_, PyAny>>,
        burst: Option<&Bound<'_, PyAny>>,
        max_keys: Option<&Bound<'_, PyAny>>,
        cleanup_interval: Option<&Bound<'_, PyAny>>,
        clock: Option<&Bound<'_, PyAny>>,
        storage: Option<&Bound<'_, PyAny>>,
        key_prefix: Option<&Bound<'_, PyAny>>,
        timeout: Option<&Bound<'_, PyAny>>,
        on_storage_error: Option<&Bound<'_, PyAny>>,
        local_deny_cache: Option<&Bound<'_, PyAny>>,
        fallback: Option<&Bound<'_, PyAny>>,
        on_full: Option<&Bound<'_, PyAny>>,
        track_top: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let text = rate
            .cast::<PyString>()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "`rate` must be a str such as \"100/minute\", not {}",
                    rate.repr().map(|r| r.to_string()).unwrap_or_default()
                ))
            })?
            .to_str()?
            .to_string();
        let rates = parse_rates(&text).map_err(|e| PyValueError::new_err(e.to_string()))?;
        let opts = Options {
            algorithm,
            burst,
            max_keys,
            on_full,
            cleanup_interval,
            clock,
            track_top,
            name,
            storage: StorageOptions {
                storage,
                key_prefix,
                timeout,
                on_storage_error,
                local_deny_cache,
                fallback,
            },
        };
        let source = if rates.len() == 1 {
            RateSource::LimitWindow(Seconds::from_ns(rates[0].period_ns))
        } else {
            RateSource::Text(text)
        };
        Self::build(rate.py(), rates, source, opts)
    }

    /// A limiter for another rate string with this one's settings: algorithm, `max_keys`,
    /// `cleanup_interval`, clock, and the storage with all its options (its own state: counts
    /// are not shared). The burst is not carried over, since it belongs to the limit.
    /// `overrides` are `from_rate`'s keyword arguments that replace this limiter's (None
    /// keeps this limiter's value).
    #[pyo3(signature = (rate, **overrides))]
    fn with_rate<'py>(
        slf: &Bound<'py, Self>,
        rate: &Bound<'py, PyAny>,
        overrides: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, Self>> {
        let settings = slf.get().settings.bind(slf.py()).copy()?;
        if let Some(overrides) = overrides {
            for (name, value) in overrides.iter() {
                let known = name
                    .cast::<PyString>()
                    .ok()
                    .and_then(|n| n.to_str().ok())
                    .is_some_and(|n| n == "burst" || n == "name" || SETTING_NAMES.contains(&n));
                if !known {
                    return Err(PyTypeError::new_err(format!(
                        "RateLimiter.with_rate() got an unexpected keyword argument {} \
                         (it takes burst, name, {})",
                        name.repr()?,
                        SETTING_NAMES.join(", ")
                    )));
                }
                if !value.is_none() {
                    settings.set_item(name, value)?;
                }
            }
        }
        Ok(slf
            .get_type()
            .call_method("from_rate", (rate,), Some(&settings))?
            .cast_into::<Self>()?)
    }

    /// True if the request is admitted (and consumes `cost`), False if it is limited.
    // The general path: `fast_methods` decides `allow(str)` and `allow(str, int)` on an
    // in-memory limiter itself and hands every other call to this method.
    #[pyo3(signature = (key, cost=None))]
    pub(super) fn allow(
        &self,
        key: &Bound<'_, PyAny>,
        cost: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let cost = args::cost(cost)?;
        if let Some(redis) = &self.redis {
            return Ok(self.on_redis(redis, key, Ask::Decide(cost))?.allowed);
        }
        args::with_key(key, |key| self.limiter.allow(key, cost))
    }

    /// The decision as a dict: `allowed, limit, remaining, reset_after_seconds,
    /// retry_after_seconds` (whole seconds, rounded up; retry is 0 when allowed).
    #[pyo3(signature = (key, cost=None))]
    fn check<'py>(
        &self,
        key: &Bound<'py, PyAny>,
        cost: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let cost = args::cost(cost)?;
        decision_dict(key.py(), &self.answer(key, Ask::Decide(cost))?)
    }

    /// The decision as a `Decision` (float seconds).
    #[pyo3(signature = (key, cost=None))]
    fn decide(
        &self,
        key: &Bound<'_, PyAny>,
        cost: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyDecision> {
        let cost = args::cost(cost)?;
        Ok(self.answer(key, Ask::Decide(cost))?.into())
    }

    /// The `Decision` that `decide(key, cost)` would return at this instant, consuming
    /// nothing and counted in no statistic.
    #[pyo3(signature = (key, cost=None))]
    fn peek(
        &self,
        key: &Bound<'_, PyAny>,
        cost: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyDecision> {
        let cost = args::cost(cost)?;
        Ok(self.answer(key, Ask::Preview(cost))?.into())
    }

    /// Requests of cost 1 the key could make right now, consuming nothing.
    fn remaining(&self, key: &Bound<'_, PyAny>) -> PyResult<u64> {
        Ok(self.answer(key, Ask::Standing)?.remaining)
    }

    /// Forgets the key's state; True if it was tracked.
    fn reset(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        if let Some(redis) = &self.redis {
            let key_bytes = args::with_key(key, |k| k.to_vec())?;
            return redis.reset(key.py(), &key_bytes);
        }
        args::with_key(key, |key| self.limiter.reset(key))
    }

    /// `allow()` for `await`: on Redis the awaitable of the round trip; in memory the answer
    /// is there at once, and so is the awaitable.
    #[pyo3(signature = (key, cost=None))]
    fn aallow<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        cost: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let convert: Convert = |py, answer| {
            let allowed = decided(answer).allowed;
            Ok(allowed.into_pyobject(py)?.to_owned().into_any().unbind())
        };
        let ask = || Ok(Ask::Decide(args::cost(cost)?));
        self.twin(py, key, ask, convert, || self.allow(key, cost))
    }

    /// `check()` for `await`.
    #[pyo3(signature = (key, cost=None))]
    fn acheck<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        cost: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let convert: Convert =
            |py, answer| Ok(decision_dict(py, &decided(answer))?.into_any().unbind());
        let ask = || Ok(Ask::Decide(args::cost(cost)?));
        self.twin(py, key, ask, convert, || self.check(key, cost))
    }

    /// `decide()` for `await`.
    #[pyo3(signature = (key, cost=None))]
    fn adecide<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        cost: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ask = || Ok(Ask::Decide(args::cost(cost)?));
        self.twin(py, key, ask, decision_object, || self.decide(key, cost))
    }

    /// `peek()` for `await`.
    #[pyo3(signature = (key, cost=None))]
    fn apeek<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        cost: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let ask = || Ok(Ask::Preview(args::cost(cost)?));
        self.twin(py, key, ask, decision_object, || self.peek(key, cost))
    }

    /// `remaining()` for `await`.
    fn aremaining<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let convert: Convert = |py, answer| {
            Ok(decided(answer)
                .remaining
                .into_pyobject(py)?
                .into_any()
                .unbind())
        };
        self.twin(
            py,
            key,
            || Ok(Ask::Standing),
            convert,
            || self.remaining(key),
        )
    }

    /// `reset()` for `await`.
    fn areset<'py>(&self, py: Python<'py>, key: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(redis) = &self.redis {
            let key = args::with_key(key, |k| k.to_vec())?;
            return redis.reset_async(py, key);
        }
        Ok(Bound::new(py, Ready::new(self.reset(key)?, py)?)?.into_any())
    }

    /// Forgets every key (the statistics are kept).
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(redis) = &self.redis {
            redis.clear(py)?;
        }
        py.detach(|| self.limiter.clear());
        Ok(())
    }

    /// Removes the keys whose state has expired; returns how many.
    fn cleanup_expired(&self, py: Python<'_>) -> usize {
        py.detach(|| self.limiter.cleanup_expired())
    }

    /// `name`, then `allowed, blocked, total_checks, active_keys, rejected_full, evicted,
    /// storage_errors`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("name", &self.name)?;
        for (name, value) in self.stats_fields(py) {
            dict.set_item(name, value)?;
        }
        Ok(dict)
    }

    /// `stats()` as a JSON object.
    fn stats_json(&self, py: Python<'_>) -> String {
        crate::metrics::stats_json(&self.name, &self.stats_fields(py))
    }

    /// The waiting code's step (see `_waiting.py`): admit now, reserve a turn, or refuse.
    #[pyo3(signature = (key, cost, max_wait))]
    fn _reserve(
        &self,
        key: &Bound<'_, PyAny>,
        cost: Option<&Bound<'_, PyAny>>,
        max_wait: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(u8, f64, PyDecision)> {
        let cost = args::cost(cost)?;
        if self.redis.is_some() {
            let decision = self.answer(key, Ask::Decide(cost))?;
            return reserve_step(
                |_| Reservation {
                    decision,
                    wait_ns: 0,
                },
                max_wait,
            );
        }
        args::with_key(key, |key| {
            reserve_step(|max| self.limiter.reserve(key, cost, max), max_wait)
        })?
    }

    /// Gives back what `_reserve` reserved for a waiter that gave up.
    #[pyo3(signature = (key, cost))]
    fn _refund(&self, key: &Bound<'_, PyAny>, cost: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let cost = args::cost(cost)?;
        if self.redis.is_none() {
            args::with_key(key, |key| self.limiter.refund(key, cost))?;
        }
        Ok(())
    }

    fn _clock(&self, py: Python<'_>) -> PyResult<Option<Py<PyManualClock>>> {
        manual_clock(py, self.limiter.clock())
    }

    /// Whether decisions are made on Redis (the waiting code then awaits `adecide`).
    #[getter]
    fn _remote(&self) -> bool {
        self.redis.is_some()
    }

    /// A decorator limiting calls of the wrapped function (see `rust_py_rate_limit.rate_limit`).
    #[pyo3(signature = (key, *, cost=None, on_blocked=None, wait=None, timeout=None))]
    fn limit<'py>(
        slf: &Bound<'py, Self>,
        key: &Bound<'py, PyAny>,
        cost: Option<&Bound<'py, PyAny>>,
        on_blocked: Option<&Bound<'py, PyAny>>,
        wait: Option<&Bound<'py, PyAny>>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let kwargs = PyDict::new(py);
        if let Some(cost) = cost {
            kwargs.set_item("cost", cost)?;
        }
        kwargs.set_item("on_blocked", on_blocked)?;
        if let Some(wait) = wait {
            kwargs.set_item("wait", wait)?;
        }
        kwargs.set_item("timeout", timeout)?;
        py.import("rust_py_rate_limit.decorators")?
            .getattr("rate_limit")?
            .call((slf, key), Some(&kwargs))
    }

    /// The limiter's name: `name=`, or its algorithm and rates (`"fixed:100/60s"`).
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Keys monitored per shard for `top_blocked` (0: not tracked).
    #[getter]
    fn track_top(&self) -> usize {
        self.track_top.unwrap_or(0)
    }

    /// The `n` keys refused most often since the tracker was last reset, most first, as
    /// `(key, refusals)`; `reset=True` starts a new interval.
    // `reset=None` is taken as False (as None is the default of every other setting), so that
    // anything else can be refused by name; the signature shows the default it stands for.
    #[pyo3(
        signature = (n=None, *, reset=None),
        text_signature = "($self, /, n=None, *, reset=False)"
    )]
    fn top_blocked(
        &self,
        n: Option<&Bound<'_, PyAny>>,
        reset: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<(String, u64)>> {
        let n = match n.filter(|n| !n.is_none()) {
            Some(n) => args::positive_int(n, "n", u32::MAX as u64)? as usize,
            None => 10,
        };
        let reset = args::flag(reset, "reset", false)?;
        let Some((top, _)) = self.limiter.top_refused(n, reset) else {
            return Err(PyValueError::new_err(
                "this limiter does not track the keys it refuses (track_top=0)",
            ));
        };
        Ok(top
            .into_iter()
            .map(|c| (String::from_utf8_lossy(&c.key).into_owned(), c.count))
            .collect())
    }

    /// How long the round trips to Redis took, as a histogram: `{"buckets": [(upper bound
    /// in seconds, round trips at or below it), ...], "count": n, "sum": seconds}` (the
    /// buckets cumulative, as Prometheus reads them); None for a limiter that decides in
    /// process.
    fn storage_latency<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(redis) = &self.redis else {
            return Ok(None);
        };
        super::histogram::histogram_dict(py, &redis.latency()).map(Some)
    }

    /// On Redis, False while an outage is under way (the last round trip failed, until one
    /// succeeds: the failure policy or the fallback answers meanwhile); None in process.
    #[getter]
    fn storage_healthy(&self) -> Option<bool> {
        self.redis.as_ref().map(|redis| redis.healthy())
    }

    /// The limit of the first rate.
    #[getter]
    fn max_requests(&self) -> u64 {
        self.config().rates[0].limit
    }

    /// The window of the first rate, in seconds (an int when whole).
    #[getter]
    fn window_seconds<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        match self.source {
            RateSource::LimitWindow(given) => given.to_object(py),
            RateSource::Text(_) => Seconds::from_ns(self.config().rates[0].period_ns).to_object(py),
        }
    }

    /// Every rate as `(limit, window_seconds)`.
    #[getter]
    fn rates<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let given = match self.source {
            RateSource::LimitWindow(window) => Some(window),
            RateSource::Text(_) => None,
        };
        self.config()
            .rates
            .iter()
            .map(|r| {
                let window = given.unwrap_or_else(|| Seconds::from_ns(r.period_ns));
                PyTuple::new(
                    py,
                    [r.limit.into_pyobject(py)?.into_any(), window.to_object(py)?],
                )
            })
            .collect()
    }

    #[getter]
    fn algorithm(&self) -> &'static str {
        self.config().algorithm.name()
    }

    /// The capacity of the bucket algorithms (the limit unless `burst` was given); None for
    /// the window algorithms.
    #[getter]
    fn burst(&self) -> Option<u64> {
        let config = self.config();
        config
            .algorithm
            .has_burst()
            .then(|| config.burst.unwrap_or(config.rates[0].limit))
    }

    #[getter]
    fn max_keys(&self) -> Option<usize> {
        self.config().max_keys
    }

    #[getter]
    fn cleanup_interval<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.cleanup_interval.map(|c| c.to_object(py)).transpose()
    }

    /// Where the state lives: the `storage=` URL, or `"memory://"`.
    #[getter]
    fn storage(&self) -> String {
        if let Some(url) = &self.shared {
            return url.clone();
        }
        self.redis
            .as_ref()
            .map_or_else(|| "memory://".to_string(), |r| r.url.clone())
    }

    /// What a new key gets when there is no room for it: `"reject"` or `"evict"`.
    #[getter]
    fn on_full(&self) -> &'static str {
        match self.on_full {
            OnFull::Reject => "reject",
            OnFull::Evict => "evict",
        }
    }

    /// Removes the shared table `name` (or the one an `shm://` URL names), with its wider
    /// tables (several rates): True if there was one. Processes using it keep it until they
    /// make their limiters again; limiters made afterwards get a new, empty table.
    #[staticmethod]
    fn destroy_shared(name: &Bound<'_, PyAny>) -> PyResult<bool> {
        let text = name
            .cast::<PyString>()
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "`name` must be a str (a table name or an shm:// URL), not {}",
                    args::type_name(name)
                ))
            })?
            .to_str()?;
        let url = if crate::store::shm::url::is_shm_url(text) {
            text.to_string()
        } else {
            format!("shm://{text}")
        };
        let parsed = crate::store::shm::url::parse_shm_url(&url).map_err(PyValueError::new_err)?;
        crate::store::shm::open::destroy_table(&parsed.dir, &parsed.name).map_err(region_error)
    }

    #[getter]
    fn key_prefix(&self) -> Option<String> {
        self.redis.as_ref().map(|r| r.prefix.clone())
    }

    /// Seconds one storage round trip may take (None in memory).
    #[getter]
    fn timeout<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.redis
            .as_ref()
            .map(|r| r.timeout.to_object(py))
            .transpose()
    }

    #[getter]
    fn on_storage_error(&self) -> Option<&'static str> {
        self.redis.as_ref().map(|r| r.failure.on_error.name())
    }

    /// `"memory"` when decisions fall back to the process while Redis fails, else None.
    #[getter]
    fn fallback(&self) -> Option<&'static str> {
        self.redis
            .as_ref()
            .and_then(|r| r.failure.fallback.as_ref())
            .map(|_| "memory")
    }

    /// Whether refusals are answered in process until their retry time (None in memory).
    #[getter]
    fn local_deny_cache(&self) -> Option<bool> {
        self.redis.as_ref().map(|r| r.local_deny_cache)
    }

    /// A no-op taking one str: the floor the benchmarks compare `allow()` against. Called
    /// the way `allow` is (see `fast_methods`); this is its general path.
    fn _noop(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        args::key(key)?;
        Ok(true)
    }

    /// Checks a shared table's invariants (tests, after killing processes that used it):
    /// raises `RuntimeError` naming the broken one; `TypeError` for other storages.
    fn _check_shared_table(&self, py: Python<'_>) -> PyResult<()> {
        let limiter = self.limiter.clone();
        match py.detach(move || limiter.check_shared_table()) {
            Some(result) => result.map_err(PyRuntimeError::new_err),
            None => Err(PyTypeError::new_err("not a shm:// limiter")),
        }
    }

    fn __repr__(&self) -> String {
        let config = self.config();
        let mut out = match &self.source {
            RateSource::LimitWindow(window) => format!(
                "RateLimiter(limit={}, window_seconds={window}, algorithm={:?}",
                config.rates[0].limit,
                config.algorithm.name()
            ),
            RateSource::Text(text) => format!(
                "RateLimiter.from_rate({text:?}, algorithm={:?}",
                config.algorithm.name()
            ),
        };
        if let Some(burst) = config.burst {
            out.push_str(&format!(", burst={burst}"));
        }
        if let Some(max_keys) = config.max_keys {
            out.push_str(&format!(", max_keys={max_keys}"));
        }
        if let Some(interval) = self.cleanup_interval {
            out.push_str(&format!(", cleanup_interval={interval}"));
        }
        if let Some(url) = &self.shared {
            out.push_str(&format!(", storage={url:?}"));
        }
        if self.on_full == OnFull::Evict {
            out.push_str(", on_full=\"evict\"");
        }
        if self.track_top != Some(DEFAULT_TRACK_TOP) {
            out.push_str(&format!(", track_top={}", self.track_top.unwrap_or(0)));
        }
        if let Some(name) = &self.given_name {
            out.push_str(&format!(", name={name:?}"));
        }
        if let Some(redis) = &self.redis {
            out.push_str(&format!(
                ", storage={:?}, key_prefix={:?}, timeout={}, on_storage_error={:?}",
                redis.url,
                redis.prefix,
                redis.timeout,
                redis.failure.on_error.name()
            ));
            if redis.local_deny_cache {
                out.push_str(", local_deny_cache=True");
            }
            if redis.failure.fallback.is_some() {
                out.push_str(", fallback=\"memory\"");
            }
        }
        out.push(')');
        out
    }
}
