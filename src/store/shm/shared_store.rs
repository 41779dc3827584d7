//! `SharedStore`: the shared table for the algorithm and rates a limiter was given, chosen at
//! run time.
//! One variant of the limiter's store, so that the in-memory fast path dispatches over as few
//! cases as before, and the shared table's code stays out of it.

use std::sync::Arc;

use super::rates::RatesStore;
use super::region::Region;
use super::store::{Lifetime, ShmStore};
use super::table::{pad_for_words, slots_for_words, OnFull, MAX_RATES};
use crate::algorithm::{Algorithm, AlgorithmKind, Bucket, FixedWindow, SlidingWindow, WordsState};
use crate::config::{ConfigError, LimiterConfig};
use crate::decision::Decision;
use crate::store::{Store, StoreStats};

pub enum SharedStore {
    Fixed(ShmStore<FixedWindow>),
    /// Limits up to 65,535: the narrow state fits the table's cell (wider ones are `Rates`).
    Sliding(ShmStore<SlidingWindow<u16>>),
    Bucket(ShmStore<Bucket>),
    /// Several rates, or a sliding window counting past 65,535, in a table of wider slots (see
    /// `rates.rs`).
    Rates(Box<dyn SharedRates>),
}

/// A store of several rates (or of a wide sliding window), whatever their algorithm and
/// number.
pub trait SharedRates: Store + Send + Sync {
    fn check_table(&self, now: u64) -> Result<(), String>;
}

impl<A, const R: usize, const E: usize, const N: usize, const P: usize> SharedRates
    for RatesStore<A, R, E, N, P>
where
    A: Algorithm + Lifetime,
    A::State: WordsState,
{
    fn check_table(&self, now: u64) -> Result<(), String> {
        RatesStore::check_table(self, now)
    }
}

impl<A, const R: usize, const E: usize, const N: usize, const P: usize> Store
    for RatesStore<A, R, E, N, P>
where
    A: Algorithm + Lifetime,
    A::State: WordsState,
{
    fn decide(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        RatesStore::decide(self, key, cost, now)
    }
    fn peek(&self, key: &[u8], now: u64) -> Decision {
        RatesStore::peek(self, key, now)
    }
    fn preview(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        RatesStore::preview(self, key, cost, now)
    }
    fn reset(&self, key: &[u8], now: u64) -> bool {
        RatesStore::reset(self, key, now)
    }
    fn clear(&self, now: u64) {
        RatesStore::clear(self, now)
    }
    fn sweep(&self, _now: u64) -> usize {
        0
    }
    fn stats(&self, now: u64) -> StoreStats {
        RatesStore::stats(self, now)
    }
}

macro_rules! each {
    ($store:expr, $s:ident => $body:expr, $r:ident => $rates:expr) => {
        match $store {
            SharedStore::Fixed($s) => $body,
            SharedStore::Sliding($s) => $body,
            SharedStore::Bucket($s) => $body,
            SharedStore::Rates($r) => $rates,
        }
    };
}

fn refuse(message: String) -> ConfigError {
    ConfigError {
        param: "rate",
        message,
    }
}

/// The store of `R` rates of one algorithm whose states take `E` words in all, over a table
/// of such slots (`N` a bucket, after `P` bytes of padding).
fn rates_of<A, const R: usize, const E: usize, const N: usize, const P: usize>(
    rates: Vec<A>,
    settings: &str,
    region: Arc<Region>,
    on_full: OnFull,
) -> Box<dyn SharedRates>
where
    A: Algorithm + Lifetime,
    A::State: WordsState,
{
    Box::new(RatesStore::<A, R, E, N, P>::new(
        rates, settings, region, on_full,
    ))
}

/// The store of `rates` (2 to [`MAX_RATES`]) of an algorithm whose state takes one word.
fn narrow_rates<A>(
    rates: Vec<A>,
    settings: &str,
    region: Arc<Region>,
    on_full: OnFull,
) -> Box<dyn SharedRates>
where
    A: Algorithm + Lifetime,
    A::State: WordsState,
{
    match rates.len() {
        2 => rates_of::<A, 2, 2, { slots_for_words(2) }, { pad_for_words(2) }>(
            rates, settings, region, on_full,
        ),
        3 => rates_of::<A, 3, 3, { slots_for_words(3) }, { pad_for_words(3) }>(
            rates, settings, region, on_full,
        ),
        _ => rates_of::<A, 4, 4, { slots_for_words(4) }, { pad_for_words(4) }>(
            rates, settings, region, on_full,
        ),
    }
}

/// The store of 1 to [`MAX_RATES`] sliding windows counting past 65,535 (two words each).
fn wide_sliding(
    rates: Vec<SlidingWindow<u32>>,
    settings: &str,
    region: Arc<Region>,
    on_full: OnFull,
) -> Box<dyn SharedRates> {
    type S = SlidingWindow<u32>;
    match rates.len() {
        1 => rates_of::<S, 1, 2, { slots_for_words(2) }, { pad_for_words(2) }>(
            rates, settings, region, on_full,
        ),
        2 => rates_of::<S, 2, 4, { slots_for_words(4) }, { pad_for_words(4) }>(
            rates, settings, region, on_full,
        ),
        3 => rates_of::<S, 3, 6, { slots_for_words(6) }, { pad_for_words(6) }>(
            rates, settings, region, on_full,
        ),
        _ => rates_of::<S, 4, 8, { slots_for_words(8) }, { pad_for_words(8) }>(
            rates, settings, region, on_full,
        ),
    }
}

/// Whether `config` is a sliding window counting past 65,535 in some window: its counts then
/// take 32 bits, and its state two words.
fn wide_sliding_config(config: &LimiterConfig) -> bool {
    config.algorithm == AlgorithmKind::Sliding
        && config.rates.iter().any(|r| r.limit > u64::from(u16::MAX))
}

impl SharedStore {
    /// Refuses what a shared table cannot hold: more than [`MAX_RATES`] rates. Checked before
    /// a table is opened. (The configuration keeps limits and bursts within `u32::MAX`, so an
    /// admitted cost fits the 32 bits a control word keeps of it.)
    pub fn check(config: &LimiterConfig) -> Result<(), ConfigError> {
        if config.rates.len() > MAX_RATES as usize {
            return Err(refuse(format!(
                "a shared-memory limiter takes at most {MAX_RATES} rates, got {}",
                config.rates.len()
            )));
        }
        Ok(())
    }

    /// The words of state a slot of `config`'s table holds: 1 for one rate whose state fits a
    /// cell (the one-rate table), else a word per rate (two for a sliding window counting past
    /// 65,535).
    pub fn words(config: &LimiterConfig) -> u32 {
        let rates = config.rates.len() as u32;
        match (rates, wide_sliding_config(config)) {
            (_, true) => 2 * rates,
            (1, false) => 1,
            (_, false) => rates,
        }
    }

    /// The store `config` asks for in `region`, a table opened for [`Self::words`] (see
    /// [`Self::check`] for what is refused).
    pub fn new(config: &LimiterConfig, region: Arc<Region>) -> Result<Self, ConfigError> {
        Self::check(config)?;
        let held = region.header().words;
        if held != Self::words(config) {
            return Err(refuse(format!(
                "the table {} has slots of {held} words of state, not the {} these rates take",
                region.path().display(),
                Self::words(config)
            )));
        }
        let on_full = config.on_full;
        // What every process writes alike for these settings: mixed into each key's tag, so
        // limiters of other settings in the region never meet on a state.
        let rates: Vec<String> = config
            .rates
            .iter()
            .map(|rate| format!("{}/{}ns", rate.limit, rate.period_ns))
            .collect();
        let settings = format!(
            "{} {} burst {:?}",
            config.algorithm,
            rates.join(" "),
            config.burst
        );
        let rates = &config.rates;
        if wide_sliding_config(config) {
            let windows = rates
                .iter()
                .map(|r| SlidingWindow::<u32>::new(*r))
                .collect();
            return Ok(SharedStore::Rates(wide_sliding(
                windows, &settings, region, on_full,
            )));
        }
        if let [rate] = rates[..] {
            return Ok(match config.algorithm {
                AlgorithmKind::Fixed => SharedStore::Fixed(ShmStore::new(
                    FixedWindow::new(rate),
                    &settings,
                    region,
                    on_full,
                )),
                AlgorithmKind::Sliding => SharedStore::Sliding(ShmStore::new(
                    SlidingWindow::new(rate),
                    &settings,
                    region,
                    on_full,
                )),
                _ => SharedStore::Bucket(ShmStore::new(
                    config.bucket(rate)?,
                    &settings,
                    region,
                    on_full,
                )),
            });
        }
        Ok(SharedStore::Rates(match config.algorithm {
            AlgorithmKind::Fixed => narrow_rates(
                rates.iter().map(|r| FixedWindow::new(*r)).collect(),
                &settings,
                region,
                on_full,
            ),
            AlgorithmKind::Sliding => narrow_rates(
                rates
                    .iter()
                    .map(|r| SlidingWindow::<u16>::new(*r))
                    .collect(),
                &settings,
                region,
                on_full,
            ),
            _ => narrow_rates(
                rates
                    .iter()
                    .map(|r| config.bucket(*r))
                    .collect::<Result<Vec<_>, _>>()?,
                &settings,
                region,
                on_full,
            ),
        }))
    }

    /// `decide(..).allowed`, out of line (see `Limiter::allow_at`).
    #[cold]
    #[inline(never)]
    pub fn allow(&self, key: &[u8], cost: u64, now: u64) -> bool {
        each!(self, s => s.decide(key, cost, now).allowed, r => r.decide(key, cost, now).allowed)
    }

    pub fn check_table(&self, now: u64) -> Result<(), String> {
        each!(self, s => s.check_table(now), r => r.check_table(now))
    }
}

impl Store for SharedStore {
    fn decide(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        each!(self, s => s.decide(key, cost, now), r => r.decide(key, cost, now))
    }
    fn peek(&self, key: &[u8], now: u64) -> Decision {
        each!(self, s => s.peek(key, now), r => r.peek(key, now))
    }
    fn preview(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        each!(self, s => s.preview(key, cost, now), r => r.preview(key, cost, now))
    }
    fn reset(&self, key: &[u8], now: u64) -> bool {
        each!(self, s => s.reset(key, now), r => r.reset(key, now))
    }
    fn clear(&self, now: u64) {
        each!(self, s => s.clear(now), r => r.clear(now))
    }
    /// Expired states are taken over in place by new keys: there is nothing to sweep.
    fn sweep(&self, _now: u64) -> usize {
        0
    }
    fn stats(&self, now: u64) -> StoreStats {
        each!(self, s => s.stats(now), r => r.stats(now))
    }
}
