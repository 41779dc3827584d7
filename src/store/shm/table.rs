//! The shared table: buckets of 15 slots, lock-free and safe against a process killed at any
//! instant.
//!
//! A key hashes to one bucket and may sit in any of its slots. A slot is two 16-byte words: its
//! `Ident` (which key, given at which bucket version) and its `Cell` (the key's state).
//! Each bucket starts with a `Gate` (all three in `units.rs`).
//!
//! **Updates** of a key's state are one compare-and-swap of its cell, made after reading the
//! slot's identity, the cell, and the identity again: the cell was then the key's.
//!
//! **Membership** (which keys a bucket holds) changes only through the gate, one change at a
//! time: a process that found the key absent (a scan of the bucket between two equal reads of
//! the gate) swaps the gate to "slot j goes to tag T, version v+1" (v+2 when v+1 has the low
//! bits of the slot's holder's version, which its cell's stamp keeps: the holder's state would
//! pass for one the change restamped). That change is then carried out by whoever sees it, its author or anyone else: (b) the cell is emptied and stamped for
//! v+1, if its state is still reusable, or else (b') the old holder's live state is restamped
//! for v+1 (the change is dropped); (a) the identity becomes (T, v+1), or (a') the old holder's
//! tag at v+1; then the gate is closed. A drop moves the slot to v+1 too, so no late helper
//! of the announcement can carry it out afterwards. Every step is a compare-and-swap from a value that never
//! comes back, so a process stopped mid-way and resumed later changes nothing, and a process
//! killed mid-way leaves a change that the next visitor finishes. Nobody ever waits on anybody:
//! a key is never in two slots (membership changes are serialised by the gate), and no write
//! lands in a slot after it changed hands (the cell's stamp would not match).

use std::marker::PhantomData;

use super::units::{Cell, Gate, Ident, Intent, SlotCell, Unit};
pub use crate::store::OnFull;

pub const BUCKET_BYTES: usize = 512;
pub const SLOTS: usize = 15;
/// The most rates a shared-memory limiter may have.
pub const MAX_RATES: u32 = 4;

/// The most words of state a slot holds: a slot of several rates is a control word and a word
/// per rate after its identity (two per rate for a sliding window counting past 65,535).
pub const MAX_WORDS: u32 = 2 * MAX_RATES;

/// Slots in a bucket of the table whose slots hold `words` words of state: 15 of 32 bytes for
/// one (a cell); for more, as many slots of `16 * (2 + words)` bytes as 480 bytes hold.
pub const fn slots_for_words(words: u32) -> usize {
    if words <= 1 {
        SLOTS
    } else {
        (BUCKET_BYTES - 32) / slot_bytes(words)
    }
}

const fn slot_bytes(words: u32) -> usize {
    16 * (2 + words as usize)
}

/// The padding after the gate of such a bucket: what its slots leave over.
pub const fn pad_for_words(words: u32) -> usize {
    if words <= 1 {
        0
    } else {
        BUCKET_BYTES - 32 - slots_for_words(words) * slot_bytes(words)
    }
}

/// Slots are filled to this fraction of a region's capacity, on average.
pub const LOAD_FACTOR: f64 = 0.75;

/// A bucket of `N` slots whose first word is a `C` (a `Cell`, or a control word for
/// several rates) followed by `E` more words (the rates' states), which the membership
/// protocol never touches; `P` bytes of padding after the gate put the slots at the end of
/// the bucket (so 64-byte slots sit each in one cache line).
#[repr(C, align(512))]
pub struct BucketOf<C, const E: usize, const N: usize, const P: usize> {
    gate: Unit,
    _spare: [u8; 16],
    _pad: [u8; P],
    slots: [Slot<E>; N],
    cell: PhantomData<C>,
}

/// The bucket of a table of one rate.
pub type Bucket = BucketOf<Cell, 0, SLOTS, 0>;

#[repr(C)]
struct Slot<const E: usize> {
    ident: Unit,
    cell: Unit,
    rest: [Unit; E],
}

/// Where a key was found: its slot and the identity read there.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    pub slot: usize,
    pub ident: Ident,
}

/// A key's cell as read for an update: valid for `held` when the identity did not move.
#[derive(Clone, Copy, Debug)]
pub enum Lookup<C = Cell> {
    /// The key holds a slot; `cell` is its state word (maybe empty).
    Held { held: Held, cell: C },
    /// The key holds no slot; the gate read then (for [`Bucket::claim`]).
    Absent { gate: u128 },
}

/// The outcome of asking for a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key now holds a slot (maybe another process gave it one first): look again.
    Retry,
    /// Every slot holds a live state and `OnFull::Reject` was asked for.
    Full,
    /// A live state was evicted to make room (then look again).
    Evicted,
}

/// Whether a slot may be given to another key at `now`.
#[inline]
fn reusable<C: SlotCell>(ident: Ident, cell: C, now: u64) -> bool {
    ident.tag == 0 || !cell.belongs_to(ident.version) || cell.expires_at() <= now
}

impl<C: SlotCell, const E: usize, const N: usize, const P: usize> BucketOf<C, E, N, P> {
    /// Fails to build unless the bucket takes exactly [`BUCKET_BYTES`].
    const SIZED: () = assert!(std::mem::size_of::<Self>() == BUCKET_BYTES);

    /// Finds `tag`'s slot, finishing any change of membership in its way.
    #[inline(always)]
    pub fn lookup(&self, tag: u64, now: u64) -> Lookup<C> {
        loop {
            let gate = self.gate.load();
            if Gate::decode(gate).intent.is_some() {
                self.finish(gate, now);
                continue;
            }
            match self.find(tag) {
                Some(slot) => {
                    let s = &self.slots[slot];
                    let ident = Ident::decode(s.ident.load());
                    if ident.tag != tag {
                        continue;
                    }
                    let cell = C::from_word(s.cell.load());
                    if !cell.belongs_to(ident.version) {
                        // The slot is changing hands: finish that (on the next turn) first.
                        continue;
                    }
                    if s.ident.load() != ident.encode() {
                        continue;
                    }
                    return Lookup::Held {
                        held: Held { slot, ident },
                        cell,
                    };
                }
                None if self.gate.load() == gate => return Lookup::Absent { gate },
                None => continue,
            }
        }
    }

    #[inline(always)]
    fn find(&self, tag: u64) -> Option<usize> {
        self.slots.iter().position(|s| s.ident.low_half() == tag)
    }

    /// Swaps the key's cell from `cell` (as [`Self::lookup`] read it) to `next`.
    #[inline(always)]
    pub fn update(&self, held: Held, cell: C, next: C) -> bool {
        self.slots[held.slot].cell.swap(cell.word(), next.word())
    }

    /// The cell of the slot `held` names, as it is now.
    #[inline(always)]
    pub fn cell(&self, held: Held) -> C {
        C::from_word(self.slots[held.slot].cell.load())
    }

    /// The `i`th word after the cell of the slot `held` names.
    #[inline(always)]
    pub fn word(&self, held: Held, i: usize) -> &Unit {
        &self.slots[held.slot].rest[i]
    }

    /// Asks for a slot for `tag`, absent when the gate read `gate`: a free slot (never used,
    /// without state, or expired), else the state that expires first when `on_full` evicts.
    pub fn claim(&self, tag: u64, gate: u128, now: u64, on_full: OnFull) -> Claim {
        let version = Gate::decode(gate).version;
        // The free slot that expired longest ago (never used or empty first): a key whose state
        // has just expired keeps its slot while older ones are free, so keys called less often
        // than their state lives do not take each other's slots on every call.
        let mut free: Option<(usize, u64)> = None;
        let mut oldest: Option<(usize, u64)> = None;
        for (i, s) in self.slots.iter().enumerate() {
            let ident = Ident::decode(s.ident.load());
            let cell = C::from_word(s.cell.load());
            let at = if ident.tag == 0 || !cell.belongs_to(ident.version) {
                0
            } else {
                cell.expires_at()
            };
            let best = if reusable(ident, cell, now) {
                &mut free
            } else {
                &mut oldest
            };
            if best.map_or(true, |(_, t)| at < t) {
                *best = Some((i, at));
            }
            if at == 0 && free.is_some() {
                break;
            }
        }
        let (slot, evict) = match (free, on_full) {
            (Some((i, _)), _) => (i, false),
            (None, OnFull::Evict) => (oldest.expect("a bucket has slots").0, true),
            (None, OnFull::Reject) => return Claim::Full,
        };
        // The change's version, one whose stamp the slot's holder's cannot be taken for (a
        // cell keeps only the low bits of a version: 24 in a `Cell`, 8 in a `Control`).
        // Otherwise the holder's present cell would already look restamped for the change,
        // (b') done, and (a') would move the identity while the cell stays as it was: a
        // reset or clear that read the slot before would then empty the cell for the
        // version the slot no longer has, and the holder's lookups would spin. The holder
        // read here is the slot's while the gate stays `gate` (the swap below checks).
        let mut next = version + 1;
        let holder = Ident::decode(self.slots[slot].ident.load()).version;
        if C::stamps_alike(holder, next) {
            next += 1;
        }
        let intent = Gate {
            version: next,
            intent: Some(Intent { slot, evict, tag }),
        }
        .encode();
        if !self.gate.swap(gate, intent) {
            return Claim::Retry;
        }
        self.finish(intent, now);
        if evict {
            Claim::Evicted
        } else {
            Claim::Retry
        }
    }

    /// Carries out the change of membership the gate announced as `gate` (if still under
    /// way): anyone may, any number of times, in any interleaving.
    fn finish(&self, gate: u128, now: u64) {
        let Gate {
            version,
            intent: Some(intent),
        } = Gate::decode(gate)
        else {
            return;
        };
        let closed = Gate {
            version,
            intent: None,
        }
        .encode();
        let target = Ident {
            tag: intent.tag,
            version,
        };
        let slot = &self.slots[intent.slot];
        while self.step(slot, slot.ident.load(), target, intent.evict, now) {}
        self.gate.swap(gate, closed);
    }

    /// One step of giving `slot` to `target` (the identity it gets: tag and the change's
    /// version), from its identity as read (`ident_word`): false once nothing is left to do
    /// but close the gate. The cell is judged only if the identity did not move while it was
    /// read: a helper that read the old identity, stalled, and read the cell after the change
    /// was made and the new holder counted in it, must not take that cell for the old one's.
    fn step(&self, slot: &Slot<E>, ident_word: u128, target: Ident, evict: bool, now: u64) -> bool {
        let ident = Ident::decode(ident_word);
        if ident.version >= target.version {
            // Done (by us or another), or long since replaced: only the gate is left.
            return false;
        }
        let cell = C::from_word(slot.cell.load());
        if slot.ident.load() != ident_word {
            return true;
        }
        if cell.is_empty_for(target.version) {
            // (b) is done: (a) gives the slot its new identity.
            slot.ident.swap(ident_word, target.encode());
            return true;
        }
        if cell.is_present() && cell.stamped_for(target.version) {
            // (b') is done (the change was dropped, the old holder's state restamped for the
            // change's version): (a') moves the old holder to that version, so no helper of
            // this change can act on the slot any more.
            let kept = Ident {
                tag: ident.tag,
                version: target.version,
            };
            slot.ident.swap(ident_word, kept.encode());
            return true;
        }
        let next = if evict || reusable(ident, cell, now) {
            // (b) empties the cell for the new holder
            cell.emptied(target.version)
        } else {
            // (b') the old holder used its slot again: drop the change, but as a change
            cell.restamp(target.version)
        };
        // both from the cell as read: of two helpers judging it differently, one wins
        slot.cell.swap(cell.word(), next.word());
        true
    }

    /// Whether a new key would find a free slot at `now`.
    pub fn has_room(&self, now: u64) -> bool {
        self.slots.iter().any(|s| {
            reusable(
                Ident::decode(s.ident.load()),
                C::from_word(s.cell.load()),
                now,
            )
        })
    }

    /// Empties the key's cell (its identity stays): true when it held a live state.
    pub fn reset(&self, tag: u64, now: u64) -> bool {
        loop {
            match self.lookup(tag, now) {
                Lookup::Absent { .. } => return false,
                Lookup::Held { held, cell } => {
                    if !cell.is_present() {
                        return false;
                    }
                    if self.update(held, cell, cell.emptied(held.ident.version)) {
                        return cell.expires_at() > now;
                    }
                }
            }
        }
    }

    /// Empties every cell of the bucket.
    pub fn clear(&self, now: u64) {
        loop {
            let gate = self.gate.load();
            if Gate::decode(gate).intent.is_none() {
                break;
            }
            self.finish(gate, now);
        }
        for slot in &self.slots {
            loop {
                let ident_word = slot.ident.load();
                let ident = Ident::decode(ident_word);
                let cell = C::from_word(slot.cell.load());
                if slot.ident.load() != ident_word {
                    continue;
                }
                if !cell.is_present() || !cell.belongs_to(ident.version) {
                    break;
                }
                if slot
                    .cell
                    .swap(cell.word(), cell.emptied(ident.version).word())
                {
                    break;
                }
            }
        }
    }

    /// Slots holding a live state at `now`.
    pub fn live(&self, now: u64) -> usize {
        self.slots
            .iter()
            .filter(|s| {
                let ident = Ident::decode(s.ident.load());
                let cell = C::from_word(s.cell.load());
                ident.tag != 0 && !reusable(ident, cell, now)
            })
            .count()
    }

    /// Checks the bucket's invariants (after finishing a change left by a dead process):
    /// no tag in two slots, every cell stamped for its slot's holder.
    pub fn check(&self, now: u64) -> Result<(), String> {
        let gate = self.gate.load();
        self.finish(gate, now);
        let idents: Vec<Ident> = self
            .slots
            .iter()
            .map(|s| Ident::decode(s.ident.load()))
            .collect();
        for (i, ident) in idents.iter().enumerate() {
            if ident.tag != 0 && idents[..i].iter().any(|other| other.tag == ident.tag) {
                return Err(format!("tag {:#x} is in two slots", ident.tag));
            }
            let cell = C::from_word(self.slots[i].cell.load());
            if ident.tag != 0 && !cell.belongs_to(ident.version) {
                return Err(format!("slot {i}: its cell is not stamped for its holder"));
            }
        }
        if Gate::decode(self.gate.load()).intent.is_some() {
            return Err("a change of membership is still under way".into());
        }
        Ok(())
    }
}

/// The table: a region's buckets.
pub struct Table<'a, B = Bucket> {
    buckets: &'a [B],
}

impl<'a, C: SlotCell, const E: usize, const N: usize, const P: usize>
    Table<'a, BucketOf<C, E, N, P>>
{
    /// The buckets in `bytes` (512-aligned, a whole number of buckets, all-zero when new).
    ///
    /// # Safety
    /// `bytes` must stay mapped for `'a` and be accessed only through this table's atomics.
    pub unsafe fn new(base: *const u8, len: usize) -> Self {
        let () = BucketOf::<C, E, N, P>::SIZED;
        debug_assert_eq!(base as usize % BUCKET_BYTES, 0);
        debug_assert_eq!(len % BUCKET_BYTES, 0);
        Table {
            buckets: std::slice::from_raw_parts(base.cast(), len / BUCKET_BYTES),
        }
    }

    #[inline(always)]
    pub fn bucket(&self, hash: u64) -> &'a BucketOf<C, E, N, P> {
        let index = ((u128::from(hash) * self.buckets.len() as u128) >> 64) as usize;
        &self.buckets[index]
    }

    pub fn buckets(&self) -> &'a [BucketOf<C, E, N, P>] {
        self.buckets
    }
}

/// The buckets a region of buckets of `slots` slots needs for `capacity` keys at
/// [`LOAD_FACTOR`].
pub fn buckets_for(capacity: u64, slots: usize) -> u64 {
    let needed = (capacity as f64 / LOAD_FACTOR).ceil() as u64;
    needed.div_ceil(slots as u64).max(1)
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
