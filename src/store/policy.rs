//! How a key's value in the store maps onto algorithm states: one rate, or several rates that
//! must all admit a request (and of which a denied request consumes none).

use std::marker::PhantomData;

use crate::algorithm::Algorithm;
use crate::decision::Decision;
use crate::rate::Rate;

/// The per-key decision logic a store runs under the key's lock.
pub trait Policy: Send + Sync + 'static {
    type Value: Send + Sync + 'static;

    /// Decides for a tracked key, updating its value in place when admitted.
    fn apply(&self, value: &mut Self::Value, now: u64, cost: u64) -> Decision;

    /// Decides for an untracked key; the value to track comes back when admitted.
    fn apply_fresh(&self, now: u64, cost: u64) -> (Decision, Option<Self::Value>);

    /// The key's standing without consuming anything.
    fn peek(&self, value: Option<&Self::Value>, now: u64) -> Decision;

    /// The decision `apply` (or, for an untracked key, `apply_fresh`) would make on `cost` at
    /// `now`, changing nothing.
    fn preview(&self, value: Option<&Self::Value>, now: u64, cost: u64) -> Decision;

    fn is_expired(&self, value: &Self::Value, now: u64) -> bool;

    /// When the value stops mattering (the latest of its rates').
    fn expires_at(&self, value: &Self::Value) -> u64;

    /// The first (primary) rate: the one reported when a new key is refused for lack of room.
    fn primary(&self) -> Rate;

    /// `value` with `cost` given back by a waiter that reserved it (see
    /// [`crate::Limiter::reserve`]) and gave up; unchanged where nothing is reserved.
    fn refund(&self, _value: &mut Self::Value, _cost: u64) {}
}

/// One algorithm, one rate: the value is the algorithm's state itself.
pub struct SingleRate<A: Algorithm>(pub A);

impl<A: Algorithm> Policy for SingleRate<A> {
    type Value = A::State;

    #[inline(always)]
    fn apply(&self, value: &mut A::State, now: u64, cost: u64) -> Decision {
        let (decision, next) = self.0.decide(Some(*value), now, cost);
        if let Some(next) = next {
            *value = next;
        }
        decision
    }

    #[inline]
    fn apply_fresh(&self, now: u64, cost: u64) -> (Decision, Option<A::State>) {
        self.0.decide(None, now, cost)
    }

    fn peek(&self, value: Option<&A::State>, now: u64) -> Decision {
        self.0.peek(value.copied(), now)
    }

    fn preview(&self, value: Option<&A::State>, now: u64, cost: u64) -> Decision {
        self.0.decide(value.copied(), now, cost).0
    }

    #[inline]
    fn is_expired(&self, value: &A::State, now: u64) -> bool {
        self.0.is_expired(*value, now)
    }

    fn expires_at(&self, value: &A::State) -> u64 {
        self.0.expires_at(*value)
    }

    fn primary(&self) -> Rate {
        self.0.rate()
    }

    fn refund(&self, value: &mut A::State, cost: u64) {
        *value = self.0.refund(*value, cost);
    }
}

/// Where a key's states for several rates live: inline for exactly two rates (the common
/// `"10/second; 1000/hour"`, no allocation per key), boxed for more.
pub trait StateList<S>: AsRef<[S]> + AsMut<[S]> + Send + Sync + 'static {
    /// Builds the list from one state per rate, in the order of the rates.
    fn from_states(states: impl Iterator<Item = S>) -> Self;
}

impl<S: Copy + Default + Send + Sync + 'static> StateList<S> for [S; 2] {
    fn from_states(states: impl Iterator<Item = S>) -> Self {
        let mut list = [S::default(); 2];
        for (slot, state) in list.iter_mut().zip(states) {
            *slot = state;
        }
        list
    }
}

impl<S: Copy + Send + Sync + 'static> StateList<S> for Box<[S]> {
    fn from_states(states: impl Iterator<Item = S>) -> Self {
        states.collect()
    }
}

/// Several rates on one key, all decided under the same lock: a request is admitted only if
/// every rate admits it, and then it is consumed from every rate. `L` holds the states; an
/// inline `[S; 2]` must be given exactly two rates.
pub struct MultiRate<A: Algorithm, L = Box<[<A as Algorithm>::State]>> {
    rates: Vec<A>,
    list: PhantomData<L>,
}

impl<A: Algorithm, L: StateList<A::State>> MultiRate<A, L> {
    pub fn new(rates: Vec<A>) -> Self {
        MultiRate {
            rates,
            list: PhantomData,
        }
    }

    /// The decision to report, and whether all rates admit, without changing anything.
    fn evaluate(&self, states: Option<&[A::State]>, now: u64, cost: u64) -> Decision {
        self.rates
            .iter()
            .enumerate()
            .map(|(i, alg)| alg.decide(states.map(|s| s[i]), now, cost).0)
            .reduce(Decision::most_restrictive)
            .expect("a MultiRate has at least one rate")
    }
}

impl<A: Algorithm, L: StateList<A::State>> Policy for MultiRate<A, L> {
    type Value = L;

    fn apply(&self, value: &mut L, now: u64, cost: u64) -> Decision {
        let decision = self.evaluate(Some(value.as_ref()), now, cost);
        if decision.allowed {
            // Each step runs again to get its new state: keeping the first pass's states until
            // every rate has admitted would take a buffer (an allocation for a boxed list),
            // while a step is a few nanoseconds of pure arithmetic.
            for (alg, state) in self.rates.iter().zip(value.as_mut()) {
                if let (_, Some(next)) = alg.decide(Some(*state), now, cost) {
                    *state = next;
                }
            }
        }
        decision
    }

    fn apply_fresh(&self, now: u64, cost: u64) -> (Decision, Option<L>) {
        let decision = self.evaluate(None, now, cost);
        if !decision.allowed {
            return (decision, None);
        }
        let states = self
            .rates
            .iter()
            .filter_map(|alg| alg.decide(None, now, cost).1);
        (decision, Some(L::from_states(states)))
    }

    fn peek(&self, value: Option<&L>, now: u64) -> Decision {
        self.rates
            .iter()
            .enumerate()
            .map(|(i, alg)| alg.peek(value.map(|s| s.as_ref()[i]), now))
            .reduce(Decision::most_restrictive)
            .expect("a MultiRate has at least one rate")
    }

    fn preview(&self, value: Option<&L>, now: u64, cost: u64) -> Decision {
        self.evaluate(value.map(|v| v.as_ref()), now, cost)
    }

    fn is_expired(&self, value: &L, now: u64) -> bool {
        self.rates
            .iter()
            .zip(value.as_ref())
            .all(|(alg, state)| alg.is_expired(*state, now))
    }

    fn expires_at(&self, value: &L) -> u64 {
        self.rates
            .iter()
            .zip(value.as_ref())
            .map(|(alg, state)| alg.expires_at(*state))
            .max()
            .unwrap_or(0)
    }

    fn primary(&self) -> Rate {
        self.rates[0].rate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::FixedWindow;

    fn fixed(limit: u64, period_ns: u64) -> FixedWindow {
        FixedWindow::new(Rate { limit, period_ns })
    }

    #[test]
    fn every_rate_must_admit_and_a_denial_consumes_from_none() {
        // 2 per 10 ns and 3 per 100 ns.
        let p = MultiRate::<_>::new(vec![fixed(2, 10), fixed(3, 100)]);
        let (d, v) = p.apply_fresh(0, 1);
        assert!(d.allowed);
        let mut v = v.unwrap();
        assert!(p.apply(&mut v, 1, 1).allowed);
        let denied = p.apply(&mut v, 2, 1);
        assert!(!denied.allowed, "the short rate is spent");
        assert_eq!(denied.limit, 2);
        assert_eq!(denied.retry_after_ns, 8);
        // The denial consumed nothing from the long rate: one request of it is still left.
        let d = p.apply(&mut v, 10, 1);
        assert!(d.allowed);
        assert_eq!(d.limit, 3, "the long rate now has the fewest remaining");
        assert_eq!(d.remaining, 0);
        let d = p.apply(&mut v, 20, 1);
        assert!(!d.allowed);
        assert_eq!(d.retry_after_ns, 80);
    }

    #[test]
    fn a_fresh_key_denied_by_one_rate_is_not_tracked() {
        let p = MultiRate::<_>::new(vec![fixed(5, 10), fixed(2, 100)]);
        let (d, v) = p.apply_fresh(0, 3);
        assert!(!d.allowed);
        assert!(v.is_none());
        assert_eq!(d.limit, 2);
    }

    #[test]
    fn two_rates_inline_decide_exactly_like_a_boxed_list() {
        let rates = || vec![fixed(3, 10), fixed(5, 35)];
        let inline = MultiRate::<_, [_; 2]>::new(rates());
        let boxed = MultiRate::<_>::new(rates());
        let (mut a, mut b) = (None, None);
        let mut now = 0;
        for i in 0u64..500 {
            now += (i * 13) % 7;
            let cost = 1 + i % 4;
            let da = match a.as_mut() {
                Some(v) => inline.apply(v, now, cost),
                None => {
                    let (d, v) = inline.apply_fresh(now, cost);
                    a = v;
                    d
                }
            };
            let db = match b.as_mut() {
                Some(v) => boxed.apply(v, now, cost),
                None => {
                    let (d, v) = boxed.apply_fresh(now, cost);
                    b = v;
                    d
                }
            };
            assert_eq!(da, db, "step {i}");
            assert_eq!(inline.peek(a.as_ref(), now), boxed.peek(b.as_ref(), now));
            assert_eq!(
                a.as_ref().map(|v| inline.is_expired(v, now)),
                b.as_ref().map(|v| boxed.is_expired(v, now))
            );
        }
    }

    #[test]
    fn expired_only_when_every_rate_has_expired() {
        let p = MultiRate::<_>::new(vec![fixed(5, 10), fixed(5, 100)]);
        let v = p.apply_fresh(0, 1).1.unwrap();
        assert!(!p.is_expired(&v, 50));
        assert!(p.is_expired(&v, 100));
        assert_eq!(p.peek(Some(&v), 50).remaining, 4);
    }
}
