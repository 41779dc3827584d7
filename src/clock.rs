//! Nanosecond time for the limiters.
//!
//! Production reads a monotonic clock (quanta: TSC-backed where available, immune to
//! wall-clock jumps). Tests use [`ManualClock`], which only moves when told to, so no test
//! ever sleeps to cross a window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// The latest time a clock may show, and the longest span a limiter handles (a window, or a
/// bucket's `burst * T`): about 146 years, so every sum of a time and a span fits a `u64`.
pub const MAX_NS: u64 = 1 << 62;

/// [`MAX_NS`] in words, for error messages.
pub const MAX_NS_TEXT: &str = "2**62 nanoseconds (about 146 years)";

/// A source of nanoseconds since an arbitrary origin; never goes backwards. A
/// [`Limiter`](crate::Limiter) reads it at every call.
#[derive(Clone, Debug)]
pub enum Clock {
    /// The process's monotonic clock ([`Clock::monotonic`]); for production.
    Monotonic(MonotonicClock),
    /// A clock that moves only when told to; for tests. Keep a clone of the [`ManualClock`] to
    /// advance it.
    Manual(ManualClock),
    /// The clock of a shared-memory region: one calibration every process reads alike.
    #[cfg(unix)]
    Shared(crate::store::shm::clock::SharedClockParams),
}

impl Clock {
    /// A monotonic clock starting at 0 now.
    ///
    /// ```
    /// let clock = rust_py_rate_limit::Clock::monotonic();
    /// let before = clock.now_ns();
    /// std::thread::sleep(std::time::Duration::from_millis(2));
    /// assert!(clock.now_ns() >= before + 2_000_000);
    /// ```
    pub fn monotonic() -> Self {
        Clock::Monotonic(MonotonicClock::new())
    }

    /// Nanoseconds since the clock's origin.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        match self {
            Clock::Monotonic(clock) => clock.now_ns(),
            Clock::Manual(clock) => clock.now_ns(),
            #[cfg(unix)]
            Clock::Shared(clock) => shared_now_ns(clock),
        }
    }
}

/// The shared clock's reading, out of line so that the in-memory `allow()`, which inlines
/// `Clock::now_ns`, stays as small as it was.
#[cfg(unix)]
#[cold]
#[inline(never)]
fn shared_now_ns(clock: &crate::store::shm::clock::SharedClockParams) -> u64 {
    clock.now_ns()
}

/// quanta's clock, measured from the moment this value was created.
#[derive(Clone, Debug)]
pub struct MonotonicClock {
    clock: quanta::Clock,
    origin: u64,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        MonotonicClock { clock, origin }
    }

    /// Nanoseconds since the clock was created.
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

/// Called with the new time after a [`ManualClock`] moves (a concurrency limiter times out its
/// waiters so).
pub type AdvanceListener = dyn Fn(u64) + Send + Sync;

/// A clock that stands still until [`ManualClock::advance_ns`] moves it. Cloning shares the time
/// and the listeners: keep one clone, give another to the limiter.
///
/// ```
/// use rust_py_rate_limit::{Clock, ManualClock};
///
/// let clock = ManualClock::new(1_000);
/// let limiter_clock = Clock::Manual(clock.clone());
/// assert_eq!(limiter_clock.now_ns(), 1_000);
/// assert_eq!(clock.advance_ns(500), Ok(1_500));
/// assert_eq!(limiter_clock.now_ns(), 1_500);
/// // Never past 2**62 ns: refused, the time unchanged.
/// assert!(clock.advance_ns(u64::MAX).is_err());
/// assert_eq!(clock.now_ns(), 1_500);
/// ```
#[derive(Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
    listeners: Arc<parking_lot::Mutex<Vec<Weak<AdvanceListener>>>>,
}

impl std::fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now_ns())
            .finish_non_exhaustive()
    }
}

impl ManualClock {
    /// A clock showing `start_ns` (at most [`MAX_NS`]).
    pub fn new(start_ns: u64) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(start_ns.min(MAX_NS))),
            listeners: Arc::default(),
        }
    }

    /// The time the clock shows, in nanoseconds.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }

    /// Moves the clock forward; refused (leaving the time unchanged) past [`MAX_NS`]. Then
    /// calls every live listener with the new time (outside any lock of the clock's).
    pub fn advance_ns(&self, delta: u64) -> Result<u64, ClockOverflow> {
        let now = self
            .now
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(delta).filter(|&t| t <= MAX_NS)
            })
            .map(|before| before + delta)
            .map_err(|now| ClockOverflow { now, delta })?;
        let listeners: Vec<Arc<AdvanceListener>> = {
            let mut listeners = self.listeners.lock();
            listeners.retain(|listener| listener.strong_count() > 0);
            listeners.iter().filter_map(Weak::upgrade).collect()
        };
        for listener in listeners {
            listener(now);
        }
        Ok(now)
    }

    /// Calls `listener` after each advance, for as long as it lives elsewhere (the clock keeps
    /// only a weak reference, so a listener never keeps its owner alive).
    pub fn subscribe(&self, listener: &Arc<AdvanceListener>) {
        self.listeners.lock().push(Arc::downgrade(listener));
    }
}

/// An advance that would take a [`ManualClock`] past [`MAX_NS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockOverflow {
    /// The time the clock shows (unchanged).
    pub now: u64,
    /// The advance refused.
    pub delta: u64,
}

impl std::error::Error for ClockOverflow {}

impl std::fmt::Display for ClockOverflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "advancing the clock by {} ns from {} ns would pass its end at {MAX_NS_TEXT}",
            self.delta, self.now
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_hear_each_advance_while_they_live() {
        let clock = ManualClock::new(0);
        let heard = Arc::new(AtomicU64::new(0));
        let listener: Arc<AdvanceListener> = {
            let heard = heard.clone();
            Arc::new(move |now| heard.store(now, Ordering::Release))
        };
        clock.clone().subscribe(&listener);
        clock.advance_ns(7).unwrap();
        assert_eq!(heard.load(Ordering::Acquire), 7);
        drop(listener);
        clock.advance_ns(1).unwrap();
        assert_eq!(
            heard.load(Ordering::Acquire),
            7,
            "a dropped listener is not called"
        );
        assert!(clock.listeners.lock().is_empty());
    }

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_time() {
        let clock = ManualClock::new(5);
        let shared = Clock::Manual(clock.clone());
        assert_eq!(shared.now_ns(), 5);
        assert_eq!(clock.advance_ns(10), Ok(15));
        assert_eq!(shared.now_ns(), 15);
        assert!(clock.advance_ns(u64::MAX).is_err());
        assert!(clock.advance_ns(MAX_NS).is_err());
        assert_eq!(
            shared.now_ns(),
            15,
            "a refused advance leaves the time alone"
        );
        assert_eq!(clock.advance_ns(MAX_NS - 15), Ok(MAX_NS));
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
