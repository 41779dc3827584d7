//! Sliding-window counter: the count of the current window plus the previous window's count
//! weighted by how much of it the sliding window still overlaps. No double burst at a window
//! boundary, and two counters per key instead of a log of timestamps.
//!
//! Windows are anchored at a key's first request and tile from there. When nothing of the
//! past is left to weigh (two windows idle, or one window idle after an empty one) the next
//! request anchors afresh, exactly as for a key never seen: sweeping cannot change a decision.
//!
//! All arithmetic is exact integers: a request of `cost` is admitted when
//! `prev * (W - elapsed) + (cur + cost) * W <= limit * W`.
//!
//! The two counts never exceed the limit, so they are stored as `u16` when the limit allows
//! (a 12-byte state, like the fixed window's) and as `u32` otherwise.

use std::marker::PhantomData;
use std::num::NonZeroU128;

use super::{Algorithm, PackedNs, PackedState};
use crate::decision::{Decision, NEVER};
use crate::rate::Rate;

/// The width of the stored counts: `u16` or `u32`.
pub trait Count: Copy + Default + Send + Sync + std::fmt::Debug + PartialEq + 'static {
    /// The largest limit this width holds.
    const MAX: u64;
    /// `value` (at most [`Self::MAX`]) at this width.
    fn new(value: u64) -> Self;
    /// The count as a `u64`.
    fn get(self) -> u64;
}

impl Count for u16 {
    const MAX: u64 = u16::MAX as u64;
    #[inline(always)]
    fn new(value: u64) -> Self {
        value as u16
    }
    #[inline(always)]
    fn get(self) -> u64 {
        u64::from(self)
    }
}

impl Count for u32 {
    const MAX: u64 = u32::MAX as u64;
    #[inline(always)]
    fn new(value: u64) -> Self {
        value as u32
    }
    #[inline(always)]
    fn get(self) -> u64 {
        u64::from(self)
    }
}

/// A key's windows: where the current one starts, its count and the previous one's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct SlidingState<C: Count = u32> {
    start: PackedNs,
    cur: C,
    prev: C,
}

/// Counts of up to 65,535 (the narrow state) fit beside the start in three words.
impl PackedState for SlidingState<u16> {
    #[inline]
    fn pack(self) -> [u32; 3] {
        let counts = u32::from(self.cur) | (u32::from(self.prev) << 16);
        [self.start.0[0], self.start.0[1], counts]
    }

    #[inline]
    fn unpack(words: [u32; 3]) -> Self {
        SlidingState {
            start: PackedNs([words[0], words[1]]),
            cur: words[2] as u16,
            prev: (words[2] >> 16) as u16,
        }
    }
}

/// Counts of up to `u32::MAX` take two words in a shared table: word 0 the start and the
/// previous count, word 1 the start and the current count. A request's new start and current
/// count follow from the old start and current count alone (the previous count only weighs
/// whether it is admitted, and it was), so word 1 can be applied after word 0 is replaced.
impl super::WordsState for SlidingState<u32> {
    const WORDS: usize = 2;

    #[inline]
    fn to_words(self) -> [[u32; 3]; 2] {
        let [lo, hi] = self.start.0;
        [[lo, hi, self.prev], [lo, hi, self.cur]]
    }

    #[inline]
    fn from_words(words: &[[u32; 3]; 2], from: usize) -> Self {
        let [lo, hi, cur] = words[1];
        SlidingState {
            start: PackedNs([lo, hi]),
            cur,
            // Word 1 alone: no previous count, which admits whatever the whole state admitted
            // and gives the same start and current count.
            prev: if from == 0 { words[0][2] } else { 0 },
        }
    }
}

/// The sliding-window counter configured with one rate, counting in `C` (`u16` or `u32`).
#[derive(Clone, Debug)]
pub struct SlidingWindow<C: Count = u32> {
    limit: u64,
    window: u64,
    /// The window as a divisor that cannot be zero, so unused divisions can be optimised away.
    window_divisor: NonZeroU128,
    /// `limit * window`: the capacity on the scale of `scaled_used`.
    capacity: u128,
    count: PhantomData<C>,
}

/// The state as seen at `now`: the current window's start, its count, the previous count, and
/// how far into the current window `now` is (always less than the window).
#[derive(Clone, Copy, Debug)]
struct View {
    start: u64,
    cur: u64,
    prev: u64,
    elapsed: u64,
}

impl<C: Count> SlidingWindow<C> {
    /// `rate.limit` must fit `C` and `rate.period_ns` be at least 1 (checked by the config).
    pub fn new(rate: Rate) -> Self {
        debug_assert!(rate.limit >= 1 && rate.limit <= C::MAX && rate.period_ns >= 1);
        SlidingWindow {
            limit: rate.limit,
            window: rate.period_ns,
            window_divisor: NonZeroU128::new(u128::from(rate.period_ns.max(1)))
                .expect("at least 1"),
            capacity: u128::from(rate.limit) * u128::from(rate.period_ns),
            count: PhantomData,
        }
    }

    #[inline(always)]
    fn view(&self, state: Option<SlidingState<C>>, now: u64) -> View {
        let fresh = View {
            start: now,
            cur: 0,
            prev: 0,
            elapsed: 0,
        };
        let Some(s) = state else { return fresh };
        let (start, cur, prev) = (s.start.get(), s.cur.get(), s.prev.get());
        let elapsed = now.saturating_sub(start);
        if elapsed >= 2 * self.window || (elapsed >= self.window && cur == 0) {
            fresh
        } else if elapsed >= self.window {
            View {
                start: start + self.window,
                cur: 0,
                prev: cur,
                elapsed: elapsed - self.window,
            }
        } else {
            View {
                start,
                cur,
                prev,
                elapsed,
            }
        }
    }

    /// `prev * (W - elapsed)`: the previous window's weight, scaled by `W`.
    ///
    /// Each product is of two `u64`s (a single widening multiply): the difference is taken in
    /// `u64`, where `elapsed < W` holds by construction of the view, rather than in `u128`.
    #[inline(always)]
    fn scaled_prev(&self, v: View) -> u128 {
        u128::from(v.prev) * u128::from(self.window - v.elapsed)
    }

    /// `count * W`: a count of the current window, scaled by `W`.
    #[inline(always)]
    fn scaled(&self, count: u64) -> u128 {
        u128::from(count) * u128::from(self.window)
    }

    /// Whether `cost` fits even with the previous window counted in full: `prev + cur + cost
    /// <= limit`. Then it fits with the previous window weighted (`prev * (W - elapsed) <=
    /// prev * W`), and no product is needed: the common case of a key below its limit, which
    /// `allow()` decides with compares alone (as it does a key whose current window alone is
    /// full).
    #[inline(always)]
    fn fits_unweighted(&self, v: View, cost: u64) -> bool {
        v.prev + v.cur + cost <= self.limit
    }

    /// `prev * (W - elapsed) + cur * W`: the weighted count, scaled by `W`.
    #[inline(always)]
    fn scaled_used(&self, v: View) -> u128 {
        self.scaled_prev(v) + self.scaled(v.cur)
    }

    /// The decision for view `v` whose weighted count (scaled by `W`) is `used`.
    #[inline(always)]
    fn decision(&self, allowed: bool, v: View, used: u128, now: u64, retry: u64) -> Decision {
        let reset_at = if v.cur > 0 {
            v.start + 2 * self.window
        } else if v.prev > 0 {
            v.start + self.window
        } else {
            now
        };
        Decision {
            allowed,
            limit: self.limit,
            remaining: (self.capacity.saturating_sub(used) / self.window_divisor) as u64,
            reset_after_ns: reset_at.saturating_sub(now),
            retry_after_ns: retry,
        }
    }

    /// Nanoseconds until `cost` fits, for a request denied at the time of view `v`, with
    /// `cost <= limit`.
    ///
    /// Inlined and free of panics (the divisors are never 0 here, but the compiler cannot see
    /// it), so that `allow()`, which never reads the wait, does not compute its two 128-bit
    /// divisions: they were 105 instructions of every denied call.
    #[inline(always)]
    fn wait(&self, v: View, cost: u64) -> u64 {
        let w = u128::from(self.window);
        let elapsed = u128::from(v.elapsed);
        let (limit, cur, prev) = (
            u128::from(self.limit),
            u128::from(v.cur),
            u128::from(v.prev),
        );
        let admitted_at_elapsed = if cur + u128::from(cost) <= limit {
            // The previous window's weight must fade: prev * (W - e) <= (limit - cur - cost) * W.
            let room = (limit - cur - u128::from(cost)) * w;
            w - room.checked_div(prev).unwrap_or(w)
        } else {
            // Only after this window rolls over, when `cur` becomes the weighted one:
            // cur * (W - x) <= (limit - cost) * W.
            let room = (limit - u128::from(cost)) * w;
            w + w.saturating_sub(room.checked_div(cur).unwrap_or(0))
        };
        (admitted_at_elapsed.saturating_sub(elapsed)) as u64
    }
}

impl<C: Count> Algorithm for SlidingWindow<C> {
    type State = SlidingState<C>;

    #[inline(always)]
    fn decide(
        &self,
        state: Option<SlidingState<C>>,
        now: u64,
        cost: u64,
    ) -> (Decision, Option<SlidingState<C>>) {
        let v = self.view(state, now);
        if cost > self.limit {
            return (
                self.decision(false, v, self.scaled_used(v), now, NEVER),
                None,
            );
        }
        // `cur + cost <= 2 * limit`, which fits a u64: one product instead of two. Computed
        // only where it is read, so that `allow()` multiplies nothing when `fits_unweighted`.
        let used_after = || self.scaled_prev(v) + self.scaled(v.cur + cost);
        // Weighing decides only between the two shortcuts: everything fits even with the
        // previous window in full, or the current window alone has no room left.
        let fits = self.fits_unweighted(v, cost)
            || (v.cur + cost <= self.limit && used_after() <= self.capacity);
        if fits {
            let next = View {
                cur: v.cur + cost,
                ..v
            };
            let stored = SlidingState {
                start: PackedNs::new(next.start),
                cur: C::new(next.cur),
                prev: C::new(next.prev),
            };
            return (
                self.decision(true, next, used_after(), now, 0),
                Some(stored),
            );
        }
        let wait = self.wait(v, cost);
        (
            self.decision(false, v, self.scaled_used(v), now, wait),
            None,
        )
    }

    fn peek(&self, state: Option<SlidingState<C>>, now: u64) -> Decision {
        let v = self.view(state, now);
        let d = self.decision(true, v, self.scaled_used(v), now, 0);
        Decision {
            allowed: d.remaining > 0,
            ..d
        }
    }

    #[inline]
    fn expires_at(&self, state: SlidingState<C>) -> u64 {
        state.start.get().saturating_add(2 * self.window)
    }

    fn is_expired(&self, state: SlidingState<C>, now: u64) -> bool {
        let elapsed = now.saturating_sub(state.start.get());
        elapsed >= 2 * self.window || (elapsed >= self.window && state.cur.get() == 0)
    }

    fn rate(&self) -> Rate {
        Rate {
            limit: self.limit,
            period_ns: self.window,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 1_000;

    fn alg(limit: u64) -> SlidingWindow {
        SlidingWindow::new(Rate {
            limit,
            period_ns: W,
        })
    }

    fn step<C: Count>(
        a: &SlidingWindow<C>,
        state: &mut Option<SlidingState<C>>,
        now: u64,
        cost: u64,
    ) -> Decision {
        let (d, next) = a.decide(*state, now, cost);
        if next.is_some() {
            *state = next;
        }
        d
    }

    #[test]
    fn no_double_burst_at_the_window_boundary() {
        let a = alg(10);
        let mut s = None;
        for i in 0..10 {
            assert!(step(&a, &mut s, i, 1).allowed);
        }
        // Right at the boundary the previous window still weighs fully.
        let d = step(&a, &mut s, 1_000, 1);
        assert!(!d.allowed);
        // Half a window later half of it is left: 5 of 10 used, 5 admitted.
        let admitted = (0..10)
            .filter(|_| step(&a, &mut s, 1_500, 1).allowed)
            .count();
        assert_eq!(admitted, 5);
    }

    #[test]
    fn retry_after_is_the_exact_first_admitting_instant() {
        let a = alg(4);
        let mut s = None;
        for _ in 0..4 {
            assert!(step(&a, &mut s, 0, 1).allowed);
        }
        // Same window: the count itself must roll over and fade to 3/4: at 1000 + 250.
        let d = step(&a, &mut s, 100, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ns, 1_150);
        assert!(!step(&a, &mut s, 1_249, 1).allowed);
        assert!(step(&a, &mut s, 1_250, 1).allowed);
        // Now prev = 4 and cur = 1 at elapsed 250: used = 4*0.75 + 1 = 4. Cost 2 fits when
        // 4*(1000-e) <= (4-1-2)*1000, i.e. e >= 750.
        let d = step(&a, &mut s, 1_300, 2);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ns, 1_750 - 1_300);
        assert!(step(&a, &mut s, 1_750, 2).allowed);
    }

    #[test]
    fn the_unweighted_shortcut_and_the_weighted_count_agree_at_their_edges() {
        // prev = 6 and cur = 3 at elapsed 500: the weighted count is 6 * 0.5 + 3 = 6.
        let a = alg(10);
        let setup = |cur: u64| {
            let mut s = None;
            for _ in 0..6 {
                assert!(step(&a, &mut s, 0, 1).allowed);
            }
            for _ in 0..cur {
                assert!(step(&a, &mut s, W, 1).allowed);
            }
            s
        };
        // prev + cur + cost = 10: admitted without weighing.
        let mut s = setup(3);
        let d = step(&a, &mut s, W + 500, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 3, "weighted: 6 * 0.5 + 4 = 7 used");
        // prev + cur + cost = 13 > 10, but weighted 6 + 4 = 10 fits exactly.
        let mut s = setup(3);
        assert!(step(&a, &mut s, W + 500, 4).allowed);
        // Weighted 6 + 5 = 11 does not.
        let mut s = setup(3);
        let d = step(&a, &mut s, W + 500, 5);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 4);
    }

    #[test]
    fn cost_above_the_limit_never_passes() {
        let a = alg(3);
        let (d, s) = a.decide(None, 0, 4);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ns, NEVER);
        assert!(s.is_none());
    }

    #[test]
    fn expired_states_decide_like_missing_ones() {
        let a = alg(3);
        let mut s = None;
        step(&a, &mut s, 10, 2);
        let st = s.unwrap();
        assert!(!a.is_expired(st, 10 + 2 * W - 1));
        assert!(a.is_expired(st, 10 + 2 * W));
        for now in [10 + 2 * W, 10 + 5 * W] {
            assert_eq!(a.decide(Some(st), now, 1), a.decide(None, now, 1));
        }
        // Rolled over with an empty current window: the past weighs nothing, so fresh too.
        let mut s = None;
        step(&a, &mut s, 0, 1);
        step(&a, &mut s, W + 10, 1); // prev = 1, cur = 1
        let st = s.unwrap();
        assert!(!a.is_expired(st, 2 * W + 5));
    }

    #[test]
    fn narrow_counts_decide_exactly_like_wide_ones_in_a_smaller_state() {
        let rate = Rate {
            limit: 7,
            period_ns: W,
        };
        let (narrow, wide) = (
            SlidingWindow::<u16>::new(rate),
            SlidingWindow::<u32>::new(rate),
        );
        let (mut s16, mut s32) = (None, None);
        // A deterministic walk over times and costs that crosses many window edges.
        let mut now = 0;
        for i in 0u64..2_000 {
            now += (i * 7_919) % 611;
            let cost = 1 + i % 8;
            assert_eq!(
                step(&narrow, &mut s16, now, cost),
                step(&wide, &mut s32, now, cost),
                "step {i}"
            );
            assert_eq!(narrow.peek(s16, now), wide.peek(s32, now));
        }
        assert_eq!(std::mem::size_of::<SlidingState<u16>>(), 12);
        assert_eq!(std::mem::size_of::<SlidingState<u32>>(), 16);
    }

    #[test]
    fn peek_reports_weighted_remaining_and_full_reset() {
        let a = alg(10);
        let mut s = None;
        step(&a, &mut s, 0, 4);
        let p = a.peek(s, 1_500); // prev 4 weighted by 0.5 -> 2 used
        assert_eq!(p.remaining, 8);
        assert_eq!(p.reset_after_ns, 500);
        assert_eq!(a.peek(s, 0).reset_after_ns, 2 * W);
    }
}
