//! The gradient limit: scale the limit by how far latency has drifted from its no-load value.
//!
//! Once per window (at least `window_samples` samples and one round trip, see `window.rs`) with
//! mean round trip `R`, no-load round trip `R0` and limit `n`:
//!
//! ```text
//! g      = clamp(tolerance * R0 / R, 0.5, 1)     (0.5 when a request of the window was dropped)
//! target = g * n + (g == 1 ? min(sqrt(n), growth * n) : 0)
//! n'     = (1 - smoothing) * n + smoothing * target
//! ```
//!
//! and `n'` is capped at `n` when no sample of the window found half the limit in use. While
//! `R <= tolerance * R0` the gradient is 1 and the limit grows by the headroom (2% a window for
//! the defaults, less above a limit of 100); past it the limit shrinks in proportion to the
//! excess, by at most 10% a window (half, smoothed), so one slow window cannot collapse it.
//! With `C` workers and saturated arrivals `R = R0 * n / C`, so the limit settles at
//! `n = tolerance * C` (1.25 C for the defaults), latency at `tolerance * R0`.
//!
//! This is Netflix's Gradient2 formula (gradient clamped to `[0.5, 1]`, an additive allowance,
//! smoothing) measured against a no-load round trip, as Envoy's gradient controller does,
//! rather than against a long-term average that drifts up with a sustained queue. The
//! allowance is only added while latency is within the tolerance (Gradient2 and Envoy always
//! add theirs, which moves the fixed point to `tolerance * C + allowance`: with Envoy's
//! `sqrt(n)`, a third more queue at `n = 8`), and it grows with the limit (Gradient2's constant 4
//! would take hundreds of windows to climb from 20 to several hundred).

use super::window::WindowSummary;
use super::{busy, AdaptiveConfig};

/// The new estimate after a closed window (the caller bounds it).
pub(super) fn step(
    config: &AdaptiveConfig,
    estimate: f64,
    limit: u32,
    window: &WindowSummary,
    no_load_ns: u64,
) -> f64 {
    let gradient = match window.mean_rtt_ns {
        _ if window.dropped => 0.5,
        // Both are at least 1 ns, so the ratio is finite.
        Some(recent) => (config.tolerance * no_load_ns as f64 / recent as f64).clamp(0.5, 1.0),
        None => 1.0,
    };
    let headroom = if gradient >= 1.0 {
        estimate.sqrt().min(config.growth * estimate)
    } else {
        0.0
    };
    let target = gradient * estimate + headroom;
    let next = (1.0 - config.smoothing) * estimate + config.smoothing * target;
    if busy(window.max_in_flight, limit) {
        next
    } else {
        next.min(estimate)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{AdaptiveConfig, AdaptiveKind, AdaptiveLimit, Sample};

    const MS: u64 = 1_000_000;

    fn limiter(initial: u32) -> AdaptiveLimit {
        let mut config = AdaptiveConfig::new(AdaptiveKind::Gradient);
        config.initial_limit = initial;
        AdaptiveLimit::new(config).unwrap()
    }

    /// A limiter that has learnt a no-load round trip of 10 ms (one clean window).
    fn learnt(initial: u32) -> (AdaptiveLimit, u64) {
        let mut limit = limiter(initial);
        assert_eq!(limit.limit(), 3.min(initial), "held at the probe limit");
        let mut now = 0;
        feed(&mut limit, &mut now, 1, 10 * MS, 1);
        assert_eq!(limit.no_load_rtt_ns(), Some(10 * MS));
        // It leaves the probe at twice what was used (one in flight), at least the probe limit.
        assert_eq!(limit.limit(), initial.min(3));
        // The tests below start from a learnt limit of `initial`, as after busy windows.
        limit.estimate = f64::from(initial);
        assert_eq!(limit.limit(), initial);
        (limit, now)
    }

    /// Feeds `rounds` windows of 10 samples, each spanning two round trips.
    fn feed(limit: &mut AdaptiveLimit, now: &mut u64, rounds: u32, rtt: u64, in_flight: u32) {
        for _ in 0..rounds * 10 {
            *now += rtt / 5 + 1;
            limit.on_sample(Sample {
                now_ns: *now,
                rtt_ns: rtt,
                in_flight,
                dropped: false,
            });
        }
    }

    #[test]
    fn grows_while_latency_stays_at_no_load_and_busy() {
        let (mut limit, mut now) = learnt(20);
        feed(&mut limit, &mut now, 30, 10 * MS, 1000);
        assert!(limit.limit() > 25, "{}", limit.limit());
        feed(&mut limit, &mut now, 1000, 10 * MS, 1000);
        assert_eq!(limit.limit(), 1000, "up to max_limit");
    }

    #[test]
    fn never_grows_while_under_half_used() {
        let (mut limit, mut now) = learnt(40);
        for _ in 0..200 {
            feed(&mut limit, &mut now, 1, 10 * MS, 19);
            assert!(limit.limit() <= 40);
        }
        assert_eq!(limit.limit(), 40);
    }

    #[test]
    fn shrinks_when_latency_climbs_and_not_below_half_a_window() {
        let (mut limit, mut now) = learnt(100);
        let before = limit.limit();
        feed(&mut limit, &mut now, 1, 100 * MS, 100);
        let after = limit.limit();
        assert!(after < before, "{before} -> {after}");
        // The gradient is floored at 0.5: one window costs at most 10% (smoothing 0.2).
        assert!(
            f64::from(after) >= 0.89 * f64::from(before),
            "{before} -> {after}"
        );
        feed(&mut limit, &mut now, 40, 100 * MS, 100);
        assert!(limit.limit() < 10, "{}", limit.limit());
    }

    #[test]
    fn latency_within_tolerance_is_not_a_reason_to_cut() {
        let (mut limit, mut now) = learnt(100);
        feed(&mut limit, &mut now, 10, 12 * MS, 100);
        assert!(limit.limit() > 100, "{}", limit.limit());
        // Past it, the limit shrinks.
        feed(&mut limit, &mut now, 10, 14 * MS, 100);
        assert!(limit.limit() < 100, "{}", limit.limit());
    }

    #[test]
    fn a_dropped_request_cuts_the_limit() {
        let (mut limit, mut now) = learnt(100);
        let before = limit.limit();
        for i in 0..10 {
            now += 2 * MS;
            limit.on_sample(Sample {
                now_ns: now,
                rtt_ns: 10 * MS,
                in_flight: 100,
                dropped: i == 3,
            });
        }
        assert!(limit.limit() < before, "{before} -> {}", limit.limit());
    }

    #[test]
    fn relearns_the_no_load_latency_at_the_floor() {
        // The service becomes 4 times slower for good: the limit falls to the floor, the floor
        // window shows that the latency is not a queue of ours, and the limit grows again.
        let (mut limit, mut now) = learnt(50);
        let mut lowest = u32::MAX;
        for _ in 0..400 {
            let in_flight = limit.limit();
            feed(&mut limit, &mut now, 1, 40 * MS, in_flight);
            lowest = lowest.min(limit.limit());
        }
        assert!(lowest <= 3, "{lowest}");
        let no_load = limit.no_load_rtt_ns().unwrap();
        assert!(no_load.abs_diff(40 * MS) < 2 * MS, "{no_load}");
        assert!(limit.limit() > 20, "{}", limit.limit());
    }
}
