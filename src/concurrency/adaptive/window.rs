//! The measurements both algorithms share: a round-trip window of samples and the no-load latency.
//!
//! A [`Window`] gathers samples until it holds at least `window_samples` of them and either spans
//! its own mean round trip (`now - start >= mean rtt`) or holds `limit` samples (one round of the
//! permits, so a clock that stands still or goes backwards cannot stall it). It then yields the
//! mean round trip of its samples that were not dropped, the most permits any of them saw, and
//! whether any was dropped.
//!
//! The no-load latency `R0` ([`NoLoad`]) is first the mean of a clean window, one whose every
//! sample started with at most `probe_limit` permits held (3 by default: no queue of ours can
//! form); until then the limit is held at the probe limit (see `mod.rs`). After that each
//! window moves it a quarter of the way to its mean, `R0 += (mean - R0) / 4`, when the mean is
//! lower (the service got faster) or the window is clean. A clean window is the only way up:
//! at low load, or when latency has pushed the limit down to the probe limit, where cutting it
//! further cannot be the answer (Envoy re-measures its minimum round trip when its limit sits at
//! its floor too): a service that became 4 times slower is re-learnt within 5 windows there.
//! Window means rather than single samples, and a quarter step rather than a minimum, so that
//! neither a lucky fast request nor a window that closed on the fast half of a wave of requests
//! sets the bar for all the others.

/// Samples of one round trip.
#[derive(Clone, Debug, Default)]
pub(super) struct Window {
    start_ns: u64,
    count: u32,
    timed: u32,
    sum_rtt_ns: u128,
    max_in_flight: u32,
    dropped: bool,
}

/// What a closed window saw.
#[derive(Clone, Copy, Debug)]
pub(super) struct WindowSummary {
    /// Mean round trip of the samples not dropped, at least 1 ns; `None` when all were dropped.
    pub mean_rtt_ns: Option<u64>,
    pub max_in_flight: u32,
    pub dropped: bool,
}

impl Window {
    /// Adds a sample; returns the summary when this sample closes the window.
    pub fn add(
        &mut self,
        sample: &super::Sample,
        window_samples: u32,
        limit: u32,
    ) -> Option<WindowSummary> {
        if self.count == 0 {
            self.start_ns = sample.now_ns;
        }
        self.count = self.count.saturating_add(1);
        self.max_in_flight = self.max_in_flight.max(sample.in_flight);
        if sample.dropped {
            self.dropped = true;
        } else {
            self.timed = self.timed.saturating_add(1);
            self.sum_rtt_ns += u128::from(sample.rtt_ns);
        }
        if self.count < window_samples {
            return None;
        }
        let mean = self.mean();
        let elapsed = sample.now_ns.saturating_sub(self.start_ns);
        let spans_round_trip = elapsed >= mean.unwrap_or(0);
        if !spans_round_trip && self.count < limit {
            return None;
        }
        let summary = WindowSummary {
            mean_rtt_ns: mean,
            max_in_flight: self.max_in_flight,
            dropped: self.dropped,
        };
        *self = Window::default();
        Some(summary)
    }

    fn mean(&self) -> Option<u64> {
        if self.timed == 0 {
            return None;
        }
        // The mean of u64 values fits a u64.
        let mean = self.sum_rtt_ns / u128::from(self.timed);
        Some((mean as u64).max(1))
    }
}

/// The no-load round trip `R0`, in nanoseconds (0 until the first window).
#[derive(Clone, Debug, Default)]
pub(super) struct NoLoad {
    rtt_ns: u64,
}

impl NoLoad {
    /// `None` until a window with timed samples has closed.
    pub fn rtt_ns(&self) -> Option<u64> {
        (self.rtt_ns > 0).then_some(self.rtt_ns)
    }

    /// Takes a closed window into account. `clean`: every sample of the window started with
    /// at most `probe_limit` permits held.
    pub fn observe(&mut self, window: &WindowSummary, clean: bool) {
        let Some(mean) = window.mean_rtt_ns else {
            return;
        };
        if self.rtt_ns == 0 {
            if clean {
                self.rtt_ns = mean;
            }
        } else if clean || mean < self.rtt_ns {
            // A quarter of the way: one window cut short in the middle of a wave of requests
            // (its fast ones only) must not set the bar; a lasting change gets there in a few.
            let step = (i128::from(mean) - i128::from(self.rtt_ns)) / 4;
            self.rtt_ns = (i128::from(self.rtt_ns) + step).max(1) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AdaptiveConfig, AdaptiveKind, AdaptiveLimit, Sample};

    const MS: u64 = 1_000_000;

    fn window(limit: &mut AdaptiveLimit, now: &mut u64, rtt: u64, in_flight: u32) {
        for _ in 0..10 {
            *now += rtt / 5;
            limit.on_sample(Sample {
                now_ns: *now,
                rtt_ns: rtt,
                in_flight,
                dropped: false,
            });
        }
    }

    #[test]
    fn the_no_load_latency_moves_a_quarter_of_the_way_per_window() {
        for kind in AdaptiveKind::ALL {
            let mut limit = AdaptiveLimit::new(AdaptiveConfig::new(kind)).unwrap();
            let mut now = 0;
            window(&mut limit, &mut now, 10 * MS, 3);
            assert_eq!(
                limit.no_load_rtt_ns(),
                Some(10 * MS),
                "the first clean window"
            );
            // Slower windows with more in flight are a queue: no change.
            window(&mut limit, &mut now, 30 * MS, 10);
            assert_eq!(limit.no_load_rtt_ns(), Some(10 * MS));
            // One fast window (a wave's fast half) moves it a quarter of the way...
            window(&mut limit, &mut now, 6 * MS, 10);
            assert_eq!(limit.no_load_rtt_ns(), Some(9 * MS));
            // ...a lasting change most of the way within 9 windows.
            for _ in 0..8 {
                window(&mut limit, &mut now, 6 * MS, 10);
            }
            let no_load = limit.no_load_rtt_ns().unwrap();
            assert!(no_load < 6 * MS + MS / 2, "{no_load}");
            // Up again only through clean windows (3 in flight or fewer).
            window(&mut limit, &mut now, 10 * MS, 3);
            assert!(limit.no_load_rtt_ns().unwrap() > no_load);
        }
    }
}
