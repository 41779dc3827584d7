//! `TopKeys`: the keys seen most often in a stream (here, the refused keys), in fixed memory,
//! by the Space-Saving algorithm (Metwally, Agrawal and El Abbadi, 2005).
//!
//! It monitors at most `capacity` keys, each with a count and an error. A key already monitored
//! adds to its count. A new key takes a free place with count 1 and error 0, or, when all are
//! taken, the place of the key with the smallest count `m`: it starts at `m + 1` with error
//! `m`, as if it had been seen every time the evicted key was.
//!
//! So, with `N` the number of keys recorded (weights summed) since the last reset:
//! - every count overestimates its key's true count by at most its error, and every error is at
//!   most `N / capacity` (the smallest count never exceeds the average);
//! - every key whose true count exceeds `N / capacity` is monitored (its count could not have
//!   stayed the smallest long enough to be evicted).
//!
//! A key is found by the hash its caller already computed (the store's, randomly seeded), so
//! recording a monitored key costs a scan of a few hashes (a probe of an index for large
//! sketches); taking a new key's place scans for the smallest count (`capacity` compares),
//! which is why a store keeps one small sketch per shard.

use hashbrown::HashTable;

/// One monitored key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    pub key: Box<[u8]>,
    /// At least the key's true count, at most `error` more.
    pub count: u64,
    /// How much of `count` may be another key's: the count it inherited.
    pub error: u64,
}

#[derive(Clone, Debug)]
struct Slot {
    hash: u64,
    counted: Counted,
}

/// Up to this many slots a key is found by scanning their hashes: through the hash table, a
/// refusal recorded on a default-sized sketch cost 82 instructions (callgrind).
const SCANNED: usize = 64;

/// The most frequent keys of a stream, within `N / capacity`.
#[derive(Clone, Debug)]
pub struct TopKeys {
    capacity: usize,
    slots: Vec<Slot>,
    /// The slots' hashes, in slot order: a small sketch finds a key by scanning them.
    hashes: Vec<u64>,
    /// Index into `slots`, by the key's hash; only above [`SCANNED`] slots.
    index: HashTable<usize>,
    /// Weight recorded since the last reset (`N`).
    total: u64,
    /// The slot recorded last: a key refused again and again (the usual offender) is counted
    /// without a search, inline in the store's denied path ([`Self::record_again`]).
    last: usize,
}

impl TopKeys {
    /// An empty sketch monitoring up to `capacity` keys (at least 1); it allocates nothing
    /// until the first key.
    pub fn new(capacity: usize) -> Self {
        TopKeys {
            capacity: capacity.max(1),
            slots: Vec::new(),
            hashes: Vec::new(),
            index: HashTable::new(),
            total: 0,
            last: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Weight recorded since the last reset.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Records `weight` occurrences of `key`, whose hash is `hash` (the same function for every
    /// key of this sketch).
    pub fn record(&mut self, hash: u64, key: &[u8], weight: u64) {
        if !self.record_again(hash, weight) {
            self.record_anew(hash, key, weight);
        }
    }

    /// Counts `weight` more of the key recorded last, if `hash` is its; false otherwise
    /// (then [`Self::record_anew`] it).
    #[inline(always)]
    pub fn record_again(&mut self, hash: u64, weight: u64) -> bool {
        match self.slots.get_mut(self.last) {
            Some(slot) if slot.hash == hash => {
                slot.counted.count = slot.counted.count.saturating_add(weight);
                self.total = self.total.saturating_add(weight);
                true
            }
            _ => false,
        }
    }

    /// [`Self::record`] past the last key's shortcut.
    #[inline(never)]
    pub fn record_anew(&mut self, hash: u64, key: &[u8], weight: u64) {
        self.total = self.total.saturating_add(weight);
        if let Some(at) = self.find(hash) {
            let counted = &mut self.slots[at].counted;
            counted.count = counted.count.saturating_add(weight);
            self.last = at;
            return;
        }
        self.add(hash, key, weight);
    }

    /// The slot of the key of `hash`. Keys are told apart by their 64-bit hash alone: the
    /// store's hash is seeded at random per process, so two keys share a slot with a chance
    /// of about `capacity / 2^64`, which no client can aim at; comparing the bytes as well
    /// cost a `memcmp` call on every refusal.
    #[inline]
    fn find(&self, hash: u64) -> Option<usize> {
        if self.capacity <= SCANNED {
            return self.hashes.iter().position(|&h| h == hash);
        }
        let slots = &self.slots;
        self.index.find(hash, |&i| slots[i].hash == hash).copied()
    }

    /// A key not monitored yet: a free place, or the smallest count's.
    #[cold]
    fn add(&mut self, hash: u64, key: &[u8], weight: u64) {
        if self.slots.len() < self.capacity {
            let at = self.slots.len();
            self.slots.push(Slot {
                hash,
                counted: Counted {
                    key: key.into(),
                    count: weight,
                    error: 0,
                },
            });
            self.hashes.push(hash);
            self.index_insert(hash, at);
            self.last = at;
            return;
        }
        self.replace_smallest(hash, key, weight);
    }

    fn index_insert(&mut self, hash: u64, at: usize) {
        if self.capacity > SCANNED {
            let slots = &self.slots;
            self.index.insert_unique(hash, at, |&i| slots[i].hash);
        }
    }

    /// Gives the place of the key with the smallest count to `key`.
    #[cold]
    fn replace_smallest(&mut self, hash: u64, key: &[u8], weight: u64) {
        let (at, smallest) = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, slot)| (i, slot.counted.count))
            .min_by_key(|&(_, count)| count)
            .expect("a full sketch has at least one slot");
        if self.capacity > SCANNED {
            let old_hash = self.slots[at].hash;
            if let Ok(entry) = self.index.find_entry(old_hash, |&i| i == at) {
                entry.remove();
            }
        }
        self.slots[at] = Slot {
            hash,
            counted: Counted {
                key: key.into(),
                count: smallest.saturating_add(weight),
                error: smallest,
            },
        };
        self.hashes[at] = hash;
        self.index_insert(hash, at);
        self.last = at;
    }

    /// The monitored keys, most counted first (ties by key, so the order is stable).
    pub fn top(&self, n: usize) -> Vec<Counted> {
        let mut all: Vec<Counted> = self.slots.iter().map(|s| s.counted.clone()).collect();
        keep_most_counted(&mut all, n);
        all
    }

    /// Adds this tracker's `n` most counted keys to `all` and its total to `total`; `reset`
    /// then starts a new interval (several trackers read into one list, one after another).
    pub fn read_into(&mut self, n: usize, reset: bool, all: &mut Vec<Counted>, total: &mut u64) {
        all.extend(self.top(n));
        *total += self.total();
        if reset {
            self.reset();
        }
    }

    /// Forgets every key: a new interval starts.
    pub fn reset(&mut self) {
        *self = TopKeys::new(self.capacity);
    }
}

/// Sorts `all` most counted first (ties by key, so the order is stable) and keeps `n`: the
/// merge of several trackers' lists, each key in one of them.
pub fn keep_most_counted(all: &mut Vec<Counted>, n: usize) {
    all.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    all.truncate(n);
}

#[cfg(test)]
#[path = "top_keys_tests.rs"]
mod tests;
