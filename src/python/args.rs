//! Strict conversion of Python arguments: a bool, a str or a float where an int belongs is a
//! `TypeError`; zero, negative, NaN or infinite values are a `ValueError` naming the parameter.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyFloat, PyInt, PyString};

use crate::rate::NANOS_PER_SECOND;

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A key: any `str`.
#[inline]
pub fn key<'a, 'py>(value: &'a Bound<'py, PyAny>) -> PyResult<&'a Bound<'py, PyString>> {
    value
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err(format!("key must be str, not {}", type_name(value))))
}

/// Runs `f` on the key's bytes: its UTF-8, borrowed from the str (the fast path), or for a str
/// holding lone surrogates (`os.fsdecode` makes them), its `surrogatepass` encoding, which no
/// other str shares and no valid UTF-8 equals.
#[inline]
pub fn with_key_bytes<R>(key: &Bound<'_, PyString>, f: impl FnOnce(&[u8]) -> R) -> PyResult<R> {
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
        Ok(n) if n < 1 => Err(PyValueError::new_err(format!(
            "`{name}` must be at least 1, got {n}"
        ))),
        // Beyond i128 either way: the sign tells which bound is passed.
        _ if value.lt(0)? => Err(PyValueError::new_err(format!(
            "`{name}` must be at least 1, got {}",
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
/// to whole nanoseconds (at least 1 unless zero was given).
pub fn seconds(value: &Bound<'_, PyAny>, name: &str, allow_zero: bool) -> PyResult<(Seconds, u64)> {
    let bound = if allow_zero { ">= 0" } else { "> 0" };
    let given = if value.is_instance_of::<PyBool>() {
        None
    } else if let Ok(int) = value.cast::<PyInt>() {
        match int.extract::<i128>() {
            Ok(n) if n >= 0 && n <= i128::from(u64::MAX) => Some(Seconds::Int(n as u64)),
            Ok(n) => {
                return Err(PyValueError::new_err(format!(
                    "`{name}` must be {bound}, got {n}"
                )));
            }
            // Beyond i128: far too long, or (negative) below zero.
            Err(_) if int.lt(0)? => {
                return Err(PyValueError::new_err(format!(
                    "`{name}` must be {bound}, got {}",
                    value.repr()?
                )));
            }
            Err(_) => {
                return Err(PyValueError::new_err(format!(
                    "`{name}` must be at most 2**62 nanoseconds (about 146 years), got {}",
                    value.repr()?
                )));
            }
        }
    } else if let Ok(float) = value.cast::<PyFloat>() {
        Some(Seconds::Float(float.value()))
    } else {
        None
    };
    let Some(given) = given else {
        return Err(PyTypeError::new_err(format!(
            "`{name}` must be an int or float number of seconds, not {} ({})",
            type_name(value),
            value.repr()?
        )));
    };
    let out_of_range = |detail: &str| {
        PyValueError::new_err(format!(
            "`{name}` must be {bound}{detail}, got {}",
            value.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    };
    let ns = match given {
        Seconds::Int(n) => u128::from(n) * u128::from(NANOS_PER_SECOND),
        Seconds::Float(f) if f.is_nan() || f.is_infinite() => {
            return Err(out_of_range(" and finite"))
        }
        Seconds::Float(f) if f < 0.0 => return Err(out_of_range("")),
        Seconds::Float(f) => {
            let ns = (f * NANOS_PER_SECOND as f64).round();
            if ns > u64::MAX as f64 {
                u128::MAX
            } else {
                ns as u128
            }
        }
    };
    if ns == 0 && !allow_zero {
        return Err(out_of_range(" (and at least one nanosecond)"));
    }
    if ns > u128::from(crate::algorithm::MAX_TOLERANCE_NS) {
        return Err(out_of_range(
            " and at most 2**62 nanoseconds (about 146 years)",
        ));
    }
    Ok((given, ns as u64))
}
