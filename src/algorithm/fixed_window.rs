//! Fixed window: up to `limit` per window; a key's window starts at its first request and
//! the next one at the first request after it ends.

use super::{Algorithm, PackedNs, PackedState};
use crate::decision::{Decision, NEVER};
use crate::rate::Rate;

/// A key's window: when it opened and what it has admitted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct FixedState {
    start: PackedNs,
    count: u32,
}

impl PackedState for FixedState {
    #[inline]
    fn pack(self) -> [u32; 3] {
        [self.start.0[0], self.start.0[1], self.count]
    }

    #[inline]
    fn unpack(words: [u32; 3]) -> Self {
        FixedState {
            start: PackedNs([words[0], words[1]]),
            count: words[2],
        }
    }
}

/// The fixed window configured with one rate.
#[derive(Clone, Debug)]
pub struct FixedWindow {
    limit: u64,
    window: u64,
}

impl FixedWindow {
    /// `rate.limit` must fit a `u32` and `rate.period_ns` be at least 1 (checked by the config).
    pub fn new(rate: Rate) -> Self {
        debug_assert!(rate.limit >= 1 && rate.limit <= u32::MAX as u64 && rate.period_ns >= 1);
        FixedWindow {
            limit: rate.limit,
            window: rate.period_ns,
        }
    }

    /// `(start, count)` of the window live at `now`, a fresh one when there is none.
    #[inline]
    fn live(&self, state: Option<FixedState>, now: u64) -> (u64, u64) {
        match state {
            Some(s) if now.saturating_sub(s.start.get()) < self.window => {
                (s.start.get(), u64::from(s.count))
            }
            _ => (now, 0),
        }
    }

    #[inline]
    fn decision(&self, allowed: bool, start: u64, count: u64, now: u64, retry: u64) -> Decision {
        Decision {
            allowed,
            limit: self.limit,
            remaining: self.limit - count,
            reset_after_ns: if count == 0 {
                0
            } else {
                (start + self.window).saturating_sub(now)
            },
            retry_after_ns: retry,
        }
    }
}

impl Algorithm for FixedWindow {
    type State = FixedState;

    #[inline(always)]
    fn decide(
        &self,
        state: Option<FixedState>,
        now: u64,
        cost: u64,
    ) -> (Decision, Option<FixedState>) {
        let (start, count) = self.live(state, now);
        if cost > self.limit {
            return (self.decision(false, start, count, now, NEVER), None);
        }
        if count + cost <= self.limit {
            let count = count + cost;
            let next = FixedState {
                start: PackedNs::new(start),
                count: count as u32,
            };
            return (self.decision(true, start, count, now, 0), Some(next));
        }
        let wait = (start + self.window).saturating_sub(now);
        (self.decision(false, start, count, now, wait), None)
    }

    fn peek(&self, state: Option<FixedState>, now: u64) -> Decision {
        let (start, count) = self.live(state, now);
        self.decision(count < self.limit, start, count, now, 0)
    }

    fn expires_at(&self, state: FixedState) -> u64 {
        state.start.get().saturating_add(self.window)
    }

    #[inline]
    fn is_expired(&self, state: FixedState, now: u64) -> bool {
        now.saturating_sub(state.start.get()) >= self.window
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

    const W: u64 = 10_000;

    fn alg(limit: u64) -> FixedWindow {
        FixedWindow::new(Rate {
            limit,
            period_ns: W,
        })
    }

    /// Runs `(now, cost)` steps against one key, returning the decisions.
    fn run(alg: &FixedWindow, steps: &[(u64, u64)]) -> Vec<Decision> {
        let mut state = None;
        steps
            .iter()
            .map(|&(now, cost)| {
                let (d, next) = alg.decide(state, now, cost);
                if next.is_some() {
                    state = next;
                }
                d
            })
            .collect()
    }

    #[test]
    fn admits_limit_then_denies_until_the_window_ends() {
        let a = alg(3);
        let d = run(
            &a,
            &[
                (100, 1),
                (200, 1),
                (300, 1),
                (400, 1),
                (W + 99, 1),
                (W + 100, 1),
            ],
        );
        assert_eq!(
            d.iter().map(|d| d.allowed).collect::<Vec<_>>(),
            [true, true, true, false, false, true]
        );
        assert_eq!(d[0].remaining, 2);
        assert_eq!(d[0].reset_after_ns, W);
        assert_eq!(d[3].retry_after_ns, W + 100 - 400);
        assert_eq!(d[4].retry_after_ns, 1);
        assert_eq!(
            d[5].remaining, 2,
            "a new window starts at the first request after the old one"
        );
        assert_eq!(d[5].reset_after_ns, W);
    }

    #[test]
    fn cost_counts_and_a_denied_cost_consumes_nothing() {
        let a = alg(5);
        let d = run(&a, &[(0, 3), (1, 3), (2, 2), (3, 1)]);
        assert_eq!(
            d.iter().map(|d| d.allowed).collect::<Vec<_>>(),
            [true, false, true, false]
        );
        assert_eq!(d[1].remaining, 2);
        assert_eq!(d[2].remaining, 0);
    }

    #[test]
    fn cost_above_the_limit_never_passes_and_consumes_nothing() {
        let a = alg(5);
        let d = run(&a, &[(0, 6), (1, 5)]);
        assert!(!d[0].allowed);
        assert_eq!(d[0].retry_after_ns, NEVER);
        assert_eq!(d[0].remaining, 5);
        assert!(d[1].allowed);
    }

    #[test]
    fn expiry_matches_a_missing_state_and_peek_consumes_nothing() {
        let a = alg(2);
        let (_, s) = a.decide(None, 50, 1);
        let s = s.unwrap();
        assert!(!a.is_expired(s, 50 + W - 1));
        assert!(a.is_expired(s, 50 + W));
        assert_eq!(a.decide(Some(s), 50 + W, 1), a.decide(None, 50 + W, 1));
        assert_eq!(a.peek(Some(s), 60).remaining, 1);
        assert_eq!(a.peek(Some(s), 60).reset_after_ns, W - 10);
        assert_eq!(a.peek(None, 60).remaining, 2);
        assert_eq!(a.peek(None, 60).reset_after_ns, 0);
    }
}
