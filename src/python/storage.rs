//! The Python side of `storage="redis://..."`: the settings, the GIL released around each
//! round trip, the asyncio twins, and the failure policy (`on_storage_error`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::args::{self, Seconds};
use super::async_bridge::{self, Answer, Convert};
use crate::clock::Clock;
use crate::decision::Decision;
use crate::limiter::Limiter;
use crate::store::redis::{parse_storage, redacted, RedisBackend, Storage};

create_exception!(
    _core,
    StorageError,
    PyException,
    "The limiter's storage (Redis) failed: unreachable, too slow, or an error reply."
);

/// How long one Redis round trip may take unless `timeout=` says otherwise: 50 ms.
const DEFAULT_TIMEOUT_NS: u64 = 50_000_000;

/// The default `key_prefix`.
const DEFAULT_PREFIX: &str = "rl";

/// What a decision is when the storage fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStorageError {
    /// Admit (fail open).
    Allow,
    /// Refuse (fail closed).
    Deny,
    /// Raise `StorageError`.
    Raise,
}

impl OnStorageError {
    fn parse(value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(value) = value.filter(|v| !v.is_none()) else {
            return Ok(OnStorageError::Raise);
        };
        let text = value.cast::<PyString>().map_err(|_| {
            PyTypeError::new_err("`on_storage_error` must be 'allow', 'deny' or 'raise'")
        })?;
        match text.to_str()? {
            "allow" => Ok(OnStorageError::Allow),
            "deny" => Ok(OnStorageError::Deny),
            "raise" => Ok(OnStorageError::Raise),
            other => Err(PyValueError::new_err(format!(
                "`on_storage_error` must be 'allow', 'deny' or 'raise', got {other:?}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            OnStorageError::Allow => "allow",
            OnStorageError::Deny => "deny",
            OnStorageError::Raise => "raise",
        }
    }
}

/// The storage settings of a constructor, as given.
pub struct StorageOptions<'a, 'py> {
    pub storage: Option<&'a Bound<'py, PyAny>>,
    pub key_prefix: Option<&'a Bound<'py, PyAny>>,
    pub timeout: Option<&'a Bound<'py, PyAny>>,
    pub on_storage_error: Option<&'a Bound<'py, PyAny>>,
    pub local_deny_cache: Option<&'a Bound<'py, PyAny>>,
    pub fallback: Option<&'a Bound<'py, PyAny>>,
}

/// How long a limiter decides in process after Redis failed, before it tries Redis again.
const PROBE_INTERVAL_NS: u64 = 5_000_000_000;

/// `fallback="memory"`: while Redis fails, decisions are made by the limiter's in-memory
/// store, and Redis is tried again at most every [`PROBE_INTERVAL_NS`] (not on every call).
#[derive(Clone)]
pub struct Fallback {
    memory: Arc<Limiter>,
    clock: Clock,
    /// When Redis may be tried again; 0 while it answers.
    probe_after_ns: Arc<AtomicU64>,
}

impl Fallback {
    /// The in-memory decision, if Redis is not to be tried yet.
    fn while_down(&self, key: &[u8], cost: Option<u64>) -> Option<Decision> {
        let probe_after = self.probe_after_ns.load(Ordering::Relaxed);
        (probe_after != 0 && self.clock.now_ns() < probe_after).then(|| self.decide(key, cost))
    }

    fn decide(&self, key: &[u8], cost: Option<u64>) -> Decision {
        match cost {
            Some(cost) => self.memory.decide(key, cost),
            None => self.memory.peek(key),
        }
    }

    /// After a round trip: back to Redis when it answered, else the in-memory decision and
    /// the next probe a while from now.
    fn after(
        &self,
        result: Result<Decision, crate::store::redis::StorageError>,
        key: &[u8],
        cost: Option<u64>,
    ) -> Decision {
        match result {
            Ok(decision) => {
                self.probe_after_ns.store(0, Ordering::Relaxed);
                decision
            }
            Err(_) => {
                let next = self.clock.now_ns().saturating_add(PROBE_INTERVAL_NS).max(1);
                self.probe_after_ns.store(next, Ordering::Relaxed);
                self.decide(key, cost)
            }
        }
    }
}

/// A limiter's Redis side.
pub struct RedisSide {
    backend: Arc<RedisBackend>,
    pub on_error: OnStorageError,
    pub url: String,
    pub prefix: String,
    pub timeout: Seconds,
    pub local_deny_cache: bool,
    /// `fallback="memory"`: decide in process while Redis fails.
    pub fallback: Option<Fallback>,
    /// The most restrictive rate's limit and window, for the decisions of the failure policy.
    limit: u64,
    window_ns: u64,
}

fn given<'a, 'py>(value: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    value.filter(|v| !v.is_none())
}

fn text(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    Ok(value
        .cast::<PyString>()
        .map_err(|_| {
            let type_name = value
                .get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default();
            PyTypeError::new_err(format!("`{name}` must be a str, not {type_name}"))
        })?
        .to_str()?
        .to_string())
}

impl RedisSide {
    /// The Redis side the options ask for; None for the in-memory default. Settings that only
    /// mean something with Redis are refused without it, so a forgotten `storage=` shows.
    pub fn from_options(
        opts: &StorageOptions<'_, '_>,
        memory: &Arc<Limiter>,
        clock: &Clock,
    ) -> PyResult<Option<Self>> {
        let config = memory.config();
        let storage = match given(opts.storage) {
            None => Storage::Memory,
            Some(url) => parse_storage(&text(url, "storage")?)
                .map_err(|e| PyValueError::new_err(e.to_string()))?,
        };
        let Storage::Redis(target) = storage else {
            for (name, value) in [
                ("key_prefix", opts.key_prefix),
                ("timeout", opts.timeout),
                ("on_storage_error", opts.on_storage_error),
                ("local_deny_cache", opts.local_deny_cache),
                ("fallback", opts.fallback),
            ] {
                if given(value).is_some() {
                    return Err(PyValueError::new_err(format!(
                        "`{name}` only applies with a Redis `storage=` URL"
                    )));
                }
            }
            return Ok(None);
        };
        let url = redacted(&text(
            opts.storage.expect("a Redis URL was given"),
            "storage",
        )?);
        let prefix = match given(opts.key_prefix) {
            None => DEFAULT_PREFIX.to_string(),
            Some(prefix) => {
                let prefix = text(prefix, "key_prefix")?;
                if prefix.is_empty() || prefix.contains(['{', '}']) {
                    return Err(PyValueError::new_err(format!(
                        "`key_prefix` must be non-empty and without braces (they make Redis \
                         Cluster hash tags), got {prefix:?}"
                    )));
                }
                prefix
            }
        };
        let (timeout, timeout_ns) = match given(opts.timeout) {
            None => (Seconds::from_ns(DEFAULT_TIMEOUT_NS), DEFAULT_TIMEOUT_NS),
            Some(t) => args::seconds(t, "timeout", false)?,
        };
        let on_error = OnStorageError::parse(opts.on_storage_error)?;
        let fallback = match given(opts.fallback) {
            None => None,
            Some(value) => match text(value, "fallback")?.as_str() {
                "memory" => Some(Fallback {
                    memory: memory.clone(),
                    clock: clock.clone(),
                    probe_after_ns: Arc::new(AtomicU64::new(0)),
                }),
                other => {
                    return Err(PyValueError::new_err(format!(
                        "`fallback` must be 'memory' or None, got {other:?}"
                    )))
                }
            },
        };
        let local_deny_cache = match given(opts.local_deny_cache) {
            None => false,
            Some(flag) => flag
                .cast::<pyo3::types::PyBool>()
                .map(|b| b.is_true())
                .map_err(|_| PyTypeError::new_err("`local_deny_cache` must be True or False"))?,
        };
        let backend = RedisBackend::new(
            target,
            config,
            clock.clone(),
            &prefix,
            Duration::from_nanos(timeout_ns),
            local_deny_cache,
        )
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
        let strictest = config
            .rates
            .iter()
            .min_by_key(|r| u128::from(r.period_ns) * 1_000_000 / u128::from(r.limit))
            .expect("a limiter has a rate");
        Ok(Some(RedisSide {
            backend: Arc::new(backend),
            on_error,
            url,
            prefix,
            timeout,
            local_deny_cache,
            fallback,
            limit: strictest.limit,
            window_ns: strictest.period_ns,
        }))
    }

    /// `stats()` of a Redis-backed limiter: the decisions made through it, and the failed
    /// round trips. Redis expires keys itself, so no key count is kept in process.
    pub fn stats(&self) -> [(&'static str, u64); 6] {
        let (allowed, blocked) = self.backend.counts();
        [
            ("allowed", allowed),
            ("blocked", blocked),
            ("total_checks", allowed + blocked),
            ("active_keys", 0),
            ("rejected_full", 0),
            ("storage_errors", self.backend.storage_errors()),
        ]
    }

    /// Deletes every key of the prefix.
    pub fn clear(&self, py: Python<'_>) -> PyResult<u64> {
        let backend = &self.backend;
        py.detach(|| runtime().block_on(backend.clear()))
            .map_err(|e| StorageError::new_err(e.to_string()))
    }

    /// The decision when the storage failed, by the policy.
    fn on_failure(
        on_error: OnStorageError,
        limit: u64,
        window_ns: u64,
        error: impl std::fmt::Display,
    ) -> PyResult<Decision> {
        match on_error {
            OnStorageError::Raise => Err(StorageError::new_err(error.to_string())),
            OnStorageError::Allow => Ok(Decision {
                allowed: true,
                limit,
                remaining: limit,
                reset_after_ns: 0,
                retry_after_ns: 0,
            }),
            OnStorageError::Deny => Ok(Decision {
                allowed: false,
                limit,
                remaining: 0,
                reset_after_ns: window_ns,
                retry_after_ns: window_ns,
            }),
        }
    }

    /// A decision (`cost` counted) or, with `cost` None, the key's standing; the GIL is released
    /// for the round trip.
    pub fn decide(&self, py: Python<'_>, key: &[u8], cost: Option<u64>) -> PyResult<Decision> {
        if let Some(decision) = self.fallback.as_ref().and_then(|f| f.while_down(key, cost)) {
            return Ok(decision);
        }
        let backend = &self.backend;
        let result = py.detach(|| {
            if backend.has_blocking() {
                return backend.decide_blocking(key, cost);
            }
            runtime().block_on(async {
                match cost {
                    Some(cost) => backend.decide(key, cost).await,
                    None => backend.peek(key).await,
                }
            })
        });
        if let Some(began) = backend.outage_changed(&result) {
            log_outage(py, began, &self.url, self.on_error, &result);
        }
        if let Some(fallback) = &self.fallback {
            return Ok(fallback.after(result, key, cost));
        }
        result.or_else(|e| Self::on_failure(self.on_error, self.limit, self.window_ns, e))
    }

    /// Forgets `key`; a storage failure raises whatever the policy, since nothing was decided.
    pub fn reset(&self, py: Python<'_>, key: &[u8]) -> PyResult<bool> {
        let backend = &self.backend;
        py.detach(|| {
            if backend.has_blocking() {
                return backend.reset_blocking(key);
            }
            runtime().block_on(backend.reset(key))
        })
        .map_err(|e| StorageError::new_err(e.to_string()))
    }

    /// The asyncio twin of [`Self::decide`]: a future of the running loop, resolved by the
    /// round trip on the tokio runtime through the loop's bridge (see `async_bridge`), its
    /// result made by `convert` on the loop's thread.
    pub fn decide_async<'py>(
        &self,
        py: Python<'py>,
        key: Vec<u8>,
        cost: Option<u64>,
        convert: Convert,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(decision) = self
            .fallback
            .as_ref()
            .and_then(|f| f.while_down(&key, cost))
        {
            return Self::spawn(py, async move { Ok(Answer::Decision(decision)) }, convert);
        }
        let (backend, on_error) = (self.backend.clone(), self.on_error);
        let (limit, window_ns, url) = (self.limit, self.window_ns, self.url.clone());
        let fallback = self.fallback.clone();
        let round_trip = async move {
            let result = match cost {
                Some(cost) => backend.decide(&key, cost).await,
                None => backend.peek(&key).await,
            };
            if let Some(began) = backend.outage_changed(&result) {
                // Once per outage: taking the GIL here is rare.
                Python::attach(|py| log_outage(py, began, &url, on_error, &result));
            }
            if let Some(fallback) = fallback {
                return Ok(Answer::Decision(fallback.after(result, &key, cost)));
            }
            result
                .or_else(|e| Self::on_failure(on_error, limit, window_ns, e))
                .map(Answer::Decision)
        };
        Self::spawn(py, round_trip, convert)
    }

    /// The asyncio twin of [`Self::reset`].
    pub fn reset_async<'py>(&self, py: Python<'py>, key: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        let backend = self.backend.clone();
        let round_trip = async move {
            backend
                .reset(&key)
                .await
                .map(Answer::Bool)
                .map_err(|e| StorageError::new_err(e.to_string()))
        };
        Self::spawn(py, round_trip, |py, answer| match answer {
            Answer::Bool(removed) => Ok(removed.into_pyobject(py)?.to_owned().into_any().unbind()),
            Answer::Decision(_) => unreachable!("reset answers a bool"),
        })
    }

    /// Runs `round_trip` on the tokio runtime and returns the awaitable of its answer.
    fn spawn<'py>(
        py: Python<'py>,
        round_trip: impl std::future::Future<Output = PyResult<Answer>> + Send + 'static,
        convert: Convert,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some((future, completer)) = async_bridge::future_and_completer(py, convert)? {
            runtime().spawn(async move { completer.complete(round_trip.await) });
            return Ok(future);
        }
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            let answer = round_trip.await?;
            Python::attach(|py| convert(py, answer))
        })
    }
}

/// Logs, through Python's `logging` (logger `rust_py_rate_limit`), the start of an outage (a
/// warning) or its end (info); a logging failure must not fail the request, so it is dropped.
fn log_outage<T>(
    py: Python<'_>,
    began: bool,
    url: &str,
    on_error: OnStorageError,
    result: &Result<T, crate::store::redis::StorageError>,
) {
    let message = match result {
        Err(error) if began => format!(
            "rate-limit storage {url} failed: {error}; on_storage_error={:?} applies until it \
             answers again (logged once per outage)",
            on_error.name()
        ),
        _ => format!("rate-limit storage {url} answers again"),
    };
    let level = if began { "warning" } else { "info" };
    let logged = py
        .import("logging")
        .and_then(|logging| logging.call_method1("getLogger", ("rust_py_rate_limit",)))
        .and_then(|logger| logger.call_method1(level, (message,)));
    drop(logged);
}

/// The tokio runtime every Redis round trip runs on (shared with the asyncio twins).
fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}
