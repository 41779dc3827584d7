//! A [`HistogramSnapshot`] as Python reads it: the `Histogram` TypedDict of
//! `rust_py_rate_limit.results`, in seconds.

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::metrics::HistogramSnapshot;
use crate::rate::NANOS_PER_SECOND;

/// `{"buckets": [(upper bound in seconds, observations at or below it), ...], "count": n,
/// "sum": seconds}`, the buckets cumulative as Prometheus reads them (`+Inf` is `count`).
pub fn histogram_dict<'py>(
    py: Python<'py>,
    snapshot: &HistogramSnapshot,
) -> PyResult<Bound<'py, PyDict>> {
    let seconds = |ns: u64| ns as f64 / NANOS_PER_SECOND as f64;
    let buckets: Vec<(f64, u64)> = snapshot
        .cumulative
        .iter()
        .map(|&(bound, n)| (seconds(bound), n))
        .collect();
    let out = PyDict::new(py);
    out.set_item("buckets", buckets)?;
    out.set_item("count", snapshot.count)?;
    out.set_item("sum", seconds(snapshot.sum_ns))?;
    Ok(out)
}
