//! `local_deny_cache`: a key Redis refused is answered "refused" in process until the time
//! Redis gave for a retry, so one client hammering a spent key costs no round trips.

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::decision::{Decision, NEVER};

/// Entries kept at most; when full, expired ones are dropped, and if none has expired a new
/// refusal is simply not cached (it is still answered, by Redis).
const MAX_ENTRIES: usize = 65_536;

#[derive(Default)]
pub struct DenyCache {
    /// key -> (refused until, the refusal as Redis made it, when it was made), in the
    /// backend clock's nanoseconds.
    refused: Mutex<HashMap<Vec<u8>, (u64, Decision, u64)>>,
}

impl DenyCache {
    /// The refusal for `key` at `now` if Redis refused it and its retry time has not come.
    pub fn check(&self, key: &[u8], now: u64) -> Option<Decision> {
        let mut refused = self.refused.lock();
        let &(until, decision, at) = refused.get(key)?;
        if now >= until {
            refused.remove(key);
            return None;
        }
        let elapsed = now - at;
        Some(Decision {
            retry_after_ns: until - now,
            reset_after_ns: decision.reset_after_ns.saturating_sub(elapsed),
            ..decision
        })
    }

    /// Remembers a refusal Redis made at `now` (one that can never pass is not cached: its
    /// retry time is unbounded, and a cheaper request for the key may still pass).
    pub fn remember(&self, key: &[u8], decision: &Decision, now: u64) {
        if decision.allowed || decision.retry_after_ns == NEVER || decision.retry_after_ns == 0 {
            return;
        }
        let until = now.saturating_add(decision.retry_after_ns);
        let mut refused = self.refused.lock();
        if refused.len() >= MAX_ENTRIES {
            refused.retain(|_, &mut (until, _, _)| until > now);
            if refused.len() >= MAX_ENTRIES {
                return;
            }
        }
        refused.insert(key.to_vec(), (until, *decision, now));
    }

    /// Forgets `key` (after `reset`).
    pub fn forget(&self, key: &[u8]) {
        self.refused.lock().remove(key);
    }

    pub fn clear(&self) {
        self.refused.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(retry: u64) -> Decision {
        Decision {
            allowed: false,
            limit: 5,
            remaining: 0,
            reset_after_ns: 100,
            retry_after_ns: retry,
        }
    }

    #[test]
    fn a_refusal_holds_until_its_retry_time() {
        let cache = DenyCache::default();
        cache.remember(b"k", &refusal(40), 1000);
        let d = cache.check(b"k", 1010).unwrap();
        assert_eq!(
            (d.allowed, d.retry_after_ns, d.reset_after_ns),
            (false, 30, 90)
        );
        assert!(cache.check(b"k", 1040).is_none());
        assert!(
            cache.check(b"k", 1010).is_none(),
            "expired entries are gone"
        );
        assert!(cache.check(b"other", 1010).is_none());
    }

    #[test]
    fn admissions_and_never_passing_requests_are_not_cached() {
        let cache = DenyCache::default();
        cache.remember(
            b"a",
            &Decision {
                allowed: true,
                ..refusal(0)
            },
            0,
        );
        cache.remember(b"n", &refusal(NEVER), 0);
        assert!(cache.check(b"a", 1).is_none() && cache.check(b"n", 1).is_none());
        cache.remember(b"k", &refusal(10), 0);
        cache.forget(b"k");
        assert!(cache.check(b"k", 1).is_none());
    }
}
