//! The settings of a concurrency limiter, checked once at construction.

use super::adaptive::{AdaptiveConfig, AdaptiveError};
use super::queue::Order;

/// The most permits a limiter may hold at once (and the most a waiter may ask for).
pub const MAX_LIMIT: u32 = 1 << 30;

/// How many permits may be in flight: a number, or one learned from latency.
#[derive(Clone, Debug, PartialEq)]
pub enum LimitSetting {
    Fixed(u32),
    Adaptive(AdaptiveConfig),
}

impl LimitSetting {
    /// The most permits one acquisition may ask for.
    pub fn max_cost(&self) -> u32 {
        match self {
            LimitSetting::Fixed(limit) => *limit,
            LimitSetting::Adaptive(config) => config.max_limit,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConcurrencyConfig {
    pub limit: LimitSetting,
    /// How many callers may wait for a permit, per key (0: never wait).
    pub queue: u32,
    /// The longest a caller waits; `None` waits until served.
    pub queue_timeout_ns: Option<u64>,
    pub order: Order,
    /// The most keys tracked at once (a key with nothing in flight and nobody waiting is not
    /// tracked); `None` for no bound.
    pub max_keys: Option<usize>,
}

/// A setting out of range, with the message that names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConcurrencyConfigError(pub String);

impl std::fmt::Display for ConcurrencyConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConcurrencyConfigError {}

impl From<AdaptiveError> for ConcurrencyConfigError {
    fn from(error: AdaptiveError) -> Self {
        ConcurrencyConfigError(error.to_string())
    }
}

impl ConcurrencyConfig {
    /// `limit` permits, no queue.
    pub fn fixed(limit: u32) -> Self {
        ConcurrencyConfig {
            limit: LimitSetting::Fixed(limit),
            queue: 0,
            queue_timeout_ns: Some(0),
            order: Order::Fifo,
            max_keys: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConcurrencyConfigError> {
        let err = |text: String| Err(ConcurrencyConfigError(text));
        match &self.limit {
            LimitSetting::Fixed(0) => return err("`limit` must be at least 1, got 0".into()),
            LimitSetting::Fixed(limit) if *limit > MAX_LIMIT => {
                return err(format!("`limit` must be at most {MAX_LIMIT}, got {limit}"))
            }
            LimitSetting::Fixed(_) => {}
            LimitSetting::Adaptive(config) => {
                config.validate()?;
                if config.max_limit > MAX_LIMIT {
                    return err(format!(
                        "`max_limit` must be at most {MAX_LIMIT}, got {}",
                        config.max_limit
                    ));
                }
            }
        }
        if self.max_keys == Some(0) {
            return err("`max_keys` must be at least 1, got 0".into());
        }
        Ok(())
    }
}
