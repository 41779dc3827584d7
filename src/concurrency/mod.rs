//! Concurrency limits: how many permits are held at once, per key or for all, with a bounded
//! wait queue (fifo or lifo, by priority) and a fixed or an adaptive limit.
//!
//! [`limiter::ConcurrencyLimiter`] is the table of slots; [`slot`] is one key's permits, queue
//! and limit; [`queue`] orders the waiters; [`adaptive`] learns a limit from latency, one pure
//! step per algorithm.

pub mod adaptive;
pub mod config;
pub mod limiter;
pub mod queue;
pub mod slot;

pub use config::{ConcurrencyConfig, ConcurrencyConfigError, LimitSetting, MAX_LIMIT};
pub use limiter::{
    Acquired, ConcurrencyLimiter, ConcurrencyStats, Notice, Permit, Refusal, Ticket,
};
pub use queue::Order;
