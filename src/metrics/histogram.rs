//! `Histogram`: how long something took, in fixed buckets, recorded lock-free (one atomic
//! add per bucket hit, plus the count and the sum), read as Prometheus reads a histogram:
//! cumulative counts per upper bound, the sum and the count.
//!
//! The bounds are fixed at compile time ([`LATENCY_BOUNDS_NS`]), so that every process and
//! every limiter reports the same buckets and their series can be added up.

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

const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// Durations observed, by bucket.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is above every bound.
    buckets: [AtomicU64; BUCKETS],
    sum_ns: AtomicU64,
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
    /// Records one duration.
    pub fn observe(&self, ns: u64) {
        let at = LATENCY_BOUNDS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[at].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The counts so far. Taken bucket by bucket while others may record: the count is the
    /// buckets' total, so a reader never sees more observations than buckets, and the sum may
    /// include a duration whose bucket it has not yet counted (or the other way round).
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut running = 0;
        let mut cumulative = Vec::with_capacity(LATENCY_BOUNDS_NS.len());
        for (bucket, &bound) in self.buckets.iter().zip(&LATENCY_BOUNDS_NS) {
            running += bucket.load(Ordering::Relaxed);
            cumulative.push((bound, running));
        }
        running += self.buckets[BUCKETS - 1].load(Ordering::Relaxed);
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
