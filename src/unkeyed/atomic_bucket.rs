//! `AtomicBucket`: a token bucket (or GCRA, or leaky bucket: one algorithm, see
//! `algorithm/bucket.rs`) whose whole state is its theoretical arrival time in one `AtomicU64`,
//! updated by a compare-and-swap loop. Refill is computed at call time: no lock, no thread.
//!
//! It decides exactly as a keyed [`crate::Limiter`] of the same rate and burst does on one
//! key: the state is the same timestamp, and a never-used or stale timestamp (any `tat <= now`,
//! 0 included) decides as no state at all.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::algorithm::Algorithm;
use crate::algorithm::{AlgorithmKind, Bucket, BucketState, PackedState};
use crate::clock::Clock;
use crate::config::{ConfigError, LimiterConfig};
use crate::decision::Decision;
use crate::rate::Rate;

pub struct AtomicBucket {
    algorithm: Bucket,
    /// Nanoseconds on `clock`: when the bucket is full again.
    tat: AtomicU64,
    clock: Clock,
}

fn to_word(state: BucketState) -> u64 {
    let [lo, hi, _] = state.pack();
    u64::from(lo) | (u64::from(hi) << 32)
}

fn from_word(word: u64) -> BucketState {
    BucketState::unpack([word as u32, (word >> 32) as u32, 0])
}

impl AtomicBucket {
    /// A bucket of `capacity` tokens refilled with `increment` tokens every `period_ns`
    /// (continuously: one token each `period_ns / increment`), starting full. The same
    /// decisions as a keyed token bucket of `increment` per `period_ns` with burst `capacity`.
    pub fn token_bucket(
        capacity: u64,
        increment: u64,
        period_ns: u64,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        Self::new(increment, period_ns, capacity, clock)
    }

    /// GCRA admitting `limit` per `period_ns`, with bursts of up to `burst` (the limit when
    /// None).
    pub fn gcra(
        limit: u64,
        period_ns: u64,
        burst: Option<u64>,
        clock: Clock,
    ) -> Result<Self, ConfigError> {
        Self::new(limit, period_ns, burst.unwrap_or(limit), clock)
    }

    fn new(limit: u64, period_ns: u64, burst: u64, clock: Clock) -> Result<Self, ConfigError> {
        let rate = Rate { limit, period_ns };
        let config = LimiterConfig {
            rates: vec![rate],
            algorithm: AlgorithmKind::Gcra,
            burst: Some(burst),
            max_keys: None,
            on_full: Default::default(),
        };
        config.validate()?;
        Ok(AtomicBucket {
            algorithm: config.bucket(rate)?,
            tat: AtomicU64::new(0),
            clock,
        })
    }

    /// Decides on `cost` now, consuming it when admitted.
    #[inline]
    pub fn decide(&self, cost: u64) -> Decision {
        self.decide_at(cost, self.clock.now_ns())
    }

    /// Decides on `cost` at `now`: a compare-and-swap of the arrival time from the value the
    /// decision read (a denial writes nothing).
    #[inline]
    pub fn decide_at(&self, cost: u64, now: u64) -> Decision {
        let mut current = self.tat.load(Ordering::Acquire);
        loop {
            let (decision, next) = self.algorithm.decide(Some(from_word(current)), now, cost);
            let Some(next) = next else {
                return decision;
            };
            match self.tat.compare_exchange_weak(
                current,
                to_word(next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return decision,
                Err(actual) => current = actual,
            }
        }
    }

    /// Whether a request of one token goes now (consuming it).
    #[inline]
    pub fn process(&self) -> bool {
        self.decide(1).allowed
    }

    /// Whether a request of `cost` tokens goes now (consuming them).
    #[inline]
    pub fn process_n(&self, cost: u64) -> bool {
        self.decide(cost).allowed
    }

    /// The standing now, consuming nothing.
    pub fn peek(&self) -> Decision {
        let now = self.clock.now_ns();
        self.algorithm
            .peek(Some(from_word(self.tat.load(Ordering::Acquire))), now)
    }

    /// Full again.
    pub fn reset(&self) {
        self.tat.store(0, Ordering::Release);
    }
}

#[cfg(test)]
#[path = "atomic_bucket_tests.rs"]
mod tests;
