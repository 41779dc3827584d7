//! Strict conversion of Python arguments: a bool, a str or a float where an int belongs is a
//! `TypeError`; zero, negative, NaN or infinite values are a `ValueError` naming the parameter.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use crate::clock::{MAX_NS, MAX_NS_TEXT};
use crate::rate::NANOS_PER_SECOND;

pub fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A setting spelled as one of a few names (`choices` in words, for the error): its text.
pub fn choice(value: &Bound<'_, PyAny>, name: &str, choices: &str) -> PyResult<String> {
    let text = value.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "`{name}` must be a str ({choices}), not {}",
            type_name(value)
        ))
    })?;
    Ok(text.to_string_lossy().into_owned())
}

/// `name=` of a limiter: a `str` with something besides whitespace, or None (the default,
/// which the limiter derives from its settings).
pub fn name_setting(value: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let text = value.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!(
            "`name` must be a str, not {} ({})",
            type_name(value),
            value.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })?;
    let text = text.to_str()?;
    if text.trim().is_empty() {
        return Err(PyValueError::new_err(format!(
            "`name` must not be empty, got {text:?}"
        )));
    }
    Ok(Some(text.to_string()))
}

/// A flag: True or False (None, as for every other setting, the default `default`).
pub fn flag(value: Option<&Bound<'_, PyAny>>, name: &str, default: bool) -> PyResult<bool> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(default);
    };
    value.cast::<PyBool>().map(|b| b.is_true()).map_err(|_| {
        PyTypeError::new_err(format!(
            "`{name}` must be True or False, not {} ({})",
            type_name(value),
            value.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}

/// A key: any `str`.
#[inline]
pub fn key<'a, 'py>(value: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyString>> {
    value
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("key must be str, not {}", type_name(value))))
}

/// Runs `f` on a key's bytes: its UTF-8, borrowed from the str (the fast path), or for a str
/// holding lone surrogates (`os.fsdecode` makes them), its `surrogatepass` encoding, which no
/// other str shares and no valid UTF-8 equals. Anything but a str is a `TypeError`.
#[inline]
pub fn with_key<R>(value: &Bound<'_, PyAny>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
    let key = self::key(value)?;
    match key.to_str() {
        Ok(text) => Ok(f(text.as_bytes())),
        Err(_) => {
            let py = key.py();
            let encoded = key.call_method1(
                intern!(py, "encode"),
                (intern!(py, "utf-8"), intern!(py, "surrogatepass")),
            )?;
            Ok(f(encoded.cast::<PyBytes>()?.as_bytes()))
        }
    }
}

/// An int >= 1 that is not a bool, at most `max`.
pub fn positive_int(value: &Bound<'_, PyAny>, name: &str, max: u64) -> PyResult<u64> {
    if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "`{name}` must be an int, not {} ({})",
            type_name(value),
            value.repr()?
        )));
    }
    match value.extract::<i128>() {
        Ok(n) if n >= 1 && n <= i128::from(max) => Ok(n as u64),
        Ok(0) => Err(PyValueError::new_err(format!(
            "`{name}` must be at least 1, got 0"
        ))),
        // Beyond i128 either way: the sign tells which bound is passed.
        Ok(_) | Err(_) if value.lt(0)? => Err(PyValueError::new_err(format!(
            "`{name}` must be at least 1, got {} (a negative number)",
            value.repr()?
        ))),
        _ => Err(PyValueError::new_err(format!(
            "`{name}` must be at most {max}, got {}",
            value.repr()?
        ))),
    }
}

/// The cost of one call: 1 when omitted; an int >= 1 otherwise. A cost beyond `u64` is more
/// than any capacity, so it is taken as `u64::MAX` and simply denied.
#[inline]
pub fn cost(value: Option<&Bound<'_, PyAny>>) -> PyResult<u64> {
    let Some(value) = value else { return Ok(1) };
    let is_int = value.is_exact_instance_of::<PyInt>()
        || (value.is_instance_of::<PyInt>() && !value.is_instance_of::<PyBool>());
    if is_int {
        match value.extract::<u64>() {
            Ok(n) if n >= 1 => return Ok(n),
            Err(_) if value.gt(0)? => return Ok(u64::MAX),
            _ => {}
        }
    }
    positive_int(value, "cost", u64::MAX)
}

/// A duration in seconds as given (int or float), kept for display.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Seconds {
    Int(u64),
    Float(f64),
}

impl Seconds {
    pub fn from_ns(ns: u64) -> Self {
        if ns % NANOS_PER_SECOND == 0 {
            Seconds::Int(ns / NANOS_PER_SECOND)
        } else {
            Seconds::Float(ns as f64 / NANOS_PER_SECOND as f64)
        }
    }

    pub fn to_object<'py>(self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self {
            Seconds::Int(n) => n.into_pyobject(py)?.into_any(),
            Seconds::Float(f) => PyFloat::new(py, f).into_any(),
        })
    }
}

impl std::fmt::Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Seconds::Int(n) => write!(f, "{n}"),
            Seconds::Float(x) => write!(f, "{x:?}"),
        }
    }
}

/// Seconds as an int or float, finite, above zero (or at zero when `allow_zero`), converted
/// to whole nanoseconds (at least 1 unless zero is allowed), at most [`MAX_NS`].
pub fn seconds(value: &Bound<'_, PyAny>, name: &str, allow_zero: bool) -> PyResult<(Seconds, u64)> {
    let bound = if allow_zero { ">= 0" } else { "> 0" };
    let refuse = |detail: String| {
        let got = value.repr().map(|r| r.to_string()).unwrap_or_default();
        PyValueError::new_err(format!("`{name}` must be {bound}{detail}, got {got}"))
    };
    let too_long = || refuse(format!(" and at most {MAX_NS_TEXT}"));
    let (given, ns) = if value.is_instance_of::<PyBool>() {
        return Err(not_seconds(value, name));
    } else if let Ok(int) = value.cast::<PyInt>() {
        if int.lt(0)? {
            return Err(refuse(String::new()));
        }
        let n = int.extract::<u64>().map_err(|_| too_long())?;
        (
            Seconds::Int(n),
            u128::from(n) * u128::from(NANOS_PER_SECOND),
        )
    } else if let Ok(float) = value.cast::<PyFloat>() {
        let f = float.value();
        if !f.is_finite() {
            return Err(refuse(" and finite".into()));
        }
        if f < 0.0 {
            return Err(refuse(String::new()));
        }
        // Saturating float-to-int conversion: anything too large fails the bound below.
        (
            Seconds::Float(f),
            (f * NANOS_PER_SECOND as f64).round() as u128,
        )
    } else {
        return Err(not_seconds(value, name));
    };
    if ns == 0 && !allow_zero {
        return Err(refuse(" (and at least one nanosecond)".into()));
    }
    if ns > u128::from(MAX_NS) {
        return Err(too_long());
    }
    Ok((given, ns as u64))
}

fn not_seconds(value: &Bound<'_, PyAny>, name: &str) -> PyErr {
    let repr = value.repr().map(|r| r.to_string()).unwrap_or_default();
    PyTypeError::new_err(format!(
        "`{name}` must be an int or float number of seconds, not {} ({repr})",
        type_name(value)
    ))
}
