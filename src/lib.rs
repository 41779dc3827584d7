//! rust-py-rate-limit: rate limiting at the cost of a dict lookup.
//!
//! The pure Rust engine ([`Limiter`] over a [`store::MemoryStore`] running one of the
//! [`algorithm`]s) is usable and tested without Python; the `python` feature adds the PyO3
//! classes that maturin builds into `rust_py_rate_limit._core`.

pub mod algorithm;
pub mod clock;
pub mod concurrency;
pub mod config;
pub mod decision;
pub mod limiter;
pub mod rate;
pub mod store;
pub mod unkeyed;

#[cfg(feature = "python")]
mod python;

pub use algorithm::AlgorithmKind;
pub use clock::{Clock, ManualClock};
pub use config::{ConfigError, LimiterConfig};
pub use decision::Decision;
pub use limiter::Limiter;
pub use rate::{parse_rates, Rate};
