//! `SharedStore`: the shared table for the algorithm a limiter was given, chosen at run time.
//! One variant of the limiter's store, so that the in-memory fast path dispatches over as few
//! cases as before, and the shared table's code stays out of it.

use std::sync::Arc;

use super::region::Region;
use super::store::ShmStore;
use crate::algorithm::{AlgorithmKind, Bucket, FixedWindow, SlidingWindow};
use crate::config::{ConfigError, LimiterConfig};
use crate::decision::Decision;
use crate::store::{Store, StoreStats};

pub enum SharedStore {
    Fixed(ShmStore<FixedWindow>),
    /// Limits up to 65,535: the narrow state fits the table's cell.
    Sliding(ShmStore<SlidingWindow<u16>>),
    Bucket(ShmStore<Bucket>),
}

macro_rules! each {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            SharedStore::Fixed($s) => $body,
            SharedStore::Sliding($s) => $body,
            SharedStore::Bucket($s) => $body,
        }
    };
}

impl SharedStore {
    /// The store `config` asks for in `region` (one rate; a sliding window's limit at most
    /// 65,535).
    pub fn new(config: &LimiterConfig, region: Arc<Region>) -> Result<Self, ConfigError> {
        let on_full = config.on_full;
        let [rate] = config.rates[..] else {
            return Err(ConfigError {
                param: "rate",
                message: format!(
                    "a shared-memory limiter takes one rate for now, got {}",
                    config.rates.len()
                ),
            });
        };
        // What every process writes alike for these settings: mixed into each key's tag, so
        // limiters of other settings in the region never meet on a state.
        let settings = format!(
            "{} {}/{}ns burst {:?}",
            config.algorithm, rate.limit, rate.period_ns, config.burst
        );
        Ok(match config.algorithm {
            AlgorithmKind::Fixed => SharedStore::Fixed(ShmStore::new(
                FixedWindow::new(rate),
                &settings,
                region,
                on_full,
            )),
            AlgorithmKind::Sliding if rate.limit <= u64::from(u16::MAX) => SharedStore::Sliding(
                ShmStore::new(SlidingWindow::new(rate), &settings, region, on_full),
            ),
            AlgorithmKind::Sliding => {
                return Err(ConfigError {
                    param: "rate",
                    message: format!(
                        "a sliding window in shared memory counts up to 65535 a window, got \
                         a limit of {}",
                        rate.limit
                    ),
                })
            }
            _ => SharedStore::Bucket(ShmStore::new(
                config.bucket(rate)?,
                &settings,
                region,
                on_full,
            )),
        })
    }

    /// `decide(..).allowed`, out of line (see `Limiter::allow_at`).
    #[cold]
    #[inline(never)]
    pub fn allow(&self, key: &[u8], cost: u64, now: u64) -> bool {
        each!(self, s => s.decide(key, cost, now).allowed)
    }

    pub fn check_table(&self, now: u64) -> Result<(), String> {
        each!(self, s => s.check_table(now))
    }
}

impl Store for SharedStore {
    fn decide(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        each!(self, s => s.decide(key, cost, now))
    }
    fn peek(&self, key: &[u8], now: u64) -> Decision {
        each!(self, s => s.peek(key, now))
    }
    fn preview(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        each!(self, s => s.preview(key, cost, now))
    }
    fn reset(&self, key: &[u8], now: u64) -> bool {
        each!(self, s => s.reset(key, now))
    }
    fn clear(&self, now: u64) {
        each!(self, s => s.clear(now))
    }
    /// Expired states are taken over in place by new keys: there is nothing to sweep.
    fn sweep(&self, _now: u64) -> usize {
        0
    }
    fn stats(&self, now: u64) -> StoreStats {
        each!(self, s => s.stats(now))
    }
}
