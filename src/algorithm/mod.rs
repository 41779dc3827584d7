//! The algorithms, each a pure decision step over a small `Copy` state:
//! `(state, now, cost) -> (Decision, state to store if admitted)`.
//!
//! A missing state means "never seen, or expired": every algorithm treats an expired state
//! exactly like a missing one, so sweeping expired keys never changes a decision.

mod bucket;
mod fixed_window;
mod sliding_window;

pub use bucket::{Bucket, BucketError, BucketState};
pub use fixed_window::{FixedState, FixedWindow};
pub use sliding_window::{Count, SlidingState, SlidingWindow};

use crate::decision::Decision;
use crate::rate::Rate;
use std::fmt;

/// One algorithm configured with one rate.
pub trait Algorithm: Send + Sync + 'static {
    /// A key's state (what the store keeps per key).
    type State: Copy + Send + Sync + 'static;

    /// Decides on `cost` at `now`. The returned state is `Some` exactly when the request is
    /// admitted; a denied request consumes nothing.
    fn decide(
        &self,
        state: Option<Self::State>,
        now: u64,
        cost: u64,
    ) -> (Decision, Option<Self::State>);

    /// What a request of cost 0 would see: `remaining` and `reset_after_ns`, consuming nothing.
    fn peek(&self, state: Option<Self::State>, now: u64) -> Decision;

    /// When the state stops mattering: [`Self::is_expired`] holds from then on (or earlier).
    /// Eviction forgets the state that expires first.
    fn expires_at(&self, state: Self::State) -> u64;

    /// True when the state is worth nothing any more (indistinguishable from a missing one).
    fn is_expired(&self, state: Self::State, now: u64) -> bool;

    /// The rate this algorithm enforces.
    fn rate(&self) -> Rate;

    /// Whether a waiter can reserve a future admission: deciding at the instant the request
    /// would be admitted consumes it there, and later requests queue behind it (the bucket
    /// algorithms, whose state is an arrival time). A window cannot: its waiters sleep until
    /// the retry time and decide again.
    const RESERVES: bool = false;

    /// `state` with `cost` given back by a waiter that reserved it and gave up: the bucket
    /// algorithms move the arrival time back; the windows reserve nothing and keep `state`.
    fn refund(&self, state: Self::State, _cost: u64) -> Self::State {
        state
    }
}

/// A state as three 32-bit words whose first two are its anchor time (a window's start, or
/// a bucket's arrival time), for a store that keeps states outside Rust's memory (the
/// shared-memory table). Only the states that fit implement it.
pub trait PackedState: Copy {
    /// The state as three words, its anchor time first.
    fn pack(self) -> [u32; 3];
    /// The state [`Self::pack`] gave these words.
    fn unpack(words: [u32; 3]) -> Self;
}

/// A state kept in a shared table as one or two 12-byte words (a slot of several rates, see
/// `store::shm::rates`), written one word at a time, in order, by whoever applies a request.
/// So word `j`'s next value must follow from the old values of words `j..` alone: a helper
/// that finds word 0 applied and word 1 not knows only the old word 1.
pub trait WordsState: Copy {
    /// 1 or 2.
    const WORDS: usize;
    /// The state's words (the second unused when [`Self::WORDS`] is 1).
    fn to_words(self) -> [[u32; 3]; 2];
    /// A state built from words `from..` (the earlier ones, already replaced, are ignored)
    /// whose admitted step gives the same words `from..` as the whole old state's.
    fn from_words(words: &[[u32; 3]; 2], from: usize) -> Self;
}

impl<S: PackedState> WordsState for S {
    const WORDS: usize = 1;
    #[inline(always)]
    fn to_words(self) -> [[u32; 3]; 2] {
        [self.pack(), [0; 3]]
    }
    #[inline(always)]
    fn from_words(words: &[[u32; 3]; 2], _from: usize) -> Self {
        S::unpack(words[0])
    }
}

/// The algorithm names users choose from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
///
/// The three bucket algorithms make the same decisions (one exact step over one timestamp; see
/// [`Bucket`]): they differ only in the words that explain them.
///
/// ```
/// use rust_py_rate_limit::AlgorithmKind;
///
/// assert_eq!(AlgorithmKind::parse("token_bucket"), Some(AlgorithmKind::TokenBucket));
/// assert_eq!(AlgorithmKind::Gcra.to_string(), "gcra");
/// assert!(AlgorithmKind::Gcra.has_burst() && !AlgorithmKind::Sliding.has_burst());
/// assert_eq!(AlgorithmKind::parse("Fixed"), None); // names are lowercase
/// ```
pub enum AlgorithmKind {
    /// Fixed window (`"fixed"`): up to `limit` per window, the window opened by a key's first
    /// request ([`FixedWindow`]).
    Fixed,
    /// Sliding-window counter (`"sliding"`): the current window's count plus the previous
    /// one's, weighted by how much of it the window still overlaps ([`SlidingWindow`]).
    Sliding,
    /// Token bucket (`"token_bucket"`): `burst` tokens, refilled at `limit` per window.
    TokenBucket,
    /// Leaky bucket as a meter (`"leaky_bucket"`): up to `burst` queued, draining at `limit`
    /// per window.
    LeakyBucket,
    /// GCRA (`"gcra"`): a theoretical arrival time, `burst` requests ahead of it at most.
    Gcra,
}

impl AlgorithmKind {
    /// Every algorithm, in the order of the documentation.
    pub const ALL: [AlgorithmKind; 5] = [
        AlgorithmKind::Fixed,
        AlgorithmKind::Sliding,
        AlgorithmKind::TokenBucket,
        AlgorithmKind::LeakyBucket,
        AlgorithmKind::Gcra,
    ];

    /// The name users write (`"fixed"`, `"sliding"`, `"token_bucket"`, `"leaky_bucket"`,
    /// `"gcra"`), also its `Display`.
    pub fn name(self) -> &'static str {
        match self {
            AlgorithmKind::Fixed => "fixed",
            AlgorithmKind::Sliding => "sliding",
            AlgorithmKind::TokenBucket => "token_bucket",
            AlgorithmKind::LeakyBucket => "leaky_bucket",
            AlgorithmKind::Gcra => "gcra",
        }
    }

    /// The algorithm of that [`Self::name`] (exactly: lowercase, no spaces), or `None`.
    pub fn parse(name: &str) -> Option<AlgorithmKind> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Whether the algorithm has a capacity (`burst`) separate from its rate.
    pub fn has_burst(self) -> bool {
        matches!(
            self,
            AlgorithmKind::TokenBucket | AlgorithmKind::LeakyBucket | AlgorithmKind::Gcra
        )
    }

    /// `"fixed", "sliding", ...` for error messages.
    pub fn valid_names() -> String {
        Self::ALL
            .iter()
            .map(|kind| format!("{:?}", kind.name()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for AlgorithmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Nanoseconds as two `u32` halves, so states pack into 4-byte-aligned map entries
/// (a `u64` field would pad every entry of the table to 8 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(C)]
pub struct PackedNs([u32; 2]);

impl PackedNs {
    /// `ns` in two halves.
    #[inline]
    pub fn new(ns: u64) -> Self {
        PackedNs([ns as u32, (ns >> 32) as u32])
    }

    /// The nanoseconds back in one `u64`.
    #[inline]
    pub fn get(self) -> u64 {
        u64::from(self.0[0]) | (u64::from(self.0[1]) << 32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for kind in AlgorithmKind::ALL {
            assert_eq!(AlgorithmKind::parse(kind.name()), Some(kind));
        }
        assert_eq!(AlgorithmKind::parse("Fixed"), None);
        assert!(AlgorithmKind::valid_names().contains("\"leaky_bucket\""));
    }

    #[test]
    fn packed_ns_round_trips() {
        for ns in [0, 1, u32::MAX as u64, u32::MAX as u64 + 1, u64::MAX] {
            assert_eq!(PackedNs::new(ns).get(), ns);
        }
        assert_eq!(std::mem::align_of::<PackedNs>(), 4);
    }
}
