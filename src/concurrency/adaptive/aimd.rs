//! AIMD: additive increase while requests come back in time, multiplicative decrease when not.
//!
//! With limit `n`, no-load round trip `R0` and windows as in `window.rs` (at least
//! `window_samples` samples and one round trip), a window is late when one of its requests was
//! dropped or its mean round trip exceeds `tolerance * R0`. Then:
//!
//! ```text
//! late window:                                                  n' = backoff * n
//! window in time, the busiest request saw 2 * in_flight >= n:   n' = n + increase
//! before the first cut, each busy request back within the bar:  n' = n + 1        (slow start)
//! ```
//!
//! A window lasts at least one round trip, so the limit is cut at most once a round trip (as
//! TCP cuts its window). Lateness is judged on the window mean, not on single requests: a
//! request that is slow by itself (the natural spread of service times) is not a queue.
//!
//! With `C` workers and saturated arrivals `R = R0 * n / C`, so windows turn late when `n`
//! passes `tolerance * C`: the limit saw-tooths between about `backoff * tolerance * C` and
//! `tolerance * C` (1.1 C to 1.25 C for the defaults), latency with it.
//!
//! Netflix's AIMD limit adds one per request and cuts on each drop or on a fixed timeout; here
//! the growth is `increase` a window once the limit has found its level, and lateness is
//! measured against the learnt no-load latency, so no timeout has to be guessed.

use super::window::WindowSummary;
use super::{busy, AdaptiveConfig, Sample};

#[derive(Clone, Debug, Default)]
pub(super) struct Aimd {
    /// Whether the limit has been cut yet (before that: slow start).
    cut: bool,
}

impl Aimd {
    /// The new estimate after `sample`, which may have closed `window` (the caller bounds it).
    pub fn step(
        &mut self,
        config: &AdaptiveConfig,
        estimate: f64,
        limit: u32,
        sample: &Sample,
        window: Option<&WindowSummary>,
        no_load_ns: u64,
    ) -> f64 {
        let bar = config.tolerance * no_load_ns as f64;
        let Some(window) = window else {
            // Slow start: one more for each busy request back in time.
            let in_time = !sample.dropped && sample.rtt_ns as f64 <= bar;
            if !self.cut && in_time && busy(sample.in_flight, limit) {
                return estimate + 1.0;
            }
            return estimate;
        };
        let late = window.dropped || window.mean_rtt_ns.is_some_and(|mean| mean as f64 > bar);
        if late {
            self.cut = true;
            return estimate * config.backoff;
        }
        if !busy(window.max_in_flight, limit) {
            return estimate;
        }
        if self.cut {
            estimate + config.increase
        } else {
            estimate + 1.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AdaptiveConfig, AdaptiveKind, AdaptiveLimit, Sample};

    const MS: u64 = 1_000_000;

    fn limiter(initial: u32) -> AdaptiveLimit {
        let mut config = AdaptiveConfig::new(AdaptiveKind::Aimd);
        config.initial_limit = initial;
        AdaptiveLimit::new(config).unwrap()
    }

    fn sample(now_ns: u64, rtt_ns: u64, in_flight: u32) -> Sample {
        Sample {
            now_ns,
            rtt_ns,
            in_flight,
            dropped: false,
        }
    }

    /// A first (clean) window at 10 ms teaches the no-load latency.
    fn learnt(initial: u32) -> (AdaptiveLimit, u64) {
        let mut limit = limiter(initial);
        assert_eq!(limit.limit(), 3.min(initial), "held at the probe limit");
        let mut now = 0;
        for _ in 0..10 {
            now += 2 * MS;
            limit.on_sample(sample(now, 10 * MS, 1));
        }
        assert_eq!(limit.no_load_rtt_ns(), Some(10 * MS));
        // It leaves the probe at twice what was used (one in flight), at least the probe limit.
        assert_eq!(limit.limit(), initial.min(3));
        // The tests below start from a learnt limit of `initial`, as after busy windows.
        limit.estimate = f64::from(initial);
        assert_eq!(limit.limit(), initial);
        (limit, now)
    }

    /// Feeds one window of 10 samples spanning two round trips; returns the limit after it.
    fn window(limit: &mut AdaptiveLimit, now: &mut u64, rtt: u64, in_flight: u32) -> u32 {
        for _ in 0..10 {
            *now += rtt / 5;
            limit.on_sample(sample(*now, rtt, in_flight));
        }
        limit.limit()
    }

    #[test]
    fn slow_start_adds_one_a_request_then_increase_a_window() {
        let (mut limit, mut now) = learnt(20);
        // In time and busy: one more each.
        assert_eq!(window(&mut limit, &mut now, 10 * MS, 20), 30);
        // A late window ends slow start: 30 * 0.9 = 27.
        assert_eq!(window(&mut limit, &mut now, 20 * MS, 30), 27);
        // Then half a request a window in time.
        assert_eq!(window(&mut limit, &mut now, 10 * MS, 27), 27);
        assert_eq!(window(&mut limit, &mut now, 10 * MS, 27), 28);
    }

    #[test]
    fn never_grows_while_under_half_used() {
        let (mut limit, mut now) = learnt(40);
        for _ in 0..1000 {
            assert_eq!(window(&mut limit, &mut now, 10 * MS, 19), 40);
        }
    }

    #[test]
    fn a_drop_cuts_by_backoff() {
        let (mut limit, mut now) = learnt(100);
        for i in 0..10 {
            now += 2 * MS;
            limit.on_sample(Sample {
                now_ns: now,
                rtt_ns: MS,
                in_flight: 10,
                dropped: i == 9,
            });
        }
        assert_eq!(limit.limit(), 90);
    }

    #[test]
    fn late_windows_cut_once_each() {
        let (mut limit, mut now) = learnt(100);
        assert_eq!(window(&mut limit, &mut now, 30 * MS, 100), 90);
        assert_eq!(window(&mut limit, &mut now, 30 * MS, 90), 81);
        let mut lowest = 81;
        for _ in 0..100 {
            lowest = lowest.min(window(&mut limit, &mut now, 30 * MS, 90));
        }
        assert_eq!(lowest, 1, "down to min_limit");
    }

    #[test]
    fn a_slow_request_alone_is_not_late() {
        let (mut limit, mut now) = learnt(100);
        for i in 0..10 {
            now += 2 * MS;
            let rtt = if i == 0 { 20 * MS } else { 10 * MS };
            limit.on_sample(sample(now, rtt, 100));
        }
        assert!(limit.limit() >= 100, "{}", limit.limit());
    }

    #[test]
    fn latency_within_tolerance_is_in_time() {
        let (mut limit, mut now) = learnt(100);
        for _ in 0..10 {
            window(&mut limit, &mut now, 12 * MS, 100);
        }
        assert!(limit.limit() > 100, "{}", limit.limit());
    }
}
