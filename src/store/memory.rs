//! The in-process store: a sharded hash map from key to per-key state.
//!
//! Each call hashes the key once (randomly seeded foldhash: keys are attacker-controlled),
//! takes its shard's lock, and runs the policy's pure step on the key's state in place. A
//! shard lock is held for tens of nanoseconds and never across a call into Python; there is
//! no global lock. Counters live in the shard under its lock, so the hot path does one atomic
//! operation in all (taking the lock).

use std::hash::{BuildHasher, Hasher as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use hashbrown::HashTable;

use super::key::CompactKey;
use super::on_full::OnFull;
use super::policy::Policy;
use super::shard_lock::ShardLock;
use crate::decision::Decision;
use crate::metrics::{keep_most_counted, Counted, TopKeys};
use crate::rate::NANOS_PER_SECOND;

type Hasher = foldhash::fast::RandomState;

/// How often a full map may sweep for room, by the limiter's clock.
const FULL_SWEEP_EVERY_NS: u64 = NANOS_PER_SECOND;

/// Entries of one shard an eviction looks at (the one expiring first goes).
const EVICTION_SAMPLE: usize = 16;

/// Totals since creation; `active_keys` is the number of tracked keys now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub allowed: u64,
    pub blocked: u64,
    pub rejected_full: u64,
    pub active_keys: u64,
    /// Live states forgotten to make room for new keys (`on_full="evict"`).
    pub evicted: u64,
}

impl StoreStats {
    pub fn total_checks(&self) -> u64 {
        self.allowed + self.blocked
    }

    /// Every figure by its public name, in the order `stats()` reports them.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("allowed", self.allowed),
            ("blocked", self.blocked),
            ("total_checks", self.total_checks()),
            ("active_keys", self.active_keys),
            ("rejected_full", self.rejected_full),
            ("evicted", self.evicted),
        ]
    }
}

struct Shard<V> {
    table: HashTable<(CompactKey, V)>,
    allowed: u64,
    blocked: u64,
    rejected_full: u64,
    evicted: u64,
    /// The shard's most refused keys (`track_top`), or None when not tracked. Per shard, so it
    /// is updated under the lock the decision already holds: the keys of two shards never
    /// meet, and the store's top is the union of the shards' (see [`MemoryStore::top_refused`]).
    top: Option<Box<TopKeys>>,
}

impl<V> Shard<V> {
    #[inline]
    fn record(&mut self, decision: &Decision, hash: u64, key: &[u8]) {
        if decision.allowed {
            self.allowed += 1;
        } else {
            self.refused(hash, key);
        }
    }

    #[inline]
    fn refused(&mut self, hash: u64, key: &[u8]) {
        self.blocked += 1;
        if let Some(top) = &mut self.top {
            // The same offender again: counted inline; any other key out of line.
            if !top.record_again(hash, 1) {
                top.record_anew(hash, key, 1);
            }
        }
    }
}

/// A shard on cache lines of its own, so neighbouring shards' locks do not false-share.
#[repr(align(128))]
struct PaddedShard<V>(ShardLock<Shard<V>>);

pub struct MemoryStore<P: Policy> {
    policy: P,
    hasher: Hasher,
    shards: Box<[PaddedShard<P::Value>]>,
    /// `64 - log2(shards)`: the shard is picked from the hash bits below the top 7 (which the
    /// table uses for its control bytes).
    shard_shift: u32,
    tracked: AtomicUsize,
    max_keys: Option<usize>,
    /// 1 + the time of the last sweep made for room; 0 = never.
    last_full_sweep: AtomicU64,
    on_full: OnFull,
}

/// Whether a full map may sweep for room at `now`, its last such sweep recorded as `last`
/// (1 + its time; 0 = never).
#[inline]
fn full_sweep_due(last: u64, now: u64) -> bool {
    last == 0 || now.saturating_sub(last - 1) >= FULL_SWEEP_EVERY_NS
}

/// Shards per store: 4 per core, at least 16, a power of two.
fn shard_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    (cores * 4).max(16).next_power_of_two()
}

impl<P: Policy> MemoryStore<P> {
    pub fn new(policy: P, max_keys: Option<usize>) -> Self {
        let count = shard_count();
        let shards = (0..count)
            .map(|_| {
                PaddedShard(ShardLock::new(Shard {
                    table: HashTable::new(),
                    allowed: 0,
                    blocked: 0,
                    rejected_full: 0,
                    evicted: 0,
                    top: None,
                }))
            })
            .collect();
        MemoryStore {
            policy,
            hasher: Hasher::default(),
            shards,
            shard_shift: 64 - count.trailing_zeros(),
            tracked: AtomicUsize::new(0),
            max_keys,
            last_full_sweep: AtomicU64::new(0),
            on_full: OnFull::Reject,
        }
    }

    /// What a new key gets when the map holds `max_keys` live keys.
    pub fn set_on_full(&mut self, on_full: OnFull) {
        self.on_full = on_full;
    }

    /// The key's bytes through the seeded hasher: one `write`, which mixes in the length
    /// itself, without the separate length prefix `hash_one(&[u8])` adds. Written out, and
    /// always inlined, because LLVM kept `hash_one` out of line (21 instructions a call).
    #[inline(always)]
    fn hash(&self, key: &[u8]) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        hasher.write(key);
        hasher.finish()
    }

    #[inline]
    fn shard(&self, hash: u64) -> &ShardLock<Shard<P::Value>> {
        &self.shards[((hash << 7) >> self.shard_shift) as usize].0
    }

    /// Decides on `cost` for `key` at `now`, consuming when admitted. Always inlined, so that
    /// callers using only part of the decision (`Limiter::allow`) skip computing the rest.
    #[inline(always)]
    pub fn decide(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        self.decide_into(key, cost, now, |decision| decision)
    }

    /// `decide(..).allowed`: the tracked key's decision is reduced to the flag before it meets
    /// the out-of-line new-key path's, so the fields `allow()` does not read are never
    /// computed (a merged `Decision` was written out whole: +16 instructions a call).
    #[inline(always)]
    pub fn allow(&self, key: &[u8], cost: u64, now: u64) -> bool {
        self.decide_into(key, cost, now, |decision| decision.allowed)
    }

    #[inline(always)]
    fn decide_into<R>(&self, key: &[u8], cost: u64, now: u64, out: impl Fn(Decision) -> R) -> R {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).lock();
        if let Some((_, value)) = shard.table.find_mut(hash, |(k, _)| k.matches(key)) {
            let decision = self.policy.apply(value, now, cost);
            shard.record(&decision, hash, key);
            return out(decision);
        }
        drop(shard);
        out(self.decide_new(key, hash, cost, now))
    }

    /// [`Self::decide`] for a key that was not tracked a moment ago: out of line, so that the
    /// tracked key's path (the hot one) stays small.
    #[inline(never)]
    fn decide_new(&self, key: &[u8], hash: u64, cost: u64, now: u64) -> Decision {
        let lock = self.shard(hash);
        let mut swept = false;
        loop {
            let mut shard = lock.lock();
            if let Some((_, value)) = shard.table.find_mut(hash, |(k, _)| k.matches(key)) {
                let decision = self.policy.apply(value, now, cost);
                shard.record(&decision, hash, key);
                return decision;
            }
            let (decision, value) = self.policy.apply_fresh(now, cost);
            let Some(value) = value else {
                shard.record(&decision, hash, key);
                return decision;
            };
            if self.reserve_slot() {
                shard
                    .table
                    .insert_unique(hash, (CompactKey::new(key), value), |(k, _)| {
                        self.hash(k.as_bytes())
                    });
                shard.record(&decision, hash, key);
                return decision;
            }
            if !swept && self.claim_full_sweep(now) {
                drop(shard);
                self.sweep(now);
                swept = true;
                continue;
            }
            if self.on_full == OnFull::Evict {
                drop(shard);
                if self.evict_one(hash) {
                    continue;
                }
                shard = lock.lock();
            }
            shard.refused(hash, key);
            shard.rejected_full += 1;
            return self.full_decision();
        }
    }

    /// Forgets the state that expires first among a sample of [`EVICTION_SAMPLE`] keys (the
    /// key's own shard first, then the next ones, one lock at a time): room for a new key.
    /// False if the map is empty.
    #[cold]
    fn evict_one(&self, hash: u64) -> bool {
        let first = ((hash << 7) >> self.shard_shift) as usize;
        let count = self.shards.len();
        let mut seen = 0;
        let mut victim: Option<(u64, usize, Vec<u8>)> = None;
        for i in 0..count {
            let index = (first + i) % count;
            let shard = self.shards[index].0.lock();
            for (key, value) in shard.table.iter().take(EVICTION_SAMPLE - seen) {
                let at = self.policy.expires_at(value);
                if victim.as_ref().map_or(true, |(least, _, _)| at < *least) {
                    victim = Some((at, index, key.as_bytes().to_vec()));
                }
                seen += 1;
            }
            if seen >= EVICTION_SAMPLE {
                break;
            }
        }
        let Some((_, index, key)) = victim else {
            return false;
        };
        let mut shard = self.shards[index].0.lock();
        if let Ok(entry) = shard
            .table
            .find_entry(self.hash(&key), |(k, _)| k.matches(&key))
        {
            entry.remove();
            shard.evicted += 1;
            self.tracked.fetch_sub(1, Ordering::Relaxed);
        }
        // Gone by now (reset, swept or evicted by another thread) counts as room made too.
        true
    }

    /// The key's standing at `now`, consuming nothing.
    pub fn peek(&self, key: &[u8], now: u64) -> Decision {
        let hash = self.hash(key);
        let shard = self.shard(hash).lock();
        let value = shard
            .table
            .find(hash, |(k, _)| k.matches(key))
            .map(|(_, v)| v);
        self.policy.peek(value, now)
    }

    /// The decision [`Self::decide`] would make on `cost` for `key` at `now`, consuming
    /// nothing, tracking nothing and counted in no statistic. For a new key on a full map
    /// (`max_keys`) it answers as `decide` would: admitted if `decide` would find room, after
    /// the sweep it may make then; finding out takes a read-only pass over the map, as that
    /// sweep would (and only when one is due).
    pub fn preview(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        let hash = self.hash(key);
        let shard = self.shard(hash).lock();
        if let Some((_, value)) = shard.table.find(hash, |(k, _)| k.matches(key)) {
            return self.policy.preview(Some(value), now, cost);
        }
        drop(shard);
        let decision = self.policy.preview(None, now, cost);
        if !decision.allowed || self.on_full == OnFull::Evict || self.would_find_room(now) {
            return decision;
        }
        self.full_decision()
    }

    /// Whether `decide` would find room for a new key at `now`: the map is below `max_keys`,
    /// or the sweep it may make would remove an expired key.
    fn would_find_room(&self, now: u64) -> bool {
        let Some(max) = self.max_keys else {
            return true;
        };
        if self.tracked.load(Ordering::Relaxed) < max {
            return true;
        }
        if !full_sweep_due(self.last_full_sweep.load(Ordering::Relaxed), now) {
            return false;
        }
        self.shards.iter().any(|shard| {
            let shard = shard.0.lock();
            shard
                .table
                .iter()
                .any(|(_, value)| self.policy.is_expired(value, now))
        })
    }

    /// Decides on `cost` for `key` at `at` (which may be later than now: a waiter's reserved
    /// instant) if the key is tracked; None for a key that is not, which is never added here,
    /// so no sweep runs at a time that has not come.
    pub fn decide_tracked(&self, key: &[u8], cost: u64, at: u64) -> Option<Decision> {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).lock();
        let (_, value) = shard.table.find_mut(hash, |(k, _)| k.matches(key))?;
        let decision = self.policy.apply(value, at, cost);
        shard.record(&decision, hash, key);
        Some(decision)
    }

    /// Tracks the most refused keys, up to `capacity` a shard (None: stops, forgetting them).
    pub fn track_top(&self, capacity: Option<usize>) {
        for shard in self.shards.iter() {
            shard.0.lock().top = capacity.map(|c| Box::new(TopKeys::new(c)));
        }
    }

    /// The `n` most refused keys since the last reset of the tracker, most first, and the
    /// refusals counted since then; `reset` starts a new interval. None when not tracked.
    pub fn top_refused(&self, n: usize, reset: bool) -> Option<(Vec<Counted>, u64)> {
        let mut all = Vec::new();
        let mut total = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock();
            shard
                .top
                .as_mut()?
                .read_into(n, reset, &mut all, &mut total);
        }
        keep_most_counted(&mut all, n);
        Some((all, total))
    }

    /// Gives back `cost` that a waiter reserved on `key` and will not use.
    pub fn refund(&self, key: &[u8], cost: u64) {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).lock();
        if let Some((_, value)) = shard.table.find_mut(hash, |(k, _)| k.matches(key)) {
            self.policy.refund(value, cost);
        }
    }

    /// Forgets `key`; true if it was tracked.
    pub fn reset(&self, key: &[u8]) -> bool {
        let hash = self.hash(key);
        let mut shard = self.shard(hash).lock();
        let removed = match shard.table.find_entry(hash, |(k, _)| k.matches(key)) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        };
        if removed {
            self.tracked.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Forgets every key (counters are kept).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock();
            let n = shard.table.len();
            shard.table = HashTable::new();
            self.tracked.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Removes every expired key, one shard at a time; returns how many.
    pub fn sweep(&self, now: u64) -> usize {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.0.lock();
            let before = shard.table.len();
            shard
                .table
                .retain(|(_, value)| !self.policy.is_expired(value, now));
            let (len, capacity) = (shard.table.len(), shard.table.capacity());
            if len < before && len * 4 < capacity {
                shard.table.shrink_to(len, |(k, _)| self.hash(k.as_bytes()));
            }
            removed += before - len;
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
        for shard in self.shards.iter() {
            let shard = shard.0.lock();
            stats.allowed += shard.allowed;
            stats.blocked += shard.blocked;
            stats.rejected_full += shard.rejected_full;
            stats.evicted += shard.evicted;
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
        full_sweep_due(last, now)
            && self
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
        Decision::no_room(self.policy.primary())
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
        assert!(s.decide(b"a", 1, 0).allowed);
        assert!(s.decide(b"a", 1, 0).allowed);
        assert!(!s.decide(b"a", 1, 0).allowed);
        assert!(
            s.decide(b"a much longer key than fifteen bytes", 1, 0)
                .allowed
        );
        let stats = s.stats();
        assert_eq!((stats.allowed, stats.blocked, stats.active_keys), (3, 1, 2));
        assert_eq!(stats.total_checks(), 4);
    }

    #[test]
    fn peek_reset_and_clear() {
        let s = fixed(3, 100, None);
        s.decide(b"a", 2, 0);
        s.decide(b"b", 1, 0);
        assert_eq!(s.peek(b"a", 1).remaining, 1);
        assert_eq!(s.peek(b"zzz", 1).remaining, 3);
        assert_eq!(s.len(), 2, "peek does not track keys");
        assert!(s.reset(b"a"));
        assert!(!s.reset(b"a"));
        assert_eq!(s.peek(b"a", 1).remaining, 3);
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.peek(b"b", 1).remaining, 3);
    }

    #[test]
    fn sweep_removes_only_expired_keys() {
        let s = fixed(3, 100, None);
        for i in 0..1000 {
            s.decide(format!("old-{i}").as_bytes(), 1, 0);
        }
        s.decide(b"young", 1, 50);
        assert_eq!(s.sweep(99), 0);
        assert_eq!(s.sweep(100), 1000);
        assert_eq!(s.len(), 1);
        assert_eq!(s.peek(b"young", 100).remaining, 2);
    }

    #[test]
    fn a_full_map_reclaims_expired_keys_then_refuses_new_ones() {
        let s = fixed(1, 100, Some(2));
        assert!(s.decide(b"a", 1, 0).allowed);
        assert!(s.decide(b"b", 1, 0).allowed);
        let d = s.decide(b"c", 1, 10);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ns, 100);
        // Tracked keys keep their state: they are never evicted for a newcomer.
        assert!(!s.decide(b"a", 1, 10).allowed);
        // Once expired, their room is reclaimed (the first sweep was at 10, a second one is
        // allowed a second later).
        let later = 10 + NANOS_PER_SECOND;
        assert!(s.decide(b"c", 1, later).allowed);
        assert_eq!(s.len(), 1);
        let stats = s.stats();
        assert_eq!((stats.rejected_full, stats.blocked), (1, 2));
    }

    #[test]
    fn a_full_evicting_map_forgets_the_state_that_expires_first() {
        let mut s = fixed(2, 100, Some(3));
        s.set_on_full(OnFull::Evict);
        for (i, key) in [b"a", b"b", b"c"].iter().enumerate() {
            assert!(s.decide(*key, 1, i as u64).allowed);
        }
        assert!(s.decide(b"b", 1, 5).allowed, "b is at its limit now");
        // "a" expires first (window from 0): it goes for "d"; nothing is refused
        assert!(s.decide(b"d", 1, 10).allowed);
        let stats = s.stats();
        assert_eq!(
            (stats.evicted, stats.rejected_full, stats.active_keys),
            (1, 0, 3)
        );
        assert_eq!(s.peek(b"a", 10).remaining, 2, "a starts from nothing");
        assert_eq!(s.peek(b"b", 10).remaining, 0, "b kept its count");
        assert!(
            s.preview(b"e", 1, 10).allowed,
            "an evicting map always finds room"
        );
        // Only one shard of keys ever: still a victim, whichever shard the newcomer hashes to.
        let mut one = fixed(1, 100, Some(1));
        one.set_on_full(OnFull::Evict);
        for i in 0..50u64 {
            assert!(one.decide(format!("k{i}").as_bytes(), 1, i).allowed);
        }
        assert_eq!((one.stats().evicted, one.len()), (49, 1));
    }

    #[test]
    fn a_full_map_sweeps_at_most_once_a_second() {
        let s = fixed(1, 100, Some(1));
        assert!(s.decide(b"a", 1, 0).allowed);
        assert!(!s.decide(b"b", 1, 50).allowed); // sweeps (finds nothing), then refuses
                                                 // "a" expires at 100, but the next sweep may only run at 50 + 1 s.
        assert!(!s.decide(b"b", 1, 200).allowed);
        assert!(s.decide(b"b", 1, 50 + NANOS_PER_SECOND).allowed);
    }

    #[test]
    fn preview_is_the_decision_decide_makes_and_changes_nothing() {
        // A full map too (max_keys 2, three keys): a new key's preview must foresee whether
        // decide's sweep for room (at most one a second) would find an expired key.
        let previewed = fixed(3, NANOS_PER_SECOND, Some(2));
        let plain = fixed(3, NANOS_PER_SECOND, Some(2));
        let mut now = 0;
        for i in 0u64..3000 {
            now += (i * 7 % 13) * NANOS_PER_SECOND / 10;
            let key = [b'a' + (i % 3) as u8];
            let cost = 1 + i % 4;
            let preview = previewed.preview(&key, cost, now);
            assert_eq!(previewed.preview(&key, cost, now), preview, "step {i}");
            if i % 5 == 0 {
                continue; // a preview with no decision after it
            }
            assert_eq!(previewed.decide(&key, cost, now), preview, "step {i}");
            assert_eq!(plain.decide(&key, cost, now), preview, "step {i}");
        }
        assert_eq!(previewed.stats(), plain.stats());
        assert!(plain.stats().rejected_full > 0, "the full map was reached");
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
                    (0..500).filter(|_| s.decide(b"hot", 1, 7).allowed).count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(admitted, 1000);
    }
}
