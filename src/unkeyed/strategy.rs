//! `Strategy`: what every unkeyed limiter does, whatever its algorithm.

use std::time::Duration;

use crate::clock::Clock;
use crate::decision::{Decision, NEVER};

use super::atomic_state::Reservation;

/// Why a request did not go, and when the same request would: [`Strategy::process`]'s error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    after_ns: u64,
}

impl Retry {
    /// How long until the same request would be admitted; `None` when never (its cost is more
    /// than the limiter's capacity).
    pub fn after(&self) -> Option<Duration> {
        (self.after_ns != NEVER).then(|| Duration::from_nanos(self.after_ns))
    }
}

/// An unkeyed limiter: one state for the whole process, decided lock-free.
///
/// ```
/// use std::time::Duration;
/// use rust_py_rate_limit::unkeyed::{Strategy, TokenBucket};
/// use rust_py_rate_limit::{Clock, ManualClock};
///
/// let clock = ManualClock::new(0);
/// // 2 tokens, refilled at 1 every 5 seconds.
/// let bucket = TokenBucket::new(2, 1, Duration::from_secs(5))
///     .unwrap()
///     .with_clock(Clock::Manual(clock.clone()));
/// assert!(bucket.process().is_ok());
/// assert!(bucket.process().is_ok());
/// let retry = bucket.process().unwrap_err();
/// assert_eq!(retry.after(), Some(Duration::from_secs(5)));
/// clock.advance_ns(5_000_000_000).unwrap();
/// assert!(bucket.process().is_ok());
/// ```
pub trait Strategy: Send + Sync {
    /// Decides on `cost` at `now` (nanoseconds on [`Self::clock`]), consuming it when admitted.
    fn decide_at(&self, cost: u64, now: u64) -> Decision;

    /// What a request of cost 0 would see at `now`, consuming nothing.
    fn peek_at(&self, now: u64) -> Decision;

    /// The decision [`Self::decide_at`] would make on `cost` at `now`, consuming nothing.
    fn preview_at(&self, cost: u64, now: u64) -> Decision;

    /// Admits `cost` now, or reserves the first instant within `max_wait_ns` at which it
    /// would be admitted (the bucket algorithms; a window only admits at once or refuses).
    fn reserve_at(&self, cost: u64, now: u64, max_wait_ns: u64) -> Reservation;

    /// Gives back `cost` reserved by [`Self::reserve_at`] that will not be used.
    fn refund(&self, cost: u64);

    /// Back to full, as if never used.
    fn reset(&self);

    /// The clock the limiter reads.
    fn clock(&self) -> &Clock;

    /// Decides on `cost` now, consuming it when admitted.
    #[inline(always)]
    fn decide(&self, cost: u64) -> Decision {
        self.decide_at(cost, self.clock().now_ns())
    }

    /// One request now: `Ok` when it goes (consumed), else when to retry.
    #[inline(always)]
    fn process(&self) -> Result<(), Retry> {
        self.process_n(1)
    }

    /// A request of `cost` now: `Ok` when it goes (consumed), else when to retry.
    #[inline(always)]
    fn process_n(&self, cost: u64) -> Result<(), Retry> {
        let decision = self.decide(cost);
        if decision.allowed {
            Ok(())
        } else {
            Err(Retry {
                after_ns: decision.retry_after_ns,
            })
        }
    }

    /// The standing now (`remaining`, `reset_after_ns`), consuming nothing.
    fn peek(&self) -> Decision {
        self.peek_at(self.clock().now_ns())
    }

    /// The decision [`Self::decide`] would make on `cost` now, consuming nothing.
    fn preview(&self, cost: u64) -> Decision {
        self.preview_at(cost, self.clock().now_ns())
    }
}
