//! What the limiters count about themselves, for `stats()`, the exporters and the dashboard.

mod histogram;
mod stats_json;
mod top_keys;

pub use histogram::{Histogram, HistogramSnapshot, DURATION_BOUNDS_NS, LATENCY_BOUNDS_NS};
pub use stats_json::stats_json;
pub use top_keys::{keep_most_counted, Counted, TopKeys};
