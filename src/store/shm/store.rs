//! `ShmStore`: one algorithm and rate over a shared table, with the calls `Limiter` makes of
//! every store (decide, peek, preview, reset, clear, stats).
//!
//! A key's tag is its bytes hashed with the region's seed and the limiter's settings, so
//! limiters of other settings sharing the region never meet on a state. Statistics
//! (`allowed`, `blocked`, ...) count this limiter's own decisions in this process;
//! `active_keys` counts the live states of the whole region.

use std::hash::{BuildHasher, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::region::Region;
use super::table::{BucketOf, Claim, Lookup, OnFull, Table};
use super::units::{expiry_code, Cell, SlotCell};
use crate::algorithm::{Algorithm, PackedState};
use crate::decision::Decision;
use crate::rate::Rate;
use crate::store::StoreStats;

/// The keyed hasher of a region: its seed's first half.
pub fn region_hasher(region: &Region) -> foldhash::fast::FixedState {
    let seed = region.header().hash_seed;
    foldhash::fast::FixedState::with_seed(u64::from_le_bytes(
        seed[..8].try_into().expect("8 bytes"),
    ))
}

/// A key's tag under a limiter's settings: never 0 (a slot never used).
#[inline(always)]
pub fn key_tag(hasher: &foldhash::fast::FixedState, settings: u64, key: &[u8]) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_u64(settings);
    h.write(key);
    h.finish() | 1
}

/// How long an algorithm's states matter.
pub trait Lifetime {
    /// How long after its anchor time a state is still worth something.
    fn lifetime_ns(&self) -> u64;
    /// How long after `now` a state admitted at `now` matters at most.
    fn bound_ns(&self) -> u64;
}

impl Lifetime for crate::algorithm::Bucket {
    fn lifetime_ns(&self) -> u64 {
        0
    }
    fn bound_ns(&self) -> u64 {
        self.tolerance_ns()
    }
}

impl Lifetime for crate::algorithm::FixedWindow {
    fn lifetime_ns(&self) -> u64 {
        self.rate().period_ns
    }
    fn bound_ns(&self) -> u64 {
        self.lifetime_ns()
    }
}

impl<C: crate::algorithm::Count> Lifetime for crate::algorithm::SlidingWindow<C> {
    fn lifetime_ns(&self) -> u64 {
        2 * self.rate().period_ns
    }
    fn bound_ns(&self) -> u64 {
        self.lifetime_ns()
    }
}

#[derive(Default)]
struct Counters {
    allowed: AtomicU64,
    blocked: AtomicU64,
    rejected_full: AtomicU64,
    evicted: AtomicU64,
}

/// What every store over a shared table has: the region, how keys are tagged, what to do
/// when a bucket is full, and this process's counts of its decisions.
pub struct Base {
    region: Arc<Region>,
    hasher: foldhash::fast::FixedState,
    settings: u64,
    on_full: OnFull,
    counters: Counters,
}

impl Base {
    /// `settings` names the limiter's settings (algorithm, rates, burst) in a form every
    /// process writes alike.
    pub fn new(settings: &str, region: Arc<Region>, on_full: OnFull) -> Base {
        let seed = region.header().hash_seed;
        let high = u64::from_le_bytes(seed[8..].try_into().expect("8 bytes"));
        let hasher = region_hasher(&region);
        let mut h = foldhash::fast::FixedState::with_seed(high).build_hasher();
        h.write(settings.as_bytes());
        Base {
            region,
            hasher,
            settings: h.finish(),
            on_full,
            counters: Counters::default(),
        }
    }

    pub fn table<C: SlotCell, const E: usize, const N: usize, const P: usize>(
        &self,
    ) -> Table<'_, BucketOf<C, E, N, P>> {
        let (base, len) = self.region.table_bytes();
        // SAFETY: the region keeps the table mapped while `self` lives, and the table is
        // only touched through its atomics.
        unsafe { Table::new(base, len) }
    }

    #[inline(always)]
    pub fn tag(&self, key: &[u8]) -> u64 {
        key_tag(&self.hasher, self.settings, key)
    }

    #[inline(always)]
    pub fn record(&self, decision: &Decision) {
        let counter = if decision.allowed {
            &self.counters.allowed
        } else {
            &self.counters.blocked
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Asks `bucket` for a slot for `tag` (absent at `gate`): None to look again, or the
    /// refusal of a full bucket (counted).
    #[inline]
    pub fn claim<C: SlotCell, const E: usize, const N: usize, const P: usize>(
        &self,
        bucket: &BucketOf<C, E, N, P>,
        tag: u64,
        gate: u128,
        now: u64,
        rate: Rate,
    ) -> Option<Decision> {
        match bucket.claim(tag, gate, now, self.on_full) {
            Claim::Retry => None,
            Claim::Evicted => {
                self.counters.evicted.fetch_add(1, Ordering::Relaxed);
                None
            }
            Claim::Full => {
                self.counters.blocked.fetch_add(1, Ordering::Relaxed);
                self.counters.rejected_full.fetch_add(1, Ordering::Relaxed);
                Some(Decision::no_room(rate))
            }
        }
    }

    /// The refusal `on_full="reject"` would give a new key in `bucket` now, if any.
    pub fn preview_full<C: SlotCell, const E: usize, const N: usize, const P: usize>(
        &self,
        bucket: &BucketOf<C, E, N, P>,
        now: u64,
        rate: Rate,
    ) -> Option<Decision> {
        (self.on_full == OnFull::Reject && !bucket.has_room(now)).then(|| Decision::no_room(rate))
    }

    /// Forgets every state in the table (of every limiter sharing it).
    pub fn clear<C: SlotCell, const E: usize, const N: usize, const P: usize>(&self, now: u64) {
        for bucket in self.table::<C, E, N, P>().buckets() {
            bucket.clear(now);
        }
    }

    pub fn stats<C: SlotCell, const E: usize, const N: usize, const P: usize>(
        &self,
        now: u64,
    ) -> StoreStats {
        let c = &self.counters;
        StoreStats {
            allowed: c.allowed.load(Ordering::Relaxed),
            blocked: c.blocked.load(Ordering::Relaxed),
            rejected_full: c.rejected_full.load(Ordering::Relaxed),
            evicted: c.evicted.load(Ordering::Relaxed),
            active_keys: self
                .table::<C, E, N, P>()
                .buckets()
                .iter()
                .map(|b| b.live(now) as u64)
                .sum(),
        }
    }

    /// Checks every bucket's invariants (see [`BucketOf::check`]).
    pub fn check_table<C: SlotCell, const E: usize, const N: usize, const P: usize>(
        &self,
        now: u64,
    ) -> Result<(), String> {
        for (i, bucket) in self.table::<C, E, N, P>().buckets().iter().enumerate() {
            bucket.check(now).map_err(|e| format!("bucket {i}: {e}"))?;
        }
        Ok(())
    }
}

/// The bucket type of a table of one rate.
type One = super::table::Bucket;

pub struct ShmStore<A: Algorithm> {
    algorithm: A,
    base: Base,
    expiry: u8,
}

impl<A> ShmStore<A>
where
    A: Algorithm + Lifetime,
    A::State: PackedState,
{
    /// A store of `algorithm` in `region`; `settings` names the limiter's settings (algorithm,
    /// rates, burst) in a form every process writes alike.
    pub fn new(algorithm: A, settings: &str, region: Arc<Region>, on_full: OnFull) -> Self {
        ShmStore {
            expiry: expiry_code(algorithm.lifetime_ns()),
            algorithm,
            base: Base::new(settings, region, on_full),
        }
    }

    #[inline(always)]
    fn bucket(&self, tag: u64) -> &One {
        self.base.table().bucket(tag)
    }

    /// Decides on `cost` for `key` at `now`, consuming when admitted.
    #[inline(always)]
    pub fn decide(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        let tag = self.base.tag(key);
        let bucket = self.bucket(tag);
        loop {
            match bucket.lookup(tag, now) {
                Lookup::Held { held, cell } => {
                    let state = cell.is_present().then(|| A::State::unpack(cell.state()));
                    let (decision, next) = self.algorithm.decide(state, now, cost);
                    let Some(next) = next else {
                        self.base.record(&decision);
                        return decision;
                    };
                    let written = Cell::with_state(held.ident.version, self.expiry, next.pack());
                    if bucket.update(held, cell, written) {
                        self.base.record(&decision);
                        return decision;
                    }
                }
                Lookup::Absent { gate } => {
                    let (decision, next) = self.algorithm.decide(None, now, cost);
                    if next.is_none() {
                        self.base.record(&decision);
                        return decision;
                    }
                    if let Some(full) =
                        self.base
                            .claim(bucket, tag, gate, now, self.algorithm.rate())
                    {
                        return full;
                    }
                }
            }
        }
    }

    /// The key's state at `now`, if it holds one.
    fn state(&self, key: &[u8], now: u64) -> Option<A::State> {
        let tag = self.base.tag(key);
        match self.bucket(tag).lookup(tag, now) {
            Lookup::Held { cell, .. } if cell.is_present() => Some(A::State::unpack(cell.state())),
            _ => None,
        }
    }

    /// The key's standing at `now`, consuming nothing.
    pub fn peek(&self, key: &[u8], now: u64) -> Decision {
        self.algorithm.peek(self.state(key, now), now)
    }

    /// The decision [`Self::decide`] would make now, changing nothing and counted nowhere: for
    /// a new key whose bucket is full, the refusal `on_full="reject"` gives.
    pub fn preview(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        let tag = self.base.tag(key);
        let bucket = self.bucket(tag);
        match bucket.lookup(tag, now) {
            Lookup::Held { cell, .. } => {
                let state = cell.is_present().then(|| A::State::unpack(cell.state()));
                self.algorithm.decide(state, now, cost).0
            }
            Lookup::Absent { .. } => {
                let (decision, next) = self.algorithm.decide(None, now, cost);
                match next {
                    Some(_) => self
                        .base
                        .preview_full(bucket, now, self.algorithm.rate())
                        .unwrap_or(decision),
                    None => decision,
                }
            }
        }
    }

    /// Forgets `key`'s state: true when it had a live one.
    pub fn reset(&self, key: &[u8], now: u64) -> bool {
        let tag = self.base.tag(key);
        self.bucket(tag).reset(tag, now)
    }

    /// Forgets every state in the region (of every limiter sharing it).
    pub fn clear(&self, now: u64) {
        self.base.clear::<Cell, 0, { super::table::SLOTS }, 0>(now);
    }

    pub fn stats(&self, now: u64) -> StoreStats {
        self.base.stats::<Cell, 0, { super::table::SLOTS }, 0>(now)
    }

    /// Checks every bucket's invariants (see [`BucketOf::check`]).
    pub fn check_table(&self, now: u64) -> Result<(), String> {
        self.base
            .check_table::<Cell, 0, { super::table::SLOTS }, 0>(now)
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
