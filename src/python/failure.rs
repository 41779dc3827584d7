//! What a Redis-backed limiter answers when a round trip fails: the `on_storage_error`
//! policy, the `fallback="memory"` store, and one log line per outage.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::storage::storage_error;
use crate::clock::Clock;
use crate::config::LimiterConfig;
use crate::decision::{Ask, Decision};
use crate::limiter::Limiter;
use crate::store::redis::RedisBackend;

type RoundTrip = Result<Decision, crate::store::redis::StorageError>;

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
    pub fn parse(value: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
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
    pub fn new(memory: Arc<Limiter>, clock: Clock) -> Self {
        Fallback {
            memory,
            clock,
            probe_after_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The in-memory decision, if Redis is not to be tried yet.
    pub fn while_down(&self, key: &[u8], ask: Ask) -> Option<Decision> {
        let probe_after = self.probe_after_ns.load(Ordering::Relaxed);
        (probe_after != 0 && self.clock.now_ns() < probe_after)
            .then(|| self.memory.answer(key, ask))
    }

    /// The decisions the in-memory store made while Redis failed: (allowed, blocked).
    pub fn counts(&self) -> (u64, u64) {
        let stats = self.memory.stats();
        (stats.allowed, stats.blocked)
    }

    /// After a round trip: back to Redis when it answered, else the in-memory decision and
    /// the next probe a while from now.
    pub fn after(&self, result: RoundTrip, key: &[u8], ask: Ask) -> Decision {
        match result {
            Ok(decision) => {
                self.probe_after_ns.store(0, Ordering::Relaxed);
                decision
            }
            Err(_) => {
                let next = self.clock.now_ns().saturating_add(PROBE_INTERVAL_NS).max(1);
                self.probe_after_ns.store(next, Ordering::Relaxed);
                self.memory.answer(key, ask)
            }
        }
    }
}

/// The failure handling of one limiter, cheap to clone into an async round trip.
#[derive(Clone)]
pub struct FailurePolicy {
    pub on_error: OnStorageError,
    pub fallback: Option<Fallback>,
    /// The storage URL, password hidden, for the log.
    url: String,
    /// The most restrictive rate's limit and window, for the answers of "allow" and "deny".
    limit: u64,
    window_ns: u64,
}

impl FailurePolicy {
    pub fn new(
        on_error: OnStorageError,
        fallback: Option<Fallback>,
        url: String,
        config: &LimiterConfig,
    ) -> Self {
        let strictest = config
            .rates
            .iter()
            .min_by_key(|r| u128::from(r.period_ns) * 1_000_000 / u128::from(r.limit))
            .expect("a limiter has a rate");
        FailurePolicy {
            on_error,
            fallback,
            url,
            limit: strictest.limit,
            window_ns: strictest.period_ns,
        }
    }

    /// The in-memory decision while the fallback waits to try Redis again.
    pub fn while_down(&self, key: &[u8], ask: Ask) -> Option<Decision> {
        self.fallback.as_ref()?.while_down(key, ask)
    }

    /// After a round trip: logs an outage's start or end (once each), and turns a failure
    /// into the fallback's decision or the policy's answer.
    pub fn after(
        &self,
        backend: &RedisBackend,
        result: RoundTrip,
        key: &[u8],
        ask: Ask,
    ) -> PyResult<Decision> {
        if let Some(began) = backend.outage_changed(&result) {
            // Once per outage, so taking the GIL on a tokio thread here is rare.
            let meanwhile = if self.fallback.is_some() {
                "the in-memory fallback decides".to_string()
            } else {
                format!("on_storage_error={:?} applies", self.on_error.name())
            };
            Python::attach(|py| log_outage(py, began, &self.url, &meanwhile, &result));
        }
        if let Some(fallback) = &self.fallback {
            return Ok(fallback.after(result, key, ask));
        }
        result.or_else(|e| {
            let answer = on_failure(self.on_error, &self.url, self.limit, self.window_ns, e)?;
            if let Ask::Decide(_) = ask {
                backend.count(&answer);
            }
            Ok(answer)
        })
    }
}

/// The decision when the storage failed, by the policy.
fn on_failure(
    on_error: OnStorageError,
    url: &str,
    limit: u64,
    window_ns: u64,
    error: impl std::fmt::Display,
) -> PyResult<Decision> {
    match on_error {
        OnStorageError::Raise => Err(storage_error(url, error)),
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

/// Logs, through Python's `logging` (logger `rust_py_rate_limit`), the start of an outage (a
/// warning, saying what decides meanwhile) or its end (info); a logging failure must not fail
/// the request, so it is dropped.
fn log_outage<T>(
    py: Python<'_>,
    began: bool,
    url: &str,
    meanwhile: &str,
    result: &Result<T, crate::store::redis::StorageError>,
) {
    let message = match result {
        Err(error) if began => format!(
            "rate-limit storage {url} failed: {error}; {meanwhile} until it answers again \
             (logged once per outage)"
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
