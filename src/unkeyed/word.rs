//! One algorithm state as one machine word for a compare-and-swap: a bucket's arrival time in
//! 64 bits; a window's start and counts in 128 (a 64-bit start in nanoseconds and 32-bit
//! counts, the very state a keyed limiter keeps, so both decide alike; squeezed into 64 bits
//! the start would need a coarser unit or a wrap, and the decisions would drift apart).
//!
//! The word 0 means "no state": a window stores its start plus one (starts stay below
//! [`crate::clock::MAX_NS`]), and a bucket's arrival time 0 is already in the past, which
//! decides as no state.

use std::sync::atomic::{AtomicU64, Ordering};

use portable_atomic::AtomicU128;

use crate::algorithm::{BucketState, FixedState, PackedState, SlidingState, WordsState};

/// A word an atomic cell holds.
pub trait Word: Copy + Eq + Send + Sync + 'static {
    type Cell: Send + Sync + Default;
    const NONE: Self;
    fn load(cell: &Self::Cell) -> Self;
    fn store(cell: &Self::Cell, word: Self);
    /// A weak compare-and-swap: `Err` carries the word found.
    fn swap_from(cell: &Self::Cell, current: Self, new: Self) -> Result<Self, Self>;
}

impl Word for u64 {
    type Cell = AtomicU64;
    const NONE: u64 = 0;
    #[inline(always)]
    fn load(cell: &AtomicU64) -> u64 {
        cell.load(Ordering::Acquire)
    }
    #[inline(always)]
    fn store(cell: &AtomicU64, word: u64) {
        cell.store(word, Ordering::Release)
    }
    #[inline(always)]
    fn swap_from(cell: &AtomicU64, current: u64, new: u64) -> Result<u64, u64> {
        cell.compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
}

impl Word for u128 {
    type Cell = AtomicU128;
    const NONE: u128 = 0;
    #[inline(always)]
    fn load(cell: &AtomicU128) -> u128 {
        cell.load(Ordering::Acquire)
    }
    #[inline(always)]
    fn store(cell: &AtomicU128, word: u128) {
        cell.store(word, Ordering::Release)
    }
    #[inline(always)]
    fn swap_from(cell: &AtomicU128, current: u128, new: u128) -> Result<u128, u128> {
        cell.compare_exchange_weak(current, new, Ordering::AcqRel, Ordering::Acquire)
    }
}

/// A state that round-trips through one [`Word`].
pub trait InWord: Copy {
    type Word: Word;
    fn to_word(self) -> Self::Word;
    /// None for [`Word::NONE`] where that differs from every stored state.
    fn from_word(word: Self::Word) -> Option<Self>;
}

impl InWord for BucketState {
    type Word = u64;
    #[inline(always)]
    fn to_word(self) -> u64 {
        let [lo, hi, _] = self.pack();
        u64::from(lo) | (u64::from(hi) << 32)
    }
    #[inline(always)]
    fn from_word(word: u64) -> Option<Self> {
        Some(BucketState::unpack([word as u32, (word >> 32) as u32, 0]))
    }
}

/// `[start + 1 (64 bits), a (32), b (32)]`.
#[inline(always)]
fn window_word(start_lo: u32, start_hi: u32, a: u32, b: u32) -> u128 {
    let start = u64::from(start_lo) | (u64::from(start_hi) << 32);
    u128::from(start + 1) | (u128::from(a) << 64) | (u128::from(b) << 96)
}

/// The parts of a [`window_word`], or None for the empty word.
#[inline(always)]
fn window_parts(word: u128) -> Option<(u32, u32, u32, u32)> {
    let start = (word as u64).checked_sub(1)?;
    Some((
        start as u32,
        (start >> 32) as u32,
        (word >> 64) as u32,
        (word >> 96) as u32,
    ))
}

impl InWord for FixedState {
    type Word = u128;
    #[inline(always)]
    fn to_word(self) -> u128 {
        let [lo, hi, count] = self.pack();
        window_word(lo, hi, count, 0)
    }
    #[inline(always)]
    fn from_word(word: u128) -> Option<Self> {
        let (lo, hi, count, _) = window_parts(word)?;
        Some(FixedState::unpack([lo, hi, count]))
    }
}

impl InWord for SlidingState<u32> {
    type Word = u128;
    #[inline(always)]
    fn to_word(self) -> u128 {
        let [[lo, hi, prev], [_, _, cur]] = self.to_words();
        window_word(lo, hi, cur, prev)
    }
    #[inline(always)]
    fn from_word(word: u128) -> Option<Self> {
        let (lo, hi, cur, prev) = window_parts(word)?;
        Some(SlidingState::from_words(
            &[[lo, hi, prev], [lo, hi, cur]],
            0,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{Algorithm, FixedWindow, SlidingWindow};
    use crate::rate::Rate;

    #[test]
    fn window_states_round_trip_and_none_is_no_state() {
        let rate = Rate {
            limit: u32::MAX as u64,
            period_ns: 10,
        };
        assert_eq!(FixedState::from_word(0), None);
        assert_eq!(SlidingState::<u32>::from_word(0), None);
        for now in [0, 1, u32::MAX as u64 + 3, crate::clock::MAX_NS - 1] {
            for cost in [0, 1, 65_536, u32::MAX as u64] {
                let fixed = FixedWindow::new(rate).decide(None, now, cost).1.unwrap();
                assert_eq!(FixedState::from_word(fixed.to_word()), Some(fixed));
                assert_ne!(fixed.to_word(), 0, "a state at {now} is not the empty word");
                let sliding = SlidingWindow::<u32>::new(rate);
                let (_, first) = sliding.decide(None, now, cost);
                let (_, second) = sliding.decide(first, now + 15, 7);
                for state in [first.unwrap(), second.unwrap()] {
                    assert_eq!(SlidingState::from_word(state.to_word()), Some(state));
                }
            }
        }
    }
}
