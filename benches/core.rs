//! Criterion benches of the pure Rust core (no Python): `Limiter::decide` per algorithm.
//!
//! Scenarios, each for every algorithm in `AlgorithmKind::ALL`:
//! - `hot_key`: one key, always admitted (4e9 per hour is never reached in a bench run), through
//!   `decide` and through `allow` (the path of Python's `allow()`);
//! - `100k_keys`: 100,000 keys round-robin, each admitted (every key is inserted during
//!   warm-up, so this measures lookups spread over a table of a few MB);
//! - `denied`: limit 1 per hour on a key already spent, so every call is refused;
//! - `2_threads_distinct_keys` / `2_threads_same_key`: two threads calling `decide` at once,
//!   each on 16 keys of its own or both on one shared key (contention on one shard lock).
//!   The time reported is wall time per call per thread.
//!
//! Plus `clock/monotonic_now_ns`: one read of the monotonic clock, which every `decide` pays;
//! and `clock/shm_now_ns_*`: one read of the shared-memory store's clock (TSC and fallback),
//! beside `clock/std_instant_now`.
//!
//! Run with `cargo bench --bench core`; filter with e.g. `cargo bench --bench core -- gcra`.

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use rust_py_rate_limit::store::shm::clock as shm_clock;
use rust_py_rate_limit::{parse_rates, AlgorithmKind, Clock, Limiter, LimiterConfig};

/// A rate no bench reaches: every call is admitted.
const ALWAYS_ADMITTED: &str = "4000000000/hour";
/// A rate whose single request is spent before measuring: every call is refused.
const ALWAYS_DENIED: &str = "1/hour";
const ROUND_ROBIN_KEYS: usize = 100_000;
const THREADS: usize = 2;
const KEYS_PER_THREAD: usize = 16;

fn limiter(rate: &str, algorithm: AlgorithmKind) -> Limiter {
    let config = LimiterConfig {
        rates: parse_rates(rate).expect("bench rates parse"),
        algorithm,
        burst: None,
        max_keys: None,
        on_full: Default::default(),
    };
    Limiter::new(config, Clock::monotonic()).expect("bench config is valid")
}

/// Keys shaped like the ones users pass: `"user:0000001"`.
fn user_keys(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("user:{i:07}")).collect()
}

fn hot_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("hot_key");
    for algorithm in AlgorithmKind::ALL {
        let limiter = limiter(ALWAYS_ADMITTED, algorithm);
        group.bench_function(algorithm.name(), |b| {
            b.iter(|| limiter.decide(black_box("user:0000001"), 1).allowed)
        });
        // The path Python's `allow()` takes: only `allowed` is computed.
        group.bench_function(format!("{}/allow", algorithm.name()), |b| {
            b.iter(|| limiter.allow(black_box("user:0000001"), 1))
        });
    }
    group.finish();
}

fn round_robin(c: &mut Criterion) {
    let keys = user_keys(ROUND_ROBIN_KEYS);
    let mut group = c.benchmark_group("100k_keys");
    for algorithm in AlgorithmKind::ALL {
        let limiter = limiter(ALWAYS_ADMITTED, algorithm);
        let mut next = keys.iter().cycle();
        group.bench_function(algorithm.name(), |b| {
            b.iter(|| {
                let key = next.next().expect("cycle never ends");
                limiter.decide(black_box(key), 1).allowed
            })
        });
    }
    group.finish();
}

fn denied(c: &mut Criterion) {
    let mut group = c.benchmark_group("denied");
    for algorithm in AlgorithmKind::ALL {
        let limiter = limiter(ALWAYS_DENIED, algorithm);
        assert!(
            limiter.decide("user:0000001", 1).allowed,
            "the first request is admitted"
        );
        group.bench_function(algorithm.name(), |b| {
            b.iter(|| limiter.decide(black_box("user:0000001"), 1).allowed)
        });
    }
    group.finish();
}

/// Runs `iters` calls on each thread (one per key set, cycling through its keys), all started
/// together; returns the slowest thread's time, i.e. wall time per call per thread.
fn parallel_decide(limiter: &Limiter, key_sets: &[Vec<String>], iters: u64) -> Duration {
    let start = Barrier::new(key_sets.len());
    thread::scope(|scope| {
        let handles: Vec<_> = key_sets
            .iter()
            .map(|keys| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    let began = Instant::now();
                    for key in keys.iter().cycle().take(iters as usize) {
                        black_box(limiter.decide(black_box(key), 1).allowed);
                    }
                    began.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .max()
            .unwrap_or_default()
    })
}

fn two_threads(c: &mut Criterion) {
    // Distinct: each thread cycles through 16 keys of its own, so the rare instants when both
    // threads hit one shard are averaged in (two single keys would share a shard, or not, by
    // the luck of each limiter's random hash seed). Same: both threads on one key.
    let all = user_keys(THREADS * KEYS_PER_THREAD);
    let distinct: Vec<Vec<String>> = all
        .chunks(KEYS_PER_THREAD)
        .map(<[String]>::to_vec)
        .collect();
    let same: Vec<Vec<String>> = vec![vec!["user:0000001".to_string()]; THREADS];
    for (name, key_sets) in [
        ("2_threads_distinct_keys", &distinct),
        ("2_threads_same_key", &same),
    ] {
        let mut group = c.benchmark_group(name);
        for algorithm in AlgorithmKind::ALL {
            let limiter = limiter(ALWAYS_ADMITTED, algorithm);
            group.bench_function(BenchmarkId::from_parameter(algorithm.name()), |b| {
                b.iter_custom(|iters| parallel_decide(&limiter, key_sets, iters))
            });
        }
        group.finish();
    }
}

fn clock(c: &mut Criterion) {
    let clock = Clock::monotonic();
    let shared_tsc = shm_clock::calibrate();
    let shared_fallback = shm_clock::SharedClockParams::monotonic([0; 16]);
    let mut group = c.benchmark_group("clock");
    group.bench_function("monotonic_now_ns", |b| b.iter(|| clock.now_ns()));
    // The shared-memory store's clock: the TSC where calibrate() finds it usable (see the
    // name printed), and the clock_gettime(CLOCK_MONOTONIC) fallback; std's Instant for scale.
    let tsc_name = if shared_tsc.kind == shm_clock::KIND_TSC {
        "shm_now_ns_tsc"
    } else {
        "shm_now_ns_tsc_unavailable_fallback"
    };
    group.bench_function(tsc_name, |b| b.iter(|| shared_tsc.now_ns()));
    group.bench_function("shm_now_ns_fallback", |b| {
        b.iter(|| shared_fallback.now_ns())
    });
    group.bench_function("std_instant_now", |b| b.iter(Instant::now));
    group.finish();
}

/// Short runs: the whole bench takes a few minutes.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = hot_key, round_robin, denied, two_threads, clock
}
criterion_main!(benches);
