//! A configured limiter: the store for its algorithm and rates, and its clock. This is the
//! whole engine; the Python class is a thin shell over it.

use crate::algorithm::{
    AlgorithmKind, Bucket, BucketState, FixedState, FixedWindow, SlidingState, SlidingWindow,
};
use crate::clock::{Clock, MAX_NS};
use crate::config::{ConfigError, LimiterConfig};
use crate::decision::{Ask, Decision, NEVER};
use crate::metrics::{keep_most_counted, Counted, TopKeys};
#[cfg(unix)]
use crate::store::shm::region::Region;
#[cfg(unix)]
use crate::store::shm::SharedStore;
use crate::store::{MemoryStore, MultiRate, SingleRate, Store, StoreStats};
use crate::unkeyed::Reservation;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
#[cfg(unix)]
use std::sync::Arc;

/// The store, specialised per algorithm and per single/several rates so that the common case
/// (one rate) stores the bare state with no indirection.
enum AnyStore {
    Fixed(MemoryStore<SingleRate<FixedWindow>>),
    /// Two rates, their states inline in the entry; three or more in a boxed list.
    FixedPair(MemoryStore<MultiRate<FixedWindow, [FixedState; 2]>>),
    FixedMulti(MemoryStore<MultiRate<FixedWindow>>),
    /// Limits up to 65,535: counts stored as `u16`, a 12-byte state instead of 16.
    SlidingNarrow(MemoryStore<SingleRate<SlidingWindow<u16>>>),
    Sliding(MemoryStore<SingleRate<SlidingWindow>>),
    SlidingPair(MemoryStore<MultiRate<SlidingWindow, [SlidingState; 2]>>),
    SlidingMulti(MemoryStore<MultiRate<SlidingWindow>>),
    Bucket(MemoryStore<SingleRate<Bucket>>),
    BucketPair(MemoryStore<MultiRate<Bucket, [BucketState; 2]>>),
    BucketMulti(MemoryStore<MultiRate<Bucket>>),
    /// A table in shared memory (`storage="shm://..."`); its own enum, so that this match
    /// has one case more than the in-memory stores, not one per algorithm.
    #[cfg(unix)]
    Shared(Box<SharedStore>),
}

macro_rules! dispatch {
    ($store:expr, $s:ident => $body:expr) => {
        dispatch!($store, $s => $body, shared $s => $body)
    };
    ($store:expr, $s:ident => $body:expr, shared $t:ident => $shared:expr) => {
        match $store {
            AnyStore::Fixed($s) => $body,
            AnyStore::FixedPair($s) => $body,
            AnyStore::FixedMulti($s) => $body,
            AnyStore::SlidingNarrow($s) => $body,
            AnyStore::Sliding($s) => $body,
            AnyStore::SlidingPair($s) => $body,
            AnyStore::SlidingMulti($s) => $body,
            AnyStore::Bucket($s) => $body,
            AnyStore::BucketPair($s) => $body,
            AnyStore::BucketMulti($s) => $body,
            #[cfg(unix)]
            AnyStore::Shared($t) => {
                let $t: &SharedStore = $t;
                $shared
            }
        }
    };
}

/// A keyed rate limiter: one state per key, decided under the [`LimiterConfig`]'s rates and
/// algorithm at the time its [`Clock`] shows. This is the whole engine; Python's `RateLimiter`
/// is a thin shell over it.
///
/// Keys are any bytes (`&str`, `String`, `&[u8]`, `Vec<u8>`...). Calls take `&self` and the
/// limiter is `Send + Sync`, so threads share one through an [`std::sync::Arc`]; keys
/// spread over shards, each behind its own lock.
///
/// ```
/// use rust_py_rate_limit::{parse_rates, AlgorithmKind, Clock, Limiter, LimiterConfig, ManualClock};
///
/// // A token bucket: 10 a second on average, at most 5 at once.
/// let clock = ManualClock::new(0);
/// let config = LimiterConfig {
///     burst: Some(5),
///     ..LimiterConfig::new(parse_rates("10/second")?, AlgorithmKind::TokenBucket)
/// };
/// let limiter = Limiter::new(config, Clock::Manual(clock.clone()))?;
///
/// let first = limiter.decide("client-a", 1);
/// assert!(first.allowed);
/// assert_eq!(first.remaining, 4);
/// assert!(limiter.allow("client-a", 4)); // a cost of 4 takes the rest of the burst
///
/// // `preview` answers as `decide` would, consuming nothing; `peek` shows the key's standing.
/// let refused = limiter.preview("client-a", 1);
/// assert!(!refused.allowed);
/// assert_eq!(refused.retry_after_ns, 100_000_000); // one token every 100 ms
/// assert_eq!(limiter.peek("client-a").remaining, 0);
///
/// clock.advance_ns(100_000_000)?;
/// assert!(limiter.allow("client-a", 1));
/// assert!(!limiter.allow("client-a", 1));
///
/// // `reset` forgets a key (its next request starts afresh); `stats` counts the decisions.
/// assert!(limiter.reset("client-a"));
/// assert!(limiter.allow("client-a", 5));
/// let stats = limiter.stats();
/// assert_eq!((stats.allowed, stats.blocked, stats.active_keys), (4, 1, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Limiter {
    store: AnyStore,
    clock: Clock,
    config: LimiterConfig,
    /// The most refused keys among decisions that no in-memory shard tracks: a shared
    /// table's, and those made elsewhere and told with [`Self::note_refused`] (Redis).
    outside_top: OutsideTop,
}

/// [`Limiter::track_top`]'s tracker for the refusals no shard sees, under one lock (taken
/// only on a refusal, and only when tracking).
#[derive(Default)]
struct OutsideTop {
    on: AtomicBool,
    hasher: foldhash::fast::RandomState,
    top: parking_lot::Mutex<Option<TopKeys>>,
}

impl OutsideTop {
    #[cold]
    #[inline(never)]
    fn note(&self, key: &[u8]) {
        if let Some(top) = self.top.lock().as_mut() {
            top.record(self.hasher.hash_one(key), key, 1);
        }
    }
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("config", &self.config)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl Limiter {
    /// A limiter keeping its states in this process's memory, reading time from `clock`.
    /// Refuses settings that cannot work (no rate, a limit of 0, a burst with a fixed
    /// window...), naming the setting in [`ConfigError::param`].
    pub fn new(config: LimiterConfig, clock: Clock) -> Result<Self, ConfigError> {
        config.validate()?;
        let max_keys = config.max_keys;
        let rates = &config.rates;
        let fixed = || {
            rates
                .iter()
                .map(|r| FixedWindow::new(*r))
                .collect::<Vec<_>>()
        };
        let sliding = || {
            rates
                .iter()
                .map(|r| SlidingWindow::new(*r))
                .collect::<Vec<_>>()
        };
        let buckets = || {
            rates
                .iter()
                .map(|r| config.bucket(*r))
                .collect::<Result<Vec<_>, _>>()
        };
        let mut store = match (config.algorithm, rates.len()) {
            (AlgorithmKind::Fixed, 1) => AnyStore::Fixed(MemoryStore::new(
                SingleRate(FixedWindow::new(rates[0])),
                max_keys,
            )),
            (AlgorithmKind::Fixed, 2) => {
                AnyStore::FixedPair(MemoryStore::new(MultiRate::new(fixed()), max_keys))
            }
            (AlgorithmKind::Fixed, _) => {
                AnyStore::FixedMulti(MemoryStore::new(MultiRate::new(fixed()), max_keys))
            }
            (AlgorithmKind::Sliding, 1) if rates[0].limit <= u16::MAX as u64 => {
                let single = SingleRate(SlidingWindow::new(rates[0]));
                AnyStore::SlidingNarrow(MemoryStore::new(single, max_keys))
            }
            (AlgorithmKind::Sliding, 1) => {
                let single = SingleRate(SlidingWindow::new(rates[0]));
                AnyStore::Sliding(MemoryStore::new(single, max_keys))
            }
            (AlgorithmKind::Sliding, 2) => {
                AnyStore::SlidingPair(MemoryStore::new(MultiRate::new(sliding()), max_keys))
            }
            (AlgorithmKind::Sliding, _) => {
                AnyStore::SlidingMulti(MemoryStore::new(MultiRate::new(sliding()), max_keys))
            }
            (_, 1) => AnyStore::Bucket(MemoryStore::new(
                SingleRate(config.bucket(rates[0])?),
                max_keys,
            )),
            (_, 2) => AnyStore::BucketPair(MemoryStore::new(MultiRate::new(buckets()?), max_keys)),
            (_, _) => AnyStore::BucketMulti(MemoryStore::new(MultiRate::new(buckets()?), max_keys)),
        };
        let on_full = config.on_full;
        dispatch!(&mut store, s => s.set_on_full(on_full), shared _s => ());
        Ok(Limiter {
            store,
            clock,
            config,
            outside_top: OutsideTop::default(),
        })
    }

    /// A limiter whose states live in the shared `region` (a table whose slots hold
    /// `SharedStore::words(&config)` words of state): every process that opens the region
    /// with the same settings shares them. `on_full` says what a new key gets when its bucket of the table is full.
    #[cfg(unix)]
    pub fn shared(
        config: LimiterConfig,
        clock: Clock,
        region: Arc<Region>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let store = AnyStore::Shared(Box::new(SharedStore::new(&config, region)?));
        Ok(Limiter {
            store,
            clock,
            config,
            outside_top: OutsideTop::default(),
        })
    }

    /// The settings the limiter was built with.
    pub fn config(&self) -> &LimiterConfig {
        &self.config
    }

    /// Decides on `cost` for `key` (any bytes: `"user:42"`, `b"user:42"`): when admitted, the
    /// cost is consumed. A denied request consumes nothing; its [`Decision::retry_after_ns`]
    /// says when the same request would be admitted ([`crate::decision::NEVER`] when the cost
    /// exceeds the capacity). Counted in [`Self::stats`].
    pub fn decide(&self, key: &(impl AsRef<[u8]> + ?Sized), cost: u64) -> Decision {
        let key = key.as_ref();
        let now = self.clock.now_ns();
        dispatch!(&self.store, s => s.decide(key, cost, now), shared t => {
            let decision = t.decide(key, cost, now);
            self.shared_refused(decision.allowed, key);
            decision
        })
    }

    /// Notes a shared table's refusal of `key` for [`Self::top_refused`] (the in-memory
    /// shards note their own).
    #[inline(always)]
    fn shared_refused(&self, allowed: bool, key: &[u8]) {
        if !allowed && self.outside_top.on.load(Ordering::Relaxed) {
            self.outside_top.note(key);
        }
    }

    /// Tracks the keys refused most often, up to `capacity` of them in each shard of an
    /// in-memory store (and `capacity` for a shared table's refusals and those told by
    /// [`Self::note_refused`]); None stops tracking and forgets them. See
    /// [`crate::metrics::TopKeys`] for the error bound.
    ///
    /// With `in_shards` false the in-memory shards track nothing and only what is told counts
    /// (a Redis limiter, whose answers include those of its in-memory fallback).
    pub fn track_top(&self, capacity: Option<usize>, in_shards: bool) {
        let shards = capacity.filter(|_| in_shards);
        dispatch!(&self.store, s => s.track_top(shards), shared _t => ());
        *self.outside_top.top.lock() = capacity.map(TopKeys::new);
        self.outside_top
            .on
            .store(capacity.is_some(), Ordering::Relaxed);
    }

    /// Counts a refusal of `key` decided outside this limiter (by Redis) among the most
    /// refused keys, when tracking.
    pub fn note_refused(&self, key: &[u8]) {
        if self.outside_top.on.load(Ordering::Relaxed) {
            self.outside_top.note(key);
        }
    }

    /// The `n` keys refused most often since the last reset of the tracker, most first, with
    /// the number of refusals counted since then (`N` of the error bound); `reset` starts a
    /// new interval. None when not tracking.
    pub fn top_refused(&self, n: usize, reset: bool) -> Option<(Vec<Counted>, u64)> {
        let in_memory = dispatch!(&self.store, s => s.top_refused(n, reset), shared _t => None);
        let mut outside = self.outside_top.top.lock();
        let outside = outside.as_mut()?;
        let (mut all, mut total) = in_memory.unwrap_or_default();
        outside.read_into(n, reset, &mut all, &mut total);
        // A key is counted by its shard or by the told tracker, never both (see
        // `track_top`'s `in_shards`).
        keep_most_counted(&mut all, n);
        Some((all, total))
    }

    /// `decide(key, cost).allowed`, compiled separately so that the parts of the decision it
    /// does not need (remaining, reset and retry times) are never computed.
    pub fn allow(&self, key: &(impl AsRef<[u8]> + ?Sized), cost: u64) -> bool {
        self.allow_at(key.as_ref(), cost, self.clock.now_ns())
    }

    /// The clock the limiter reads.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The limiter's clock, for callers that read it ahead of `allow_at`.
    #[inline(always)]
    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// `allow` at a time read from [`Self::now_ns`]. Always inlined, into the hand-written
    /// `allow` of the Python module above all: a call and its prologue were ~18 instructions.
    #[inline(always)]
    pub fn allow_at(&self, key: &[u8], cost: u64, now: u64) -> bool {
        // The shared table's loop stays out of line: inlined here, it made LLVM move the whole
        // in-memory fast path out of the Python method (+41 instructions a call).
        dispatch!(&self.store, s => s.allow(key, cost, now), shared t => {
            let allowed = t.allow(key, cost, now);
            self.shared_refused(allowed, key);
            allowed
        })
    }

    /// The key's standing now, consuming nothing and counted nowhere: what a request of cost 0
    /// would see (`remaining`, `reset_after_ns`; Python's `RateLimiter.remaining`).
    pub fn peek(&self, key: &(impl AsRef<[u8]> + ?Sized)) -> Decision {
        let key = key.as_ref();
        let now = self.clock.now_ns();
        dispatch!(&self.store, s => s.peek(key, now))
    }

    /// The decision [`Self::decide`] would make now, consuming nothing and counted in no
    /// statistic (`RateLimiter.peek`).
    pub fn preview(&self, key: &(impl AsRef<[u8]> + ?Sized), cost: u64) -> Decision {
        let key = key.as_ref();
        let now = self.clock.now_ns();
        dispatch!(&self.store, s => s.preview(key, cost, now))
    }

    /// Answers `ask` for `key`: [`Self::decide`], [`Self::preview`] or [`Self::peek`].
    pub fn answer(&self, key: &(impl AsRef<[u8]> + ?Sized), ask: Ask) -> Decision {
        match ask {
            Ask::Decide(cost) => self.decide(key, cost),
            Ask::Preview(cost) => self.preview(key, cost),
            Ask::Standing => self.peek(key),
        }
    }

    /// Admits `cost` for `key` now, or, on a limiter that can reserve (one rate of a bucket
    /// algorithm, in memory), reserves the first instant within `max_wait_ns` at which it
    /// would be admitted: the key's state counts it from that instant, so later callers queue
    /// behind it, and the caller sleeps [`Reservation::wait_ns`] before it goes. Otherwise
    /// (windows, several rates, shared memory) a denial comes back with its retry time, for
    /// the caller to sleep and decide again.
    pub fn reserve(
        &self,
        key: &(impl AsRef<[u8]> + ?Sized),
        cost: u64,
        max_wait_ns: u64,
    ) -> Reservation {
        let key = key.as_ref();
        let AnyStore::Bucket(store) = &self.store else {
            let decision = self.decide(key, cost);
            return Reservation {
                decision,
                wait_ns: 0,
            };
        };
        loop {
            let now = self.clock.now_ns();
            let preview = store.preview(key, cost, now);
            let wait = preview.retry_after_ns;
            if preview.allowed || wait == NEVER || wait > max_wait_ns {
                let decision = store.decide(key, cost, now);
                return Reservation {
                    decision,
                    wait_ns: 0,
                };
            }
            let at = now.saturating_add(wait).min(MAX_NS);
            if let Some(decision) = store.decide_tracked(key, cost, at) {
                if decision.allowed {
                    return Reservation {
                        decision,
                        wait_ns: wait,
                    };
                }
            }
            // Someone took that instant (or the key went) meanwhile: look again.
        }
    }

    /// Gives back `cost` reserved by [`Self::reserve`] and not used (a waiter that timed out
    /// or was cancelled).
    pub fn refund(&self, key: &(impl AsRef<[u8]> + ?Sized), cost: u64) {
        if let AnyStore::Bucket(store) = &self.store {
            store.refund(key.as_ref(), cost);
        }
    }

    /// Forgets `key`, whose next request starts with a full budget; true when it was tracked.
    pub fn reset(&self, key: &(impl AsRef<[u8]> + ?Sized)) -> bool {
        let key = key.as_ref();
        let now = self.clock.now_ns();
        dispatch!(&self.store, s => Store::reset(s, key, now))
    }

    /// Forgets every key.
    pub fn clear(&self) {
        let now = self.clock.now_ns();
        dispatch!(&self.store, s => Store::clear(s, now))
    }

    /// Removes the keys whose state has expired (indistinguishable from a key never seen, so
    /// no decision changes); returns how many. Nothing runs in the background: call it now and
    /// then, or cap the keys with [`LimiterConfig::max_keys`].
    pub fn cleanup_expired(&self) -> usize {
        let now = self.clock.now_ns();
        dispatch!(&self.store, s => Store::sweep(s, now))
    }

    /// For a shared-memory limiter, checks its table's invariants (after finishing any change
    /// a dead process left under way); None for other stores.
    #[cfg(unix)]
    pub fn check_shared_table(&self) -> Option<Result<(), String>> {
        let now = self.clock.now_ns();
        match &self.store {
            AnyStore::Shared(s) => Some(s.check_table(now)),
            _ => None,
        }
    }

    /// Decisions counted since creation (by [`Self::decide`] and [`Self::allow`]) and the keys
    /// tracked now.
    pub fn stats(&self) -> StoreStats {
        let now = self.clock.now_ns();
        dispatch!(&self.store, s => Store::stats(s, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::rate::{parse_rates, NANOS_PER_SECOND};

    fn limiter(rates: &str, algorithm: AlgorithmKind, clock: &ManualClock) -> Limiter {
        let config = LimiterConfig {
            rates: parse_rates(rates).unwrap(),
            algorithm,
            burst: None,
            max_keys: None,
            on_full: Default::default(),
        };
        Limiter::new(config, Clock::Manual(clock.clone())).unwrap()
    }

    #[test]
    fn a_limiter_is_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Limiter>();
    }

    #[test]
    fn every_algorithm_admits_the_limit_then_recovers_after_the_window() {
        for algorithm in AlgorithmKind::ALL {
            let clock = ManualClock::new(0);
            let l = limiter("5/second", algorithm, &clock);
            let admitted = (0..10).filter(|_| l.decide("k", 1).allowed).count();
            assert_eq!(admitted, 5, "{algorithm}");
            clock.advance_ns(2 * NANOS_PER_SECOND).unwrap();
            assert!(l.decide("k", 1).allowed, "{algorithm}");
            assert_eq!(l.cleanup_expired(), 0, "{algorithm}: the key was just used");
            clock.advance_ns(10 * NANOS_PER_SECOND).unwrap();
            assert_eq!(l.cleanup_expired(), 1, "{algorithm}: idle keys are swept");
        }
    }

    #[test]
    fn the_most_refused_keys_are_tracked_on_request_and_reset_by_interval() {
        let clock = ManualClock::new(0);
        let l = limiter("1/hour", AlgorithmKind::Fixed, &clock);
        assert_eq!(l.top_refused(10, false), None, "not tracked by default");
        l.track_top(Some(8), true);
        for (key, tries) in [("a", 5), ("b", 9), ("c", 2), ("d", 1)] {
            for _ in 0..tries {
                l.allow(key, 1);
            }
        }
        l.note_refused(b"redis-key");
        let (top, total) = l.top_refused(3, true).unwrap();
        let top: Vec<(&[u8], u64)> = top.iter().map(|c| (&*c.key, c.count)).collect();
        assert_eq!(top, [(&b"b"[..], 8), (b"a", 4), (b"c", 1)]);
        assert_eq!(total, 8 + 4 + 1 + 1, "every refusal, the one told included");
        let (top, total) = l.top_refused(3, false).unwrap();
        assert!(top.is_empty() && total == 0, "reset started a new interval");
        l.track_top(None, true);
        assert!(!l.allow("a", 1));
        assert_eq!(l.top_refused(3, false), None);
    }

    #[test]
    fn resetting_while_threads_refuse_loses_and_doubles_no_refusal() {
        // Few keys (fewer than a shard monitors): the counts are exact, so the intervals that
        // resets cut, added up, are every refusal, in the shards and in the told tracker. The
        // threads refuse until several resets have cut intervals with counts in them, so the
        // race is run however the threads are scheduled.
        use std::sync::atomic::{AtomicBool, AtomicU64};
        const RACED_INTERVALS: usize = 3;
        let clock = ManualClock::new(0);
        let l = std::sync::Arc::new(limiter("1/hour", AlgorithmKind::Fixed, &clock));
        l.track_top(Some(16), true);
        let keys: Vec<String> = (0..8).map(|i| format!("client:{i}")).collect();
        for key in &keys {
            assert!(l.allow(key, 1));
        }
        let stop = AtomicBool::new(false);
        let refused: Vec<AtomicU64> = (0..keys.len() / 2).map(|_| AtomicU64::new(0)).collect();
        let mut seen: std::collections::HashMap<Vec<u8>, u64> = Default::default();
        let read = |reset: bool, seen: &mut std::collections::HashMap<Vec<u8>, u64>| {
            let (top, total) = l.top_refused(100, reset).unwrap();
            assert_eq!(total, top.iter().map(|c| c.count).sum::<u64>());
            for c in top {
                *seen.entry(c.key.to_vec()).or_default() += c.count;
            }
            total
        };
        std::thread::scope(|scope| {
            for (pair, refused) in keys.chunks(2).zip(&refused) {
                let (l, stop) = (&l, &stop);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        assert!(!l.allow(&pair[0], 1));
                        l.note_refused(pair[1].as_bytes());
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
            let mut intervals_with_counts = 0;
            while intervals_with_counts < RACED_INTERVALS {
                intervals_with_counts += usize::from(read(true, &mut seen) > 0);
            }
            stop.store(true, Ordering::Relaxed);
        });
        read(true, &mut seen);
        let expected: std::collections::HashMap<Vec<u8>, u64> = keys
            .chunks(2)
            .zip(&refused)
            .flat_map(|(pair, n)| {
                let n = n.load(Ordering::Relaxed);
                pair.iter().map(move |k| (k.as_bytes().to_vec(), n))
            })
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_bucket_key_reserves_instants_in_order_and_takes_refunds_back() {
        let clock = ManualClock::new(0);
        let l = limiter("1/second", AlgorithmKind::TokenBucket, &clock);
        let s = NANOS_PER_SECOND;
        let waits: Vec<u64> = (0..3).map(|_| l.reserve("k", 1, 10 * s).wait_ns).collect();
        assert_eq!(waits, [0, s, 2 * s]);
        let refused = l.reserve("k", 1, s);
        assert!(!refused.decision.allowed);
        assert_eq!(refused.decision.retry_after_ns, 3 * s);
        l.refund("k", 1);
        assert_eq!(
            l.reserve("k", 1, 10 * s).wait_ns,
            2 * s,
            "the refunded instant"
        );
        assert!(l.reserve("other", 1, 0).decision.allowed, "keys are apart");
        // A window reserves nothing: the wait comes back with the refusal.
        let w = limiter("1/second", AlgorithmKind::Fixed, &clock);
        assert_eq!(w.reserve("k", 1, 10 * s).wait_ns, 0);
        let denied = w.reserve("k", 1, 10 * s);
        assert!(!denied.decision.allowed);
        assert_eq!(denied.decision.retry_after_ns, s);
    }

    #[test]
    fn several_rates_are_enforced_together_for_every_algorithm() {
        for algorithm in AlgorithmKind::ALL {
            let clock = ManualClock::new(0);
            let l = limiter("3/second; 4/minute", algorithm, &clock);
            assert_eq!(
                (0..5).filter(|_| l.decide("k", 1).allowed).count(),
                3,
                "{algorithm}"
            );
            clock.advance_ns(5 * NANOS_PER_SECOND).unwrap();
            // Only one more fits the minute, whatever the second allows.
            assert_eq!(
                (0..5).filter(|_| l.decide("k", 1).allowed).count(),
                1,
                "{algorithm}"
            );
            let d = l.decide("k", 1);
            assert_eq!(
                d.limit, 4,
                "{algorithm}: the minute rate is the one that denies"
            );
        }
    }
}
