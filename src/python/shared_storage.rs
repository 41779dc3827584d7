//! The Python side of `storage="shm://NAME"`: a limiter whose states live in a table shared by
//! the processes of the host. Decisions are made in process, through the same `Limiter` as in
//! memory (so `allow()` keeps its fast path); only the store and the clock differ.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use super::args;
use super::storage::{refuse_redis_settings, StorageError, StorageOptions};
use crate::clock::Clock;
use crate::config::{ConfigError, LimiterConfig};
use crate::limiter::Limiter;
use crate::store::shm::open::open_table;
use crate::store::shm::region::RegionError;
use crate::store::shm::url::{is_shm_url, parse_shm_url};
use crate::store::shm::{OnFull, SharedStore};

fn given<'a, 'py>(value: Option<&'a Bound<'py, PyAny>>) -> Option<&'a Bound<'py, PyAny>> {
    value.filter(|v| !v.is_none())
}

/// The `on_full=` setting: what a new key gets when there is no room for it.
pub fn on_full_setting(value: Option<&Bound<'_, PyAny>>) -> PyResult<OnFull> {
    let Some(value) = given(value) else {
        return Ok(OnFull::Reject);
    };
    let text = value.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "`on_full` must be 'reject' or 'evict', not {}",
            args::type_name(value)
        ))
    })?;
    match text.to_str()? {
        "reject" => Ok(OnFull::Reject),
        "evict" => Ok(OnFull::Evict),
        other => Err(PyValueError::new_err(format!(
            "`on_full` must be 'reject' or 'evict', got {other:?}"
        ))),
    }
}

/// The `shm://` URL the options give, if they give one.
pub fn shared_url(opts: &StorageOptions<'_, '_>) -> PyResult<Option<String>> {
    let Some(storage) = given(opts.storage) else {
        return Ok(None);
    };
    let Ok(text) = storage.cast::<PyString>() else {
        return Ok(None);
    };
    let text = text.to_str()?;
    Ok(is_shm_url(text).then(|| text.to_string()))
}

pub fn region_error(e: RegionError) -> PyErr {
    StorageError::new_err(e.to_string())
}

fn config_error(e: ConfigError) -> PyErr {
    PyValueError::new_err(format!("storage=\"shm://...\": {e}"))
}

/// A limiter on the table `url` names. Settings that only mean something with Redis, and the
/// sweeper (expired states are taken over in place), are refused; `max_keys` is the capacity
/// when the URL gives none. Without a `clock=`, every process reads the region's clock.
pub fn shared_limiter(
    url: &str,
    opts: &StorageOptions<'_, '_>,
    config: LimiterConfig,
    clock: Option<Clock>,
    cleanup_interval_given: bool,
) -> PyResult<Limiter> {
    refuse_redis_settings(opts, ", not shm://")?;
    if cleanup_interval_given {
        return Err(PyValueError::new_err(
            "`cleanup_interval` does not apply to shm://: expired states are taken over in \
             place by new keys, with no sweeper",
        ));
    }
    let parsed = parse_shm_url(url).map_err(PyValueError::new_err)?;
    let capacity = match (parsed.capacity, config.max_keys) {
        (Some(c), Some(m)) if c != m as u64 => {
            return Err(PyValueError::new_err(format!(
                "`max_keys` ({m}) and the URL's capacity ({c}) disagree: give one of them"
            )))
        }
        (Some(c), _) => Some(c),
        (None, m) => m.map(|m| m as u64),
    };
    config.validate().map_err(config_error)?;
    SharedStore::check(&config).map_err(config_error)?;
    let words = SharedStore::words(&config);
    let region = open_table(&parsed.dir, &parsed.name, capacity, words).map_err(region_error)?;
    let clock = clock.unwrap_or(Clock::Shared(*region.clock()));
    Limiter::shared(config, clock, Arc::clone(&region)).map_err(config_error)
}
