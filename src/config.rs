//! A limiter's settings, checked once at construction. Every refusal names the setting.

use std::fmt;

use crate::algorithm::{AlgorithmKind, Bucket, BucketError};
use crate::clock::{MAX_NS, MAX_NS_TEXT};
use crate::rate::Rate;
use crate::store::OnFull;

/// The largest limit, burst and count a per-key state holds (`u32::MAX`).
pub const MAX_COUNT: u64 = u32::MAX as u64;

/// What a [`Limiter`](crate::Limiter) enforces: its rates, its algorithm and the bounds of its
/// store. [`LimiterConfig::new`] fills in the defaults (no separate burst, no cap on keys); set
/// the other fields with struct update syntax. Nothing is checked until
/// [`Limiter::new`](crate::Limiter::new) (or [`LimiterConfig::validate`]), which names the
/// setting at fault.
///
/// ```
/// use rust_py_rate_limit::{parse_rates, AlgorithmKind, LimiterConfig, OnFull};
///
/// // 10 a second on average, in bursts of up to 20, for at most 100,000 keys, the key expiring
/// // first making room for a new one when full.
/// let config = LimiterConfig {
///     burst: Some(20),
///     max_keys: Some(100_000),
///     on_full: OnFull::Evict,
///     ..LimiterConfig::new(parse_rates("10/second")?, AlgorithmKind::TokenBucket)
/// };
/// assert!(config.validate().is_ok());
///
/// // A fixed window has no burst: refused, naming the setting.
/// let fixed = LimiterConfig {
///     burst: Some(20),
///     ..LimiterConfig::new(parse_rates("10/second")?, AlgorithmKind::Fixed)
/// };
/// assert_eq!(fixed.validate().unwrap_err().param, "burst");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimiterConfig {
    /// The rates, all enforced together: a request is admitted only if every rate admits it,
    /// and then counts in every one. At least one.
    pub rates: Vec<Rate>,
    /// The algorithm deciding every rate.
    pub algorithm: AlgorithmKind,
    /// Capacity of the bucket algorithms (token bucket, leaky bucket, GCRA); `None` means the
    /// limit. Only with a single rate.
    pub burst: Option<u64>,
    /// The most keys tracked at once; `None` for no cap. A full store answers a new key as
    /// [`Self::on_full`] says.
    pub max_keys: Option<usize>,
    /// What a new key gets when there is no room for it.
    pub on_full: OnFull,
}

/// A refused setting: `param` is the argument's name as the user wrote it.
///
/// ```
/// use rust_py_rate_limit::{AlgorithmKind, Clock, Limiter, LimiterConfig, Rate};
///
/// let none_a_second = Rate { limit: 0, period_ns: 1_000_000_000 };
/// let config = LimiterConfig::new(vec![none_a_second], AlgorithmKind::Gcra);
/// let error = Limiter::new(config, Clock::monotonic()).unwrap_err();
/// assert_eq!(error.param, "limit");
/// assert_eq!(error.to_string(), "invalid `limit`: 0 is out of range 1..=4294967295");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting at fault, by its Python keyword (`"limit"`, `"window_seconds"`, `"burst"`,
    /// `"max_keys"`, `"rate"`).
    pub param: &'static str,
    /// Why, naming the value.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.param, self.message)
    }
}

impl std::error::Error for ConfigError {}

pub(crate) fn refuse<T>(param: &'static str, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        param,
        message: message.into(),
    })
}

impl LimiterConfig {
    /// `rates` decided by `algorithm`, with no separate burst, no cap on keys and
    /// [`OnFull::Reject`] (which matters only with a cap).
    pub fn new(rates: Vec<Rate>, algorithm: AlgorithmKind) -> Self {
        LimiterConfig {
            rates,
            algorithm,
            burst: None,
            max_keys: None,
            on_full: OnFull::default(),
        }
    }

    /// Checks the settings; an error names the argument at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.rates.is_empty() {
            return refuse("rate", "at least one rate is required");
        }
        for rate in &self.rates {
            if rate.limit == 0 || rate.limit > MAX_COUNT {
                return refuse(
                    "limit",
                    format!("{} is out of range 1..={MAX_COUNT}", rate.limit),
                );
            }
            if rate.period_ns == 0 {
                return refuse("window_seconds", "must be at least one nanosecond");
            }
            if rate.period_ns > MAX_NS {
                return refuse("window_seconds", format!("must be at most {MAX_NS_TEXT}"));
            }
        }
        if let Some(burst) = self.burst {
            if !self.algorithm.has_burst() {
                return refuse(
                    "burst",
                    format!(
                        "applies to \"token_bucket\", \"leaky_bucket\" and \"gcra\", not {:?}",
                        self.algorithm.name()
                    ),
                );
            }
            if self.rates.len() > 1 {
                return refuse(
                    "burst",
                    "cannot be combined with several rates (each rate's burst is its limit)",
                );
            }
            if burst == 0 || burst > MAX_COUNT {
                return refuse("burst", format!("{burst} is out of range 1..={MAX_COUNT}"));
            }
        }
        if self.max_keys == Some(0) {
            return refuse("max_keys", "must be at least 1");
        }
        if self.algorithm.has_burst() {
            for rate in &self.rates {
                self.bucket(*rate)?;
            }
        }
        Ok(())
    }

    /// The bucket for one rate, with this config's burst (used by the store; an error names
    /// the setting that makes the bucket impossible).
    pub fn bucket(&self, rate: Rate) -> Result<Bucket, ConfigError> {
        let burst = self.burst.unwrap_or(rate.limit);
        Bucket::new(rate, burst).or_else(|e| match e {
            BucketError::TooFast => refuse(
                "limit",
                format!(
                    "{} per {} ns is more than one request per nanosecond",
                    rate.limit, rate.period_ns
                ),
            ),
            BucketError::TooLong => refuse(
                "burst",
                format!("{burst} requests at one per window/limit span more than {MAX_NS_TEXT}"),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rates: Vec<Rate>, algorithm: AlgorithmKind, burst: Option<u64>) -> LimiterConfig {
        LimiterConfig {
            rates,
            algorithm,
            burst,
            max_keys: None,
            on_full: Default::default(),
        }
    }

    const SECOND: Rate = Rate {
        limit: 10,
        period_ns: 1_000_000_000,
    };

    #[test]
    fn refusals_name_the_setting() {
        let cases = [
            (
                config(
                    vec![Rate { limit: 0, ..SECOND }],
                    AlgorithmKind::Fixed,
                    None,
                ),
                "limit",
            ),
            (
                config(
                    vec![Rate {
                        limit: MAX_COUNT + 1,
                        ..SECOND
                    }],
                    AlgorithmKind::Fixed,
                    None,
                ),
                "limit",
            ),
            (
                config(
                    vec![Rate {
                        period_ns: 0,
                        ..SECOND
                    }],
                    AlgorithmKind::Fixed,
                    None,
                ),
                "window_seconds",
            ),
            (config(vec![SECOND], AlgorithmKind::Fixed, Some(5)), "burst"),
            (
                config(vec![SECOND, SECOND], AlgorithmKind::Gcra, Some(5)),
                "burst",
            ),
            (config(vec![SECOND], AlgorithmKind::Gcra, Some(0)), "burst"),
            (
                config(
                    vec![Rate {
                        limit: 10,
                        period_ns: 4,
                    }],
                    AlgorithmKind::Gcra,
                    None,
                ),
                "limit",
            ),
            (config(vec![], AlgorithmKind::Fixed, None), "rate"),
        ];
        for (cfg, param) in cases {
            let err = cfg.validate().unwrap_err();
            assert_eq!(err.param, param, "{cfg:?}: {err}");
            assert!(err.to_string().starts_with(&format!("invalid `{param}`")));
        }
        let mut full = config(vec![SECOND], AlgorithmKind::Fixed, None);
        full.max_keys = Some(0);
        assert_eq!(full.validate().unwrap_err().param, "max_keys");
    }

    #[test]
    fn good_settings_pass() {
        config(vec![SECOND], AlgorithmKind::Gcra, Some(3))
            .validate()
            .unwrap();
        config(
            vec![
                SECOND,
                Rate {
                    limit: 100,
                    period_ns: 60_000_000_000,
                },
            ],
            AlgorithmKind::Sliding,
            None,
        )
        .validate()
        .unwrap();
    }
}
