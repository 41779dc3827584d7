//! The answer to one rate-limit check.

/// `retry_after_ns` of a request that can never be admitted (its cost exceeds the capacity).
pub const NEVER: u64 = u64::MAX;

/// What a store answers for one `(key, cost)` at one instant. Times are nanoseconds of the
/// limiter's [`Clock`](crate::Clock), counted from the decision.
///
/// With several rates, the decision reported is that of the most restrictive rate (a denial
/// over an admission, then the longest wait, then the fewest remaining).
///
/// ```
/// use rust_py_rate_limit::{parse_rates, AlgorithmKind, Clock, Limiter, LimiterConfig, ManualClock};
///
/// let clock = ManualClock::new(0);
/// let config = LimiterConfig::new(parse_rates("2/minute")?, AlgorithmKind::Fixed);
/// let limiter = Limiter::new(config, Clock::Manual(clock.clone()))?;
/// let d = limiter.decide("k", 2); // the key's first request opens its window
/// assert!(d.allowed);
/// assert_eq!((d.limit, d.remaining), (2, 0));
/// assert_eq!(d.reset_after_ns, 60_000_000_000);
/// assert_eq!(d.retry_after_ns, 0);
/// clock.advance_ns(15_000_000_000)?; // 15 s into the window
/// let d = limiter.decide("k", 1);
/// assert!(!d.allowed);
/// assert_eq!(d.retry_after_ns, 45_000_000_000);
/// // A cost above the limit can never pass: the wait says so.
/// assert_eq!(limiter.decide("k", 3).retry_after_ns, rust_py_rate_limit::decision::NEVER);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decision {
    /// Whether the request is admitted (and, for a decision that consumes, counted).
    pub allowed: bool,
    /// The configured number of requests per window of the rate that decided.
    pub limit: u64,
    /// Requests of cost 1 that would still be admitted right now (after this one, if admitted).
    pub remaining: u64,
    /// Nanoseconds until the key is back to its full capacity.
    pub reset_after_ns: u64,
    /// Nanoseconds until the same request would be admitted; 0 when admitted, [`NEVER`] when
    /// the cost exceeds the capacity.
    pub retry_after_ns: u64,
}

/// What a call asks of a store about one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ask {
    /// Decide on the cost, consuming it when admitted (`allow`, `check`, `decide`); counted in
    /// the statistics.
    Decide(u64),
    /// The decision `Decide` would make at this instant, consuming nothing and counted
    /// nowhere (`peek`).
    Preview(u64),
    /// The key's standing: what a request of cost 0 would see (`remaining`).
    Standing,
}

impl Decision {
    /// The refusal of a new key for lack of room (`on_full="reject"`), under `rate`: nothing
    /// remaining, retry after the window.
    pub fn no_room(rate: crate::rate::Rate) -> Decision {
        Decision {
            allowed: false,
            limit: rate.limit,
            remaining: 0,
            reset_after_ns: rate.period_ns,
            retry_after_ns: rate.period_ns,
        }
    }

    /// Of two decisions on the same request under different rates, the one to report:
    /// a denial over an admission, the longer wait among denials, the fewer remaining
    /// among admissions (then the longer `reset_after`). On an exact tie `self` wins, so
    /// folding over the rates in order reports the first of the tied rates.
    pub fn most_restrictive(self, other: Decision) -> Decision {
        match (self.allowed, other.allowed) {
            (true, false) => other,
            (false, true) => self,
            (false, false) => {
                if other.retry_after_ns > self.retry_after_ns {
                    other
                } else {
                    self
                }
            }
            (true, true) => {
                if (other.remaining, std::cmp::Reverse(other.reset_after_ns))
                    < (self.remaining, std::cmp::Reverse(self.reset_after_ns))
                {
                    other
                } else {
                    self
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(allowed: bool, remaining: u64, reset: u64, retry: u64) -> Decision {
        Decision {
            allowed,
            limit: 10,
            remaining,
            reset_after_ns: reset,
            retry_after_ns: retry,
        }
    }

    #[test]
    fn denial_wins_and_longest_wait_wins_among_denials() {
        let ok = d(true, 5, 1, 0);
        let short = d(false, 0, 1, 10);
        let long = d(false, 0, 1, 20);
        assert_eq!(ok.most_restrictive(short), short);
        assert_eq!(short.most_restrictive(ok), short);
        assert_eq!(short.most_restrictive(long), long);
        assert_eq!(long.most_restrictive(short), long);
    }

    #[test]
    fn fewest_remaining_wins_among_admissions() {
        let many = d(true, 5, 100, 0);
        let few = d(true, 1, 10, 0);
        assert_eq!(many.most_restrictive(few), few);
        assert_eq!(few.most_restrictive(many), few);
    }
}
