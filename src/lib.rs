//! rust-py-rate-limit: rate limiting at the cost of a dict lookup.
//!
//! The engine behind the Python package, usable from Rust without Python (the `python` feature,
//! off by default, adds the PyO3 classes that maturin builds into `rust_py_rate_limit._core`).
//!
//! A [`Limiter`] keeps one state per key (any bytes: `"user:42"`, an IP address) in a sharded
//! in-memory map and decides each request with one of five algorithms ([`AlgorithmKind`]:
//! fixed window, sliding window, token bucket, leaky bucket, GCRA) under one or more [`Rate`]s,
//! written as strings that [`parse_rates`] reads (`"100/minute"`, `"10/second; 1000/hour"`).
//! It reads time from a [`Clock`]: [`Clock::monotonic`] in production, a [`ManualClock`] in
//! tests, which moves only when told to. Each call returns a [`Decision`] (admitted or not,
//! what remains, how long to wait), or just a `bool` from [`Limiter::allow`].
//!
//! ```
//! use rust_py_rate_limit::{parse_rates, AlgorithmKind, Clock, Limiter, LimiterConfig, ManualClock};
//!
//! let clock = ManualClock::new(0);
//! let config = LimiterConfig::new(parse_rates("3/second")?, AlgorithmKind::Fixed);
//! let limiter = Limiter::new(config, Clock::Manual(clock.clone()))?;
//!
//! // Three requests a second for each key, then a refusal that says how long to wait.
//! for _ in 0..3 {
//!     assert!(limiter.allow("user:42", 1));
//! }
//! let denied = limiter.decide("user:42", 1);
//! assert!(!denied.allowed);
//! assert_eq!(denied.remaining, 0);
//! assert_eq!(denied.retry_after_ns, 1_000_000_000);
//! // Another key has its own budget.
//! assert!(limiter.allow("user:7", 1));
//!
//! // Time moves only when the test says so; after the wait the key is admitted again.
//! clock.advance_ns(denied.retry_after_ns)?;
//! assert!(limiter.allow("user:42", 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`Limiter`] is `Send + Sync`: share it between threads behind an [`Arc`](std::sync::Arc).
//! The program `examples/rust/keyed.rs` (`cargo run --example keyed`) runs one on a manual and
//! on a real clock.
//!
//! The modules below the re-exports hold the parts the limiter is made of (the algorithms as
//! pure decision steps, the stores, the shared-memory table, the concurrency limiter); most
//! users need only the items re-exported here.

// Every public item of the modules a Rust user meets is documented (clippy -D warnings turns
// this into an error); the internal modules marked `allow` below are documented where it helps.
#![warn(missing_docs)]

pub mod algorithm;
pub mod clock;
#[allow(missing_docs)]
pub mod concurrency;
pub mod config;
pub mod decision;
pub mod limiter;
#[allow(missing_docs)]
pub mod metrics;
pub mod rate;
#[allow(missing_docs)]
pub mod store;
pub mod unkeyed;

#[cfg(feature = "python")]
mod python;

pub use algorithm::AlgorithmKind;
pub use clock::{Clock, ClockOverflow, ManualClock, MonotonicClock};
pub use config::{ConfigError, LimiterConfig};
pub use decision::Decision;
pub use limiter::Limiter;
pub use rate::{parse_rates, Rate, RateParseError};
pub use store::{OnFull, StoreStats};
pub use unkeyed::{FixedWindow, Gcra, SlidingWindow, Strategy, TokenBucket};

/// The Rust examples of the documentation site's Rust page, compiled and run by `cargo test`
/// as doctests (its other code blocks are marked `python`, `bash`, `toml` or `text`, which
/// rustdoc leaves alone).
#[cfg(doctest)]
#[doc = include_str!("../docs/rust.md")]
pub struct RustPageDoctests;
