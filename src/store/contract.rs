//! `Store`: the calls a [`crate::limiter::Limiter`] makes of where its states live, the same for
//! the in-process map and the shared-memory table.

use super::memory::{MemoryStore, StoreStats};
use super::policy::Policy;
use crate::decision::Decision;

pub trait Store {
    /// Decides on `cost` for `key` at `now`, consuming when admitted.
    fn decide(&self, key: &[u8], cost: u64, now: u64) -> Decision;
    /// The key's standing at `now`, consuming nothing.
    fn peek(&self, key: &[u8], now: u64) -> Decision;
    /// What `decide` would answer at `now`, changing nothing and counted nowhere.
    fn preview(&self, key: &[u8], cost: u64, now: u64) -> Decision;
    /// Forgets the key: true when it was tracked.
    fn reset(&self, key: &[u8], now: u64) -> bool;
    fn clear(&self, now: u64);
    /// Drops expired states; how many.
    fn sweep(&self, now: u64) -> usize;
    fn stats(&self, now: u64) -> StoreStats;
}

impl<P: Policy> Store for MemoryStore<P> {
    #[inline(always)]
    fn decide(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        MemoryStore::decide(self, key, cost, now)
    }
    fn peek(&self, key: &[u8], now: u64) -> Decision {
        MemoryStore::peek(self, key, now)
    }
    fn preview(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        MemoryStore::preview(self, key, cost, now)
    }
    fn reset(&self, key: &[u8], _now: u64) -> bool {
        MemoryStore::reset(self, key)
    }
    fn clear(&self, _now: u64) {
        MemoryStore::clear(self)
    }
    fn sweep(&self, now: u64) -> usize {
        MemoryStore::sweep(self, now)
    }
    fn stats(&self, _now: u64) -> StoreStats {
        MemoryStore::stats(self)
    }
}
