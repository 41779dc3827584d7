//! The four unkeyed limiters, each an [`AtomicState`] of one algorithm with the constructor
//! and argument names users of unkeyed limiters know (`capacity`, `increment`, `interval`).

use std::time::Duration;

use crate::algorithm::{self, AlgorithmKind, Bucket};
use crate::clock::Clock;
use crate::config::{ConfigError, LimiterConfig};
use crate::decision::Decision;
use crate::rate::Rate;

use super::atomic_state::{AtomicState, Reservation};
use super::strategy::Strategy;

/// The settings of one rate, checked as a keyed limiter checks them; a refusal names the
/// argument as the constructor calls it (`names` maps the config's names to those).
fn checked(
    kind: AlgorithmKind,
    limit: u64,
    period: Duration,
    burst: Option<u64>,
    names: &[(&'static str, &'static str)],
) -> Result<(LimiterConfig, Rate), ConfigError> {
    let rate = Rate {
        limit,
        period_ns: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX),
    };
    let config = LimiterConfig {
        rates: vec![rate],
        algorithm: kind,
        burst,
        max_keys: None,
        on_full: Default::default(),
    };
    let rename = |mut error: ConfigError| {
        if let Some((_, to)) = names.iter().find(|(from, _)| *from == error.param) {
            error.param = to;
        }
        error
    };
    config.validate().map_err(rename)?;
    if kind.has_burst() {
        config.bucket(rate).map_err(rename)?;
    }
    Ok((config, rate))
}

fn bucket(
    kind: AlgorithmKind,
    limit: u64,
    period: Duration,
    burst: u64,
    names: &[(&'static str, &'static str)],
) -> Result<AtomicState<Bucket>, ConfigError> {
    let (config, rate) = checked(kind, limit, period, Some(burst), names)?;
    Ok(AtomicState::new(config.bucket(rate)?, Clock::monotonic()))
}

macro_rules! strategy {
    ($name:ident) => {
        impl $name {
            /// The same limiter reading `clock` (a [`crate::ManualClock`] in tests).
            pub fn with_clock(mut self, clock: Clock) -> Self {
                self.0.set_clock(clock);
                self
            }
        }

        impl Strategy for $name {
            #[inline(always)]
            fn decide_at(&self, cost: u64, now: u64) -> Decision {
                self.0.decide_at(cost, now)
            }
            fn peek_at(&self, now: u64) -> Decision {
                self.0.peek_at(now)
            }
            fn preview_at(&self, cost: u64, now: u64) -> Decision {
                self.0.preview_at(cost, now)
            }
            fn reserve_at(&self, cost: u64, now: u64, max_wait_ns: u64) -> Reservation {
                self.0.reserve_at(cost, now, max_wait_ns)
            }
            fn refund(&self, cost: u64) {
                self.0.refund(cost)
            }
            fn reset(&self) {
                self.0.reset()
            }
            #[inline(always)]
            fn clock(&self) -> &Clock {
                self.0.clock()
            }
        }
    };
}

/// A bucket of `capacity` tokens, refilled continuously at `increment` tokens every `period`
/// (one token each `period / increment`), starting full. The same decisions as a keyed token
/// bucket of `increment` per `period` with burst `capacity` on one key.
pub struct TokenBucket(AtomicState<Bucket>);

impl TokenBucket {
    /// A full bucket of `capacity` tokens refilled with `increment` every `period`, reading
    /// the monotonic clock ([`Self::with_clock`] for another). A refusal names the argument.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rust_py_rate_limit::{Strategy, TokenBucket};
    ///
    /// // 100 calls a second, in bursts of up to 10.
    /// let bucket = TokenBucket::new(10, 100, Duration::from_secs(1))?;
    /// assert_eq!((0..20).filter(|_| bucket.process().is_ok()).count(), 10);
    /// assert_eq!(TokenBucket::new(0, 1, Duration::from_secs(1)).err().unwrap().param, "capacity");
    /// # Ok::<(), rust_py_rate_limit::ConfigError>(())
    /// ```
    pub fn new(capacity: u64, increment: u64, period: Duration) -> Result<Self, ConfigError> {
        let names = [
            ("limit", "increment"),
            ("burst", "capacity"),
            ("window_seconds", "period"),
        ];
        let kind = AlgorithmKind::TokenBucket;
        bucket(kind, increment, period, capacity, &names).map(TokenBucket)
    }
}

strategy!(TokenBucket);

/// GCRA: `limit` requests per `period`, in bursts of up to `burst` (the limit when None).
pub struct Gcra(AtomicState<Bucket>);

impl Gcra {
    /// `limit` per `period`, one every `period / limit`, in bursts of up to `burst` (the limit
    /// when None), reading the monotonic clock.
    pub fn new(limit: u64, period: Duration, burst: Option<u64>) -> Result<Self, ConfigError> {
        let names = [("window_seconds", "period")];
        let burst = burst.unwrap_or(limit);
        bucket(AlgorithmKind::Gcra, limit, period, burst, &names).map(Gcra)
    }
}

strategy!(Gcra);

/// Up to `capacity` per window of `interval`; a window starts at the first request after the
/// last one ended.
pub struct FixedWindow(AtomicState<algorithm::FixedWindow>);

impl FixedWindow {
    /// Up to `capacity` per window of `interval`, reading the monotonic clock.
    pub fn new(capacity: u64, interval: Duration) -> Result<Self, ConfigError> {
        let names = [("limit", "capacity"), ("window_seconds", "interval")];
        let (_, rate) = checked(AlgorithmKind::Fixed, capacity, interval, None, &names)?;
        let algorithm = algorithm::FixedWindow::new(rate);
        Ok(FixedWindow(AtomicState::new(algorithm, Clock::monotonic())))
    }
}

strategy!(FixedWindow);

/// Up to `capacity` per sliding `interval`: the current window's count plus the previous
/// window's, weighted by how much of it the sliding window still covers.
pub struct SlidingWindow(AtomicState<algorithm::SlidingWindow<u32>>);

impl SlidingWindow {
    /// Up to `capacity` per sliding `interval`, reading the monotonic clock.
    pub fn new(capacity: u64, interval: Duration) -> Result<Self, ConfigError> {
        let names = [("limit", "capacity"), ("window_seconds", "interval")];
        let (_, rate) = checked(AlgorithmKind::Sliding, capacity, interval, None, &names)?;
        let algorithm = algorithm::SlidingWindow::new(rate);
        Ok(SlidingWindow(AtomicState::new(
            algorithm,
            Clock::monotonic(),
        )))
    }
}

strategy!(SlidingWindow);
