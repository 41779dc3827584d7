//! `AtomicState<A>`: one algorithm's state for the whole process in one atomic word (see
//! [`super::word`]), decided by a compare-and-swap loop: read the word, compute the decision
//! and the next state exactly as a keyed limiter does for one key, swap it in if nobody moved
//! it meanwhile, else decide again on what they wrote. A denial writes nothing. Refill and
//! window changes are computed from the clock at call time: no lock, no thread.

use crate::algorithm::Algorithm;
use crate::clock::{Clock, MAX_NS};
use crate::decision::{Decision, NEVER};

use super::word::{InWord, Word};

/// What `AtomicState::reserve_at` got: admitted after `wait_ns` (0: at once), or refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reservation {
    /// The decision at the instant the request goes (`retry_after_ns` of a refusal is the
    /// wait that was too long, or [`NEVER`]).
    pub decision: Decision,
    /// How long after `now` the reserved request may go; 0 when it went at once.
    pub wait_ns: u64,
}

pub struct AtomicState<A: Algorithm>
where
    A::State: InWord,
{
    algorithm: A,
    word: <<A::State as InWord>::Word as Word>::Cell,
    clock: Clock,
}

impl<A: Algorithm> AtomicState<A>
where
    A::State: InWord,
{
    pub fn new(algorithm: A, clock: Clock) -> Self {
        AtomicState {
            algorithm,
            word: Default::default(),
            clock,
        }
    }

    #[inline(always)]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    #[inline(always)]
    fn load(&self) -> <A::State as InWord>::Word {
        <A::State as InWord>::Word::load(&self.word)
    }

    /// Decides on `cost` at `now`, consuming it when admitted.
    #[inline(always)]
    pub fn decide_at(&self, cost: u64, now: u64) -> Decision {
        let mut current = self.load();
        loop {
            let state = <A::State as InWord>::from_word(current);
            let (decision, next) = self.algorithm.decide(state, now, cost);
            let Some(next) = next else {
                return decision;
            };
            match Word::swap_from(&self.word, current, next.to_word()) {
                Ok(_) => return decision,
                Err(found) => current = found,
            }
        }
    }

    /// What a request of cost 0 sees at `now`, consuming nothing.
    pub fn peek_at(&self, now: u64) -> Decision {
        let state = <A::State as InWord>::from_word(self.load());
        self.algorithm.peek(state, now)
    }

    /// The decision [`Self::decide_at`] would make on `cost` at `now`, consuming nothing.
    pub fn preview_at(&self, cost: u64, now: u64) -> Decision {
        let state = <A::State as InWord>::from_word(self.load());
        self.algorithm.decide(state, now, cost).0
    }

    /// Admits `cost` at `now`, or, where the algorithm reserves (the buckets), at the first
    /// instant within `max_wait_ns` when it would be admitted: the state then counts it from
    /// that instant, so later callers queue behind it. A window never reserves: a request it
    /// denies is refused with the wait, for the caller to sleep and decide again.
    pub fn reserve_at(&self, cost: u64, now: u64, max_wait_ns: u64) -> Reservation {
        loop {
            let decision = self.decide_at(cost, now);
            let wait = decision.retry_after_ns;
            if decision.allowed || !A::RESERVES || wait == NEVER || wait > max_wait_ns {
                return Reservation {
                    decision,
                    wait_ns: 0,
                };
            }
            let at = now.saturating_add(wait).min(MAX_NS);
            let later = self.decide_at(cost, at);
            if later.allowed {
                return Reservation {
                    decision: later,
                    wait_ns: wait,
                };
            }
            // Someone took that instant between the two decisions: decide again from theirs.
        }
    }

    /// Gives back `cost` reserved by [`Self::reserve_at`] and not used.
    pub fn refund(&self, cost: u64) {
        let mut current = self.load();
        loop {
            let Some(state) = <A::State as InWord>::from_word(current) else {
                return;
            };
            let back = self.algorithm.refund(state, cost).to_word();
            if back == current {
                return;
            }
            match Word::swap_from(&self.word, current, back) {
                Ok(_) => return,
                Err(found) => current = found,
            }
        }
    }

    /// Back to no state: full again.
    pub fn reset(&self) {
        Word::store(&self.word, <A::State as InWord>::Word::NONE);
    }
}
