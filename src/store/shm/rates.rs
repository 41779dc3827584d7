//! `RatesStore`: several rates of one algorithm on each key (`"10/second; 1000/hour"`),
//! decided together over a shared table: a request is admitted only if every rate admits it,
//! and is then counted in every rate, as one step, as in memory.
//!
//! The states of several rates do not fit one 16-byte word, so a slot of this table holds a
//! `Control` (`units.rs`) in place of the cell and then one word per rate, each stamped with the
//! sequence of the request that wrote it. The control names the key's last request.
//!
//! - A decision reads the control, the rates' words, and the control again: the same control,
//!   with every word carrying its sequence, is a consistent view (a word that does not carry it
//!   yet has a request to apply first; an empty control means no state at all).
//! - An admitted request is *installed*: one compare-and-swap of the control, from the word
//!   the decision read to one naming the request (its sequence, time and cost). That swap is
//!   where it takes effect.
//! - It is then *applied* to each rate's word: the author swaps each word from the value it
//!   read to the new state it computed, stamped with the request's sequence. Anyone who finds
//!   a word not applied yet (the author was killed, or is slow) applies it too: the new state
//!   is a pure step of the old one, so every helper writes the same value, and the swap from
//!   the old value lets one write land. Nobody waits on anybody.
//!
//! Membership (which key holds a slot) is the table's protocol, unchanged: it only reads and
//! writes the control. Emptying a control (a new holder, `reset`, `clear`) moves its sequence
//! past any request still being applied, so the old words never pass for the new states.

use std::sync::Arc;

use super::region::Region;
use super::store::{Base, Lifetime};
use super::table::{BucketOf, Held, Lookup, OnFull};
use super::units::{next_seq, rate_word, read_rate_word, Control, SlotCell};
use crate::algorithm::{Algorithm, WordsState};
use crate::decision::Decision;
use crate::store::StoreStats;

/// A key's standing as a decision reads it.
enum View<S, const R: usize, const E: usize> {
    /// The key holds a slot: its control (every rate's words applied), the words as read, and
    /// each rate's state under them.
    Held {
        held: Held,
        control: Control,
        words: [u128; E],
        states: [Option<S>; R],
    },
    /// The key holds no slot; the gate read then.
    Absent { gate: u128 },
}

/// `R` rates of `A` over a table whose slots hold `E` words of state (`R` times the words of
/// a state: 1, or 2 for a sliding window counting past 65,535), `N` slots a bucket after `P`
/// bytes of padding. Rate `i`'s words are `i * W .. (i + 1) * W`.
pub struct RatesStore<A: Algorithm, const R: usize, const E: usize, const N: usize, const P: usize>
{
    rates: [A; R],
    base: Base,
    /// How long after a request its states matter at most: the longest of the rates'. The
    /// control keeps the request's time plus this (every limiter can judge the slot by it),
    /// and a helper takes the request's time back from it.
    bound: u64,
}

type Slots<const E: usize, const N: usize, const P: usize> = BucketOf<Control, E, N, P>;

/// A rate's decision on a request, with its new state when admitted.
type Step<S> = (Decision, Option<S>);

/// The state words `words` give rate `rate` (each `W` long).
#[inline(always)]
fn state_words<const E: usize>(words: &[u128; E], rate: usize, w: usize) -> [[u32; 3]; 2] {
    let mut out = [[0; 3]; 2];
    for (j, slot) in out.iter_mut().enumerate().take(w) {
        *slot = read_rate_word(words[rate * w + j]).1;
    }
    out
}

impl<A, const R: usize, const E: usize, const N: usize, const P: usize> RatesStore<A, R, E, N, P>
where
    A: Algorithm + Lifetime,
    A::State: WordsState,
{
    /// The words of one rate's state.
    const W: usize = <A::State as WordsState>::WORDS;

    /// A store of `rates` (exactly `R`, each admitting costs of at most `u32::MAX`) in
    /// `region`, a table made for `R` rates.
    pub fn new(rates: Vec<A>, settings: &str, region: Arc<Region>, on_full: OnFull) -> Self {
        let bound = rates.iter().map(Lifetime::bound_ns).max().unwrap_or(0);
        assert_eq!(E, R * Self::W, "a RatesStore's slots hold its rates' words");
        let Ok(rates) = <[A; R]>::try_from(rates) else {
            panic!("a RatesStore<_, {R}, ..> is given {R} rates");
        };
        RatesStore {
            rates,
            base: Base::new(settings, region, on_full),
            bound,
        }
    }

    #[inline(always)]
    fn bucket(&self, tag: u64) -> &Slots<E, N, P> {
        self.base.table().bucket(tag)
    }

    /// Reads `tag`'s control and states consistently, applying first a request not applied
    /// to every rate yet.
    #[inline]
    fn view(&self, bucket: &Slots<E, N, P>, tag: u64, now: u64) -> View<A::State, R, E> {
        loop {
            let (held, control) = match bucket.lookup(tag, now) {
                Lookup::Absent { gate } => return View::Absent { gate },
                Lookup::Held { held, cell } => (held, cell),
            };
            let words: [u128; E] = std::array::from_fn(|i| bucket.word(held, i).load());
            let present = control.is_present();
            if present && words.iter().any(|w| read_rate_word(*w).0 != control.seq()) {
                self.apply(bucket, held, control);
                continue;
            }
            if bucket.cell(held) != control {
                continue;
            }
            let states = std::array::from_fn(|i| {
                present.then(|| A::State::from_words(&state_words(&words, i, Self::W), 0))
            });
            return View::Held {
                held,
                control,
                words,
                states,
            };
        }
    }

    /// Applies the installed request `request` to each word that does not carry its sequence
    /// yet, a rate's words in order. Anyone may, any number of times: every helper computes
    /// the same new word from the old ones (word `j` of a rate from its words `j..`, which
    /// are still old while word `j` is: they are written after it).
    fn apply(&self, bucket: &Slots<E, N, P>, held: Held, request: Control) {
        let seq = request.seq();
        let now = request.expires_at() - self.bound;
        let cost = u64::from(request.cost());
        for (i, rate) in self.rates.iter().enumerate() {
            for j in 0..Self::W {
                let word = bucket.word(held, i * Self::W + j);
                loop {
                    let current = word.load();
                    let (stamp, _) = read_rate_word(current);
                    if stamp == seq {
                        break;
                    }
                    // Read while the request was still the key's last: a helper that read the
                    // control long ago must not write over a later request's state (from
                    // here, a later request changes the word first, and the swap fails).
                    if bucket.cell(held) != request {
                        return;
                    }
                    let mut olds = [0u128; E];
                    olds[i * Self::W + j] = current;
                    let mut later_applied = false;
                    for k in j + 1..Self::W {
                        olds[i * Self::W + k] = bucket.word(held, i * Self::W + k).load();
                        later_applied |= read_rate_word(olds[i * Self::W + k]).0 == seq;
                    }
                    if later_applied {
                        // then this word was applied too: look again
                        continue;
                    }
                    // The request was installed over a control whose words all carried the
                    // sequence before it, or over an empty one (then no word does).
                    let old = (next_seq(stamp) == seq)
                        .then(|| A::State::from_words(&state_words(&olds, i, Self::W), j));
                    let Some(next) = rate.decide(old, now, cost).1 else {
                        return;
                    };
                    if word.swap(current, rate_word(seq, next.to_words()[j])) {
                        break;
                    }
                }
            }
        }
    }

    /// Decides on `cost` for `key` at `now`, consuming from every rate when all admit.
    pub fn decide(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        let tag = self.base.tag(key);
        let bucket = self.bucket(tag);
        loop {
            match self.view(bucket, tag, now) {
                View::Held {
                    held,
                    control,
                    words,
                    states,
                } => {
                    let (decision, steps) = self.steps(&states, now, cost);
                    if !decision.allowed {
                        self.base.record(&decision);
                        return decision;
                    }
                    // Admitted, so the cost is at most every rate's largest (a u32).
                    let seq = next_seq(control.seq());
                    let request =
                        Control::request(held.ident.version, seq, now + self.bound, cost as u32);
                    if bucket.update(held, control, request) {
                        // Each word from the value read to the state computed, in order: a swap
                        // that fails found the word applied by a helper (or the key gone).
                        for (i, (_, next)) in steps.iter().enumerate() {
                            if let Some(next) = next {
                                for (j, new) in next.to_words().iter().take(Self::W).enumerate() {
                                    let at = i * Self::W + j;
                                    bucket.word(held, at).swap(words[at], rate_word(seq, *new));
                                }
                            }
                        }
                        self.base.record(&decision);
                        return decision;
                    }
                }
                View::Absent { gate } => {
                    let decision = self.evaluate(&[None; R], now, cost);
                    if !decision.allowed {
                        self.base.record(&decision);
                        return decision;
                    }
                    if let Some(full) = self.base.claim(bucket, tag, gate, now, self.primary()) {
                        return full;
                    }
                }
            }
        }
    }

    /// Each rate's step on `cost` at `now` from its state, and the decision: the most
    /// restrictive of theirs (admitted when every rate admits, and then each step has the
    /// rate's new state).
    #[inline]
    fn steps(
        &self,
        states: &[Option<A::State>; R],
        now: u64,
        cost: u64,
    ) -> (Decision, [Step<A::State>; R]) {
        let steps: [_; R] = std::array::from_fn(|i| self.rates[i].decide(states[i], now, cost));
        let decision = steps
            .iter()
            .map(|(decision, _)| *decision)
            .reduce(Decision::most_restrictive)
            .expect("a RatesStore has rates");
        (decision, steps)
    }

    /// The decision on `cost` at `now` from the rates' states.
    fn evaluate(&self, states: &[Option<A::State>; R], now: u64, cost: u64) -> Decision {
        self.steps(states, now, cost).0
    }

    fn primary(&self) -> crate::rate::Rate {
        self.rates[0].rate()
    }

    /// The key's states at `now` (None for a rate without one).
    fn states(&self, key: &[u8], now: u64) -> [Option<A::State>; R] {
        let tag = self.base.tag(key);
        match self.view(self.bucket(tag), tag, now) {
            View::Held { states, .. } => states,
            View::Absent { .. } => [None; R],
        }
    }

    /// The key's standing at `now`, consuming nothing: the most restrictive of the rates'.
    pub fn peek(&self, key: &[u8], now: u64) -> Decision {
        let states = self.states(key, now);
        self.rates
            .iter()
            .zip(states)
            .map(|(rate, state)| rate.peek(state, now))
            .reduce(Decision::most_restrictive)
            .expect("a RatesStore has rates")
    }

    /// The decision [`Self::decide`] would make now, changing nothing and counted nowhere.
    pub fn preview(&self, key: &[u8], cost: u64, now: u64) -> Decision {
        let tag = self.base.tag(key);
        let bucket = self.bucket(tag);
        match self.view(bucket, tag, now) {
            View::Held { states, .. } => self.evaluate(&states, now, cost),
            View::Absent { .. } => {
                let decision = self.evaluate(&[None; R], now, cost);
                if !decision.allowed {
                    return decision;
                }
                self.base
                    .preview_full(bucket, now, self.primary())
                    .unwrap_or(decision)
            }
        }
    }

    /// Forgets `key`'s states: true when it had a live one.
    pub fn reset(&self, key: &[u8], now: u64) -> bool {
        let tag = self.base.tag(key);
        self.bucket(tag).reset(tag, now)
    }

    /// Forgets every state in the table (of every limiter of `R` rates sharing it).
    pub fn clear(&self, now: u64) {
        self.base.clear::<Control, E, N, P>(now);
    }

    pub fn stats(&self, now: u64) -> StoreStats {
        self.base.stats::<Control, E, N, P>(now)
    }

    /// Checks every bucket's invariants (see [`BucketOf::check`]).
    pub fn check_table(&self, now: u64) -> Result<(), String> {
        self.base.check_table::<Control, E, N, P>(now)
    }
}

#[cfg(test)]
#[path = "rates_tests.rs"]
mod tests;
