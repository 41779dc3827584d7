//! The in-process store: a DashMap from key to per-key state.
//!
//! Each call hashes the key once (randomly seeded foldhash: keys are attacker-controlled),
//! takes its shard's lock, and runs the policy's pure step on the key's state in place. A
//! shard lock is held for tens of nanoseconds and never across a call into Python; there is
//! no global lock. Counters live per shard and are updated under the shard lock, so the hot
//! path does no atomic read-modify-write beyond the lock itself.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::{DashMap, SharedValue};

use super::key::CompactKey;
use super::policy::Policy;
use crate::decision::Decision;
use crate::rate::NANOS_PER_SECOND;

type Hasher = foldhash::fast::RandomState;

/// How often a full map may sweep for room, by the limiter's clock.
const FULL_SWEEP_EVERY_NS: u64 = NANOS_PER_SECOND;

/// Totals since creation; `active_keys` is the number of tracked keys now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub allowed: u64,
    pub blocked: u64,
    pub rejected_full: u64,
    pub active_keys: u64,
}

impl StoreStats {
    pub fn total_checks(&self) -> u64 {
        self.allowed + self.blocked
    }
}

/// One shard's counters, on a cache line of its own. Written only under the shard's lock.
#[derive(Default)]
#[repr(align(128))]
struct ShardCounters {
    allowed: AtomicU64,
    blocked: AtomicU64,
    rejected_full: AtomicU64,
}

impl ShardCounters {
    /// Increments without a read-modify-write: the caller holds the shard's write lock.
    #[inline]
    fn bump(counter: &AtomicU64) {
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[inline]
    fn record(&self, decision: &Decision) {
        Self::bump(if decision.allowed {
            &self.allowed
        } else {
            &self.blocked
        });
    }
}

pub struct MemoryStore<P: Policy> {
    policy: P,
    map: DashMap<CompactKey, P::Value, Hasher>,
    counters: Box<[ShardCounters]>,
    tracked: AtomicUsize,
    max_keys: Option<usize>,
    /// 1 + the time of the last sweep made for room; 0 = never.
    last_full_sweep: AtomicU64,
}

impl<P: Policy> MemoryStore<P> {
    pub fn new(policy: P, max_keys: Option<usize>) -> Self {
        let map = DashMap::with_hasher(Hasher::default());
        let counters = (0..map.shards().len())
            .map(|_| ShardCounters::default())
            .collect();
        MemoryStore {
            policy,
            map,
            counters,
            tracked: AtomicUsize::new(0),
            max_keys,
            last_full_sweep: AtomicU64::new(0),
        }
    }

    pub fn policy(&self) -> &P {
        &self.policy
    }

    #[inline]
    fn hash(&self, key: &str) -> u64 {
        self.map.hasher().hash_one(key)
    }

    /// Decides on `cost` for `key` at `now`, consuming when admitted.
    #[inline]
    pub fn decide(&self, key: &str, cost: u64, now: u64) -> Decision {
        let hash = self.hash(key);
        let shard = self.map.determine_shard(hash as usize);
        let counters = &self.counters[shard];
        let mut swept = false;
        loop {
            let mut table = self.map.shards()[shard].write();
            if let Some((_, value)) = table.get_mut(hash, |(k, _)| k.as_str() == key) {
                let decision = self.policy.apply(value.get_mut(), now, cost);
                counters.record(&decision);
                return decision;
            }
            let (decision, value) = self.policy.apply_fresh(now, cost);
            let Some(value) = value else {
                counters.record(&decision);
                return decision;
            };
            if self.reserve_slot() {
                let entry = (CompactKey::new(key), SharedValue::new(value));
                table.insert(hash, entry, |(k, _)| self.hash(k.as_str()));
                counters.record(&decision);
                return decision;
            }
            if !swept && self.claim_full_sweep(now) {
                drop(table);
                self.sweep(now);
                swept = true;
                continue;
            }
            ShardCounters::bump(&counters.blocked);
            ShardCounters::bump(&counters.rejected_full);
            return self.full_decision();
        }
    }

    /// The key's standing at `now`, consuming nothing.
    pub fn peek(&self, key: &str, now: u64) -> Decision {
        let hash = self.hash(key);
        let shard = self.map.determine_shard(hash as usize);
        let table = self.map.shards()[shard].read();
        let value = table
            .find(hash, |(k, _)| k.as_str() == key)
            // SAFETY: the bucket was just found in this table, which the read guard keeps alive
            // and unchanged while the reference is used.
            .map(|bucket| unsafe { bucket.as_ref() }.1.get());
        self.policy.peek(value, now)
    }

    /// Forgets `key`; true if it was tracked.
    pub fn reset(&self, key: &str) -> bool {
        let hash = self.hash(key);
        let shard = self.map.determine_shard(hash as usize);
        let removed = self.map.shards()[shard]
            .write()
            .remove_entry(hash, |(k, _)| k.as_str() == key)
            .is_some();
        if removed {
            self.tracked.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Forgets every key (counters are kept).
    pub fn clear(&self) {
        for shard in self.map.shards() {
            let mut table = shard.write();
            let n = table.len();
            table.clear();
            self.tracked.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Removes every expired key, one shard at a time; returns how many.
    pub fn sweep(&self, now: u64) -> usize {
        let mut removed = 0;
        for shard in self.map.shards() {
            let mut table = shard.write();
            let before = table.len();
            // SAFETY: erasing the item just yielded is allowed while iterating a RawTable; the
            // write guard excludes every other access.
            unsafe {
                for bucket in table.iter() {
                    if self.policy.is_expired(bucket.as_ref().1.get(), now) {
                        table.erase(bucket);
                    }
                }
            }
            let gone = before - table.len();
            let (len, buckets) = (table.len(), table.buckets());
            if gone > 0 && len * 4 < buckets {
                table.shrink_to(len, |(k, _)| self.hash(k.as_str()));
            }
            removed += gone;
        }
        self.tracked.fetch_sub(removed, Ordering::Relaxed);
        removed
    }

    pub fn len(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn stats(&self) -> StoreStats {
        let mut stats = StoreStats {
            active_keys: self.len() as u64,
            ..StoreStats::default()
        };
        for c in self.counters.iter() {
            stats.allowed += c.allowed.load(Ordering::Relaxed);
            stats.blocked += c.blocked.load(Ordering::Relaxed);
            stats.rejected_full += c.rejected_full.load(Ordering::Relaxed);
        }
        stats
    }

    /// Counts one more tracked key unless that would pass `max_keys`.
    #[inline]
    fn reserve_slot(&self) -> bool {
        match self.max_keys {
            None => {
                self.tracked.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(max) => self
                .tracked
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < max).then_some(n + 1)
                })
                .is_ok(),
        }
    }

    /// True for the one caller that may sweep for room now (at most one sweep a second).
    fn claim_full_sweep(&self, now: u64) -> bool {
        let last = self.last_full_sweep.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last - 1) >= FULL_SWEEP_EVERY_NS;
        due && self
            .last_full_sweep
            .compare_exchange(
                last,
                now.saturating_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// The answer for a new key when the map is full: denied for one window.
    fn full_decision(&self) -> Decision {
        let rate = self.policy.primary();
        Decision {
            allowed: false,
            limit: rate.limit,
            remaining: 0,
            reset_after_ns: rate.period_ns,
            retry_after_ns: rate.period_ns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{Bucket, FixedWindow};
    use crate::rate::Rate;
    use crate::store::policy::SingleRate;

    fn fixed(
        limit: u64,
        period_ns: u64,
        max_keys: Option<usize>,
    ) -> MemoryStore<SingleRate<FixedWindow>> {
        MemoryStore::new(
            SingleRate(FixedWindow::new(Rate { limit, period_ns })),
            max_keys,
        )
    }

    #[test]
    fn keys_are_independent_and_counted() {
        let s = fixed(2, 100, None);
        assert!(s.decide("a", 1, 0).allowed);
        assert!(s.decide("a", 1, 0).allowed);
        assert!(!s.decide("a", 1, 0).allowed);
        assert!(
            s.decide("a much longer key than fifteen bytes", 1, 0)
                .allowed
        );
        let stats = s.stats();
        assert_eq!((stats.allowed, stats.blocked, stats.active_keys), (3, 1, 2));
        assert_eq!(stats.total_checks(), 4);
    }

    #[test]
    fn peek_reset_and_clear() {
        let s = fixed(3, 100, None);
        s.decide("a", 2, 0);
        s.decide("b", 1, 0);
        assert_eq!(s.peek("a", 1).remaining, 1);
        assert_eq!(s.peek("zzz", 1).remaining, 3);
        assert_eq!(s.len(), 2, "peek does not track keys");
        assert!(s.reset("a"));
        assert!(!s.reset("a"));
        assert_eq!(s.peek("a", 1).remaining, 3);
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.peek("b", 1).remaining, 3);
    }

    #[test]
    fn sweep_removes_only_expired_keys() {
        let s = fixed(3, 100, None);
        for i in 0..1000 {
            s.decide(&format!("old-{i}"), 1, 0);
        }
        s.decide("young", 1, 50);
        assert_eq!(s.sweep(99), 0);
        assert_eq!(s.sweep(100), 1000);
        assert_eq!(s.len(), 1);
        assert_eq!(s.peek("young", 100).remaining, 2);
    }

    #[test]
    fn a_full_map_reclaims_expired_keys_then_refuses_new_ones() {
        let s = fixed(1, 100, Some(2));
        assert!(s.decide("a", 1, 0).allowed);
        assert!(s.decide("b", 1, 0).allowed);
        let d = s.decide("c", 1, 10);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ns, 100);
        // Tracked keys keep their state: they are never evicted for a newcomer.
        assert!(!s.decide("a", 1, 10).allowed);
        // Once expired, their room is reclaimed (the first sweep was at 10, a second one is
        // allowed a second later).
        let later = 10 + NANOS_PER_SECOND;
        assert!(s.decide("c", 1, later).allowed);
        assert_eq!(s.len(), 1);
        let stats = s.stats();
        assert_eq!((stats.rejected_full, stats.blocked), (1, 2));
    }

    #[test]
    fn a_full_map_sweeps_at_most_once_a_second() {
        let s = fixed(1, 100, Some(1));
        assert!(s.decide("a", 1, 0).allowed);
        assert!(!s.decide("b", 1, 50).allowed); // sweeps (finds nothing), then refuses
                                                // "a" expires at 100, but the next sweep may only run at 50 + 1 s.
        assert!(!s.decide("b", 1, 200).allowed);
        assert!(s.decide("b", 1, 50 + NANOS_PER_SECOND).allowed);
    }

    #[test]
    fn eight_threads_on_one_key_admit_exactly_the_capacity() {
        let s = std::sync::Arc::new(MemoryStore::new(
            SingleRate(
                Bucket::new(
                    Rate {
                        limit: 1000,
                        period_ns: NANOS_PER_SECOND,
                    },
                    1000,
                )
                .unwrap(),
            ),
            None,
        ));
        let admitted: usize = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    (0..500).filter(|_| s.decide("hot", 1, 7).allowed).count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, 1000);
    }
}
