//! Nanosecond time for the limiters.
//!
//! Production reads a monotonic clock (quanta: TSC-backed where available, immune to
//! wall-clock jumps). Tests use [`ManualClock`], which only moves when told to, so no test
//! ever sleeps to cross a window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// A source of nanoseconds since an arbitrary origin; never goes backwards.
#[derive(Clone, Debug)]
pub enum Clock {
    Monotonic(MonotonicClock),
    Manual(ManualClock),
}

impl Clock {
    pub fn monotonic() -> Self {
        Clock::Monotonic(MonotonicClock::new())
    }

    #[inline]
    pub fn now_ns(&self) -> u64 {
        match self {
            Clock::Monotonic(clock) => clock.now_ns(),
            Clock::Manual(clock) => clock.now_ns(),
        }
    }
}

/// quanta's clock, measured from the moment this value was created.
#[derive(Clone, Debug)]
pub struct MonotonicClock {
    clock: quanta::Clock,
    origin: u64,
}

impl MonotonicClock {
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        MonotonicClock { clock, origin }
    }

    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.clock.delta_as_nanos(self.origin, self.clock.raw())
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

/// A clock that stands still until [`ManualClock::advance_ns`] moves it. Cloning shares the time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    pub fn new(start_ns: u64) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(start_ns)),
        }
    }

    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    /// Moves the clock forward, saturating at `u64::MAX`.
    pub fn advance_ns(&self, delta: u64) {
        let _ = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                Some(now.saturating_add(delta))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_time() {
        let clock = ManualClock::new(5);
        let shared = Clock::Manual(clock.clone());
        assert_eq!(shared.now_ns(), 5);
        clock.advance_ns(10);
        assert_eq!(shared.now_ns(), 15);
        clock.advance_ns(u64::MAX);
        assert_eq!(shared.now_ns(), u64::MAX);
    }

    #[test]
    fn monotonic_clock_never_goes_backwards() {
        let clock = Clock::monotonic();
        let mut last = clock.now_ns();
        for _ in 0..10_000 {
            let now = clock.now_ns();
            assert!(now >= last);
            last = now;
        }
    }
}
