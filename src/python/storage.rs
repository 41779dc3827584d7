//! The Python side of `storage="redis://..."`: the settings, the GIL released around each
//! round trip, and the asyncio twins. What a failed round trip answers is `failure.rs`.

use std::sync::Arc;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::args::{self, Seconds};
use super::async_bridge::{self, Answer, Convert};
use super::failure::{FailurePolicy, Fallback, OnStorageError};
use crate::clock::Clock;
use crate::decision::{Ask, Decision};
use crate::limiter::Limiter;
use crate::store::redis::{parse_storage, redacted, RedisBackend, Storage};

// Named for the package that exports it (`rust_py_rate_limit.StorageError`), not the
// extension module it is defined in.
create_exception!(
    rust_py_rate_limit,
    StorageError,
    PyException,
    "The limiter's storage (Redis) failed: unreachable, too slow, or an error reply."
);

/// The `StorageError` for a failure of the storage at `url` (its password already hidden by
/// [`redacted`]): the message names the storage, then what failed.
pub fn storage_error(url: &str, error: impl std::fmt::Display) -> PyErr {
    StorageError::new_err(format!("rate-limit storage {url} failed: {error}"))
}

/// How long one Redis round trip may take unless `timeout=` says otherwise: 50 ms.
const DEFAULT_TIMEOUT_NS: u64 = 50_000_000;

/// The default `key_prefix`.
const DEFAULT_PREFIX: &str = "rl";

/// The storage settings of a constructor, as given.
pub struct StorageOptions<'a, 'py> {
    pub storage: Option<&'a Bound<'py, PyAny>>,
    pub key_prefix: Option<&'a Bound<'py, PyAny>>,
    pub timeout: Option<&'a Bound<'py, PyAny>>,
    pub on_storage_error: Option<&'a Bound<'py, PyAny>>,
    pub local_deny_cache: Option<&'a Bound<'py, PyAny>>,
    pub fallback: Option<&'a Bound<'py, PyAny>>,
}

/// Refuses the settings that only mean something with Redis (`besides` names the storage
/// given instead, for the message), so a forgotten `storage=` shows.
pub fn refuse_redis_settings(opts: &StorageOptions<'_, '_>, besides: &str) -> PyResult<()> {
    for (name, value) in [
        ("key_prefix", opts.key_prefix),
        ("timeout", opts.timeout),
        ("on_storage_error", opts.on_storage_error),
        ("local_deny_cache", opts.local_deny_cache),
        ("fallback", opts.fallback),
    ] {
        if given(value).is_some() {
            return Err(PyValueError::new_err(format!(
                "`{name}` only applies with a Redis `storage=` URL{besides}"
            )));
        }
    }
    Ok(())
}

/// A limiter's Redis side.
pub struct RedisSide {
    backend: Arc<RedisBackend>,
    /// The in-process limiter: its tracker of the most refused keys counts the refusals
    /// answered here (Redis's, and the failure policy's), as its shards do not.
    tracker: Arc<Limiter>,
    pub failure: FailurePolicy,
    pub url: String,
    pub prefix: String,
    pub timeout: Seconds,
    pub local_deny_cache: bool,
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
            refuse_redis_settings(opts, "")?;
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
                "memory" => Some(Fallback::new(memory.clone(), clock.clone())),
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
        Ok(Some(RedisSide {
            backend: Arc::new(backend),
            tracker: memory.clone(),
            failure: FailurePolicy::new(on_error, fallback, url.clone(), config),
            url,
            prefix,
            timeout,
            local_deny_cache,
        }))
    }

    /// `stats()` of a Redis-backed limiter: every decision made through it (by Redis, the deny
    /// cache, `on_storage_error` or the fallback while Redis failed), and the failed round
    /// trips. Redis expires keys itself, so no key count is kept in process.
    pub fn stats(&self) -> [(&'static str, u64); 7] {
        let (mut allowed, mut blocked) = self.backend.counts();
        if let Some(fallback) = &self.failure.fallback {
            let (in_process_allowed, in_process_blocked) = fallback.counts();
            allowed += in_process_allowed;
            blocked += in_process_blocked;
        }
        [
            ("allowed", allowed),
            ("blocked", blocked),
            ("total_checks", allowed + blocked),
            ("active_keys", 0),
            ("rejected_full", 0),
            ("evicted", 0),
            ("storage_errors", self.backend.storage_errors()),
        ]
    }

    /// False while an outage is under way (the last round trip failed).
    pub fn healthy(&self) -> bool {
        !self.backend.in_outage()
    }

    /// How long the decisions' round trips took (see `RateLimiter.storage_latency`).
    pub fn latency(&self) -> crate::metrics::HistogramSnapshot {
        self.backend.latency()
    }

    /// Deletes every key of the prefix.
    pub fn clear(&self, py: Python<'_>) -> PyResult<u64> {
        let backend = &self.backend;
        py.detach(|| runtime().block_on(backend.clear()))
            .map_err(|e| storage_error(&self.url, e))
    }

    /// The answer to `ask` (a decision, a preview of one, or the key's standing); the GIL is
    /// released for the round trip.
    pub fn answer(&self, py: Python<'_>, key: &[u8], ask: Ask) -> PyResult<Decision> {
        if let Some(decision) = self.failure.while_down(key, ask) {
            return Ok(noted(&self.tracker, key, ask, decision));
        }
        let backend = &self.backend;
        let result = py.detach(|| {
            if backend.has_blocking() {
                return backend.answer_blocking(key, ask);
            }
            runtime().block_on(backend.answer(key, ask))
        });
        let decision = self.failure.after(backend, result, key, ask)?;
        Ok(noted(&self.tracker, key, ask, decision))
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
        .map_err(|e| storage_error(&self.url, e))
    }

    /// The asyncio twin of [`Self::answer`]: a future of the running loop, resolved by the
    /// round trip on the tokio runtime through the loop's bridge (see `async_bridge`), its
    /// result made by `convert` on the loop's thread.
    pub fn answer_async<'py>(
        &self,
        py: Python<'py>,
        key: Vec<u8>,
        ask: Ask,
        convert: Convert,
    ) -> PyResult<Bound<'py, PyAny>> {
        if let Some(decision) = self.failure.while_down(&key, ask) {
            let decision = noted(&self.tracker, &key, ask, decision);
            return Self::spawn(py, async move { Ok(Answer::Decision(decision)) }, convert);
        }
        let (backend, failure) = (self.backend.clone(), self.failure.clone());
        let tracker = self.tracker.clone();
        let round_trip = async move {
            let result = backend.answer(&key, ask).await;
            let decision = failure.after(&backend, result, &key, ask)?;
            Ok(Answer::Decision(noted(&tracker, &key, ask, decision)))
        };
        Self::spawn(py, round_trip, convert)
    }

    /// The asyncio twin of [`Self::reset`].
    pub fn reset_async<'py>(&self, py: Python<'py>, key: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        let (backend, url) = (self.backend.clone(), self.url.clone());
        let round_trip = async move {
            backend
                .reset(&key)
                .await
                .map(Answer::Bool)
                .map_err(|e| storage_error(&url, e))
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

/// `decision`, its refusal of `key` counted among the most refused keys (a decision, not a
/// preview or a standing).
fn noted(tracker: &Limiter, key: &[u8], ask: Ask, decision: Decision) -> Decision {
    if !decision.allowed && matches!(ask, Ask::Decide(_)) {
        tracker.note_refused(key);
    }
    decision
}

/// The tokio runtime every Redis round trip runs on (shared with the asyncio twins).
fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}
