//! `Histogram`: how long something took, in fixed buckets, recorded lock-free (one atomic
//! add per bucket hit, plus the count and the sum), read as Prometheus reads a histogram:
//! cumulative counts per upper bound, the sum and the count.
//!
//! The bounds are fixed at compile time, one set per kind of duration ([`LATENCY_BOUNDS_NS`]
//! for storage round trips, [`DURATION_BOUNDS_NS`] for waits and leases), so that every
//! process and every limiter reports the same buckets for one metric and their series can be
//! added up.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, nanoseconds: 50 µs to 1 s, about three per decade
/// (a loopback Redis round trip is 36-130 µs here; a slow network one, milliseconds). Above
/// the last, the `+Inf` bucket.
pub const LATENCY_BOUNDS_NS: [u64; 14] = [
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
];

/// Upper bounds of the wait and lease buckets, nanoseconds: 50 µs to 5 minutes, the latency
/// bounds and then 2.5 s, 5 s, 10 s, 30 s, 1, 2 and 5 minutes (a request may hold a
/// concurrency permit, or wait for one, for as long as it takes: a long upload, a report).
pub const DURATION_BOUNDS_NS: [u64; 21] = longer(
    LATENCY_BOUNDS_NS,
    [
        2_500_000_000,
        5_000_000_000,
        10_000_000_000,
        30_000_000_000,
        60_000_000_000,
        120_000_000_000,
        300_000_000_000,
    ],
);

/// The latency bounds followed by `more` (so the two tables share their first buckets and
/// cannot drift apart).
const fn longer(first: [u64; 14], more: [u64; 7]) -> [u64; 21] {
    let mut out = [0; 21];
    let mut i = 0;
    while i < 21 {
        out[i] = if i < 14 { first[i] } else { more[i - 14] };
        i += 1;
    }
    out
}

/// Durations observed, by bucket.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Observations per bucket (not cumulative); the last is above every bound.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

/// The storage latency histogram ([`LATENCY_BOUNDS_NS`]).
impl Default for Histogram {
    fn default() -> Self {
        Histogram::with_bounds(&LATENCY_BOUNDS_NS)
    }
}

/// A histogram read at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `(upper bound ns, observations at or below it)`, cumulative, for each bound; the
    /// `+Inf` bucket is [`Self::count`].
    pub cumulative: Vec<(u64, u64)>,
    pub count: u64,
    pub sum_ns: u64,
}

impl Histogram {
    /// A histogram of `bounds` (nanoseconds, strictly increasing, at least one), plus `+Inf`.
    ///
    /// # Panics
    /// When `bounds` is empty or not strictly increasing: they are constants of this crate.
    pub fn with_bounds(bounds: &'static [u64]) -> Self {
        assert!(
            !bounds.is_empty() && bounds.windows(2).all(|pair| pair[0] < pair[1]),
            "histogram bounds must be strictly increasing: {bounds:?}"
        );
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// The upper bounds of the buckets, nanoseconds (`+Inf` not included).
    pub fn bounds(&self) -> &'static [u64] {
        self.bounds
    }

    /// Records one duration.
    pub fn observe(&self, ns: u64) {
        let at = self
            .bounds
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(self.bounds.len());
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts so far. Taken bucket by bucket while others may record: the count is the
    /// buckets' total, so a reader never sees more observations than buckets, and the sum may
    /// include a duration whose bucket it has not yet counted (or the other way round).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(self.bounds.len());
        for (bucket, &bound) in self.buckets.iter().zip(self.bounds) {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push((bound, running));
        }
        running += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            cumulative,
            count: running,
            sum_ns: self.sum_ns.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_their_bucket_and_read_back_cumulative() {
        let h = Histogram::default();
        for ns in [10, 50_000, 50_001, 700_000, 2_000_000_000] {
            h.observe(ns);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.sum_ns, 10 + 50_000 + 50_001 + 700_000 + 2_000_000_000);
        assert_eq!(s.cumulative[0], (50_000, 2), "a bound is inclusive");
        assert_eq!(s.cumulative[1], (100_000, 3));
        assert_eq!(s.cumulative[3], (500_000, 3));
        assert_eq!(s.cumulative[4], (1_000_000, 4));
        assert_eq!(
            s.cumulative.last(),
            Some(&(1_000_000_000, 4)),
            "2 s is in +Inf only"
        );
    }

    #[test]
    fn other_bounds_keep_their_own_buckets() {
        let h = Histogram::with_bounds(&DURATION_BOUNDS_NS);
        assert_eq!(h.bounds(), &DURATION_BOUNDS_NS);
        for ns in [2_000_000_000, 45_000_000_000, 400_000_000_000] {
            h.observe(ns);
        }
        let s = h.snapshot();
        assert_eq!(s.cumulative.len(), DURATION_BOUNDS_NS.len());
        assert_eq!(s.cumulative[13], (1_000_000_000, 0));
        assert_eq!(s.cumulative[14], (2_500_000_000, 1));
        assert_eq!(s.cumulative[18], (60_000_000_000, 2));
        assert_eq!(s.cumulative.last(), Some(&(300_000_000_000, 2)));
        assert_eq!(s.count, 3, "400 s is in +Inf only");
        assert_eq!(
            Histogram::default().bounds(),
            &LATENCY_BOUNDS_NS,
            "the default is the storage latency's"
        );
    }

    #[test]
    #[should_panic(expected = "strictly increasing")]
    fn bounds_out_of_order_are_a_bug() {
        Histogram::with_bounds(&[2, 1]);
    }

    #[test]
    fn threads_lose_no_observation() {
        let h = std::sync::Arc::new(Histogram::default());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.observe((i * 997 + t) % 3_000_000);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(h.snapshot().count, 40_000);
    }
}
