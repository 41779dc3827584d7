//! Token bucket, leaky bucket (as a meter) and GCRA: three vocabularies for one algorithm.
//!
//! With emission interval `T = window / limit` and capacity `burst`:
//! - GCRA keeps a theoretical arrival time `TAT` and admits `cost` when
//!   `max(TAT, now) + cost*T - now <= burst*T`, then moves `TAT` there.
//! - A token bucket holds `burst - (max(TAT, now) - now) / T` tokens, refilled at `1/T` a
//!   nanosecond; it admits `cost` when that many tokens are there.
//! - A leaky bucket meter holds `(max(TAT, now) - now) / T`, draining at `1/T`; it admits `cost`
//!   when the meter plus `cost` stays within `burst`.
//!
//! The three conditions are the same inequality, so one exact integer step serves all of them
//! and the state is a single timestamp. The Python test-suite checks this step against a
//! reference model written in each vocabulary.

use std::num::NonZeroU64;

use super::{Algorithm, PackedNs, PackedState};
use crate::clock::MAX_NS;
use crate::decision::{Decision, NEVER};
use crate::rate::Rate;

/// The theoretical arrival time: when the bucket is full again (the meter empty).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct BucketState {
    tat: PackedNs,
}

impl PackedState for BucketState {
    #[inline]
    fn pack(self) -> [u32; 3] {
        [self.tat.0[0], self.tat.0[1], 0]
    }

    #[inline]
    fn unpack(words: [u32; 3]) -> Self {
        BucketState {
            tat: PackedNs([words[0], words[1]]),
        }
    }
}

/// Token bucket, leaky bucket and GCRA (the module's one step), configured with one rate and a
/// capacity (`burst`).
#[derive(Clone, Debug)]
pub struct Bucket {
    limit: u64,
    window: u64,
    burst: u64,
    /// Emission interval `T`, nanoseconds per unit of cost (never zero, so unused divisions by
    /// it can be optimised away).
    interval: NonZeroU64,
    /// `burst * T`: how far ahead of now the arrival time may run.
    tolerance: u64,
}

/// Why a bucket cannot be built from a rate and a burst.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BucketError {
    /// More than one request per nanosecond.
    TooFast,
    /// `burst * T` is longer than [`MAX_NS`].
    TooLong,
}

impl Bucket {
    /// `T` is `window / limit` rounded to the nearest nanosecond.
    pub fn new(rate: Rate, burst: u64) -> Result<Self, BucketError> {
        let interval =
            (u128::from(rate.period_ns) + u128::from(rate.limit) / 2) / u128::from(rate.limit);
        let tolerance = interval * u128::from(burst);
        if tolerance > u128::from(MAX_NS) {
            return Err(BucketError::TooLong);
        }
        Ok(Bucket {
            limit: rate.limit,
            window: rate.period_ns,
            burst,
            interval: NonZeroU64::new(interval as u64).ok_or(BucketError::TooFast)?,
            tolerance: tolerance as u64,
        })
    }

    /// `burst * T`: how far past now an admitted request may leave the arrival time.
    pub fn tolerance_ns(&self) -> u64 {
        self.tolerance
    }

    #[inline]
    fn decision(&self, allowed: bool, tat: u64, now: u64, retry: u64) -> Decision {
        let backlog = tat.saturating_sub(now);
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.tolerance.saturating_sub(backlog) / self.interval,
            reset_after_ns: backlog,
            retry_after_ns: retry,
        }
    }
}

impl Algorithm for Bucket {
    type State = BucketState;

    #[inline(always)]
    fn decide(
        &self,
        state: Option<BucketState>,
        now: u64,
        cost: u64,
    ) -> (Decision, Option<BucketState>) {
        let tat = state.map_or(now, |s| s.tat.get()).max(now);
        if cost > self.burst {
            return (self.decision(false, tat, now, NEVER), None);
        }
        let next = tat + cost * self.interval.get();
        let limit_at = now + self.tolerance;
        if next <= limit_at {
            let stored = BucketState {
                tat: PackedNs::new(next),
            };
            (self.decision(true, next, now, 0), Some(stored))
        } else {
            (self.decision(false, tat, now, next - limit_at), None)
        }
    }

    fn peek(&self, state: Option<BucketState>, now: u64) -> Decision {
        let tat = state.map_or(now, |s| s.tat.get()).max(now);
        let d = self.decision(true, tat, now, 0);
        Decision {
            allowed: d.remaining > 0,
            ..d
        }
    }

    fn expires_at(&self, state: BucketState) -> u64 {
        state.tat.get()
    }

    #[inline]
    fn is_expired(&self, state: BucketState, now: u64) -> bool {
        state.tat.get() <= now
    }

    fn rate(&self) -> Rate {
        Rate {
            limit: self.limit,
            period_ns: self.window,
        }
    }

    const RESERVES: bool = true;

    fn refund(&self, state: BucketState, cost: u64) -> BucketState {
        let back = cost.saturating_mul(self.interval.get());
        BucketState {
            tat: PackedNs::new(state.tat.get().saturating_sub(back)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(limit: u64, window: u64, burst: u64) -> Bucket {
        Bucket::new(
            Rate {
                limit,
                period_ns: window,
            },
            burst,
        )
        .unwrap()
    }

    fn step(b: &Bucket, state: &mut Option<BucketState>, now: u64, cost: u64) -> Decision {
        let (d, next) = b.decide(*state, now, cost);
        if next.is_some() {
            *state = next;
        }
        d
    }

    #[test]
    fn burst_at_once_then_one_per_interval() {
        // 10 per 1000 ns: T = 100, burst 3.
        let b = bucket(10, 1_000, 3);
        let mut s = None;
        for expected_remaining in [2, 1, 0] {
            let d = step(&b, &mut s, 0, 1);
            assert!(d.allowed);
            assert_eq!(d.remaining, expected_remaining);
        }
        let d = step(&b, &mut s, 0, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ns, 100);
        assert_eq!(d.reset_after_ns, 300);
        assert!(!step(&b, &mut s, 99, 1).allowed);
        assert!(step(&b, &mut s, 100, 1).allowed);
        assert!(!step(&b, &mut s, 150, 1).allowed);
        assert!(step(&b, &mut s, 200, 1).allowed);
    }

    #[test]
    fn cost_uses_that_many_tokens_and_waits_for_them() {
        let b = bucket(10, 1_000, 5);
        let mut s = None;
        assert!(step(&b, &mut s, 0, 4).allowed);
        let d = step(&b, &mut s, 0, 3);
        assert!(!d.allowed);
        assert_eq!(d.remaining, 1);
        assert_eq!(d.retry_after_ns, 200);
        assert!(step(&b, &mut s, 200, 3).allowed);
        let d = step(&b, &mut s, 200, 6);
        assert_eq!(d.retry_after_ns, NEVER);
    }

    #[test]
    fn long_idle_refills_only_up_to_the_capacity() {
        let b = bucket(1, 1_000, 2);
        let mut s = None;
        assert!(step(&b, &mut s, 0, 2).allowed);
        let admitted = (0..5)
            .filter(|_| step(&b, &mut s, 1_000_000, 1).allowed)
            .count();
        assert_eq!(admitted, 2);
    }

    #[test]
    fn interval_rounds_to_the_nearest_nanosecond_and_bad_rates_are_refused() {
        assert_eq!(bucket(3, 1_000, 3).interval.get(), 333);
        assert_eq!(bucket(3, 1_001, 3).interval.get(), 334);
        let too_fast = Rate {
            limit: 3,
            period_ns: 1,
        };
        assert_eq!(Bucket::new(too_fast, 3).unwrap_err(), BucketError::TooFast);
        let too_long = Rate {
            limit: 1,
            period_ns: 1 << 40,
        };
        assert_eq!(
            Bucket::new(too_long, 1 << 30).unwrap_err(),
            BucketError::TooLong
        );
    }

    #[test]
    fn expired_states_decide_like_missing_ones() {
        let b = bucket(2, 1_000, 2);
        let (_, s) = b.decide(None, 0, 1);
        let s = s.unwrap();
        assert!(!b.is_expired(s, 499));
        assert!(b.is_expired(s, 500));
        assert_eq!(b.decide(Some(s), 500, 2), b.decide(None, 500, 2));
        assert_eq!(b.peek(Some(s), 250).remaining, 1);
        assert_eq!(b.peek(None, 250).remaining, 2);
    }
}
