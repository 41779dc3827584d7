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
//! And `unkeyed`: `process()` of the four unkeyed limiters (`TokenBucket`, `Gcra`,
//! `FixedWindow`, `SlidingWindow`) on one thread, with the monotonic clock: admitted (limits
//! no run reaches), `decide_at` with a counter for the clock (the decision and its
//! compare-and-swap without the clock read), and denied (1 per hour, spent); beside floors:
//! the clock read, the TSC read of the shared-memory clock, an atomic `fetch_add`, and a load
//! plus compare-and-swap of a 64-bit and of a 128-bit word (the buckets' state and the
//! windows'). After the run, a markdown table of that group (criterion's estimates, read back
//! from its output directory).
//!
//! Run with `cargo bench --bench core`; filter with e.g. `cargo bench --bench core -- gcra`.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use criterion::measurement::WallTime;
use criterion::{criterion_group, BenchmarkGroup, BenchmarkId, Criterion};
use portable_atomic::AtomicU128;
use rust_py_rate_limit::store::shm::clock as shm_clock;
use rust_py_rate_limit::{
    parse_rates, AlgorithmKind, Clock, FixedWindow, Gcra, Limiter, LimiterConfig, SlidingWindow,
    Strategy, TokenBucket,
};

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

/// One unkeyed limiter's benches, on its concrete type as the Python class calls it (so only
/// what `process()` uses is computed): `admitting()` never refuses in a bench run, `denying()`
/// holds 1 an hour. Each variant gets a limiter of its own.
fn bench_unkeyed<S: Strategy>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    admitting: impl Fn() -> S,
    denying: impl Fn() -> S,
) {
    let limiter = admitting();
    group.bench_function(format!("{name}/process"), |b| {
        b.iter(|| black_box(&limiter).process().is_ok())
    });
    // The same admitted decisions with a counter for the clock: what is left without the
    // clock read (the buckets admit a token a nanosecond, so one step a call keeps them full).
    let limiter = admitting();
    let mut now = 1_000_000_000u64;
    group.bench_function(format!("{name}/decide_at_no_clock"), |b| {
        b.iter(|| {
            now += 1;
            black_box(&limiter).decide_at(1, black_box(now)).allowed
        })
    });
    let limiter = denying();
    assert!(limiter.process().is_ok(), "the first request is admitted");
    assert!(limiter.process().is_err(), "the second is refused");
    group.bench_function(format!("{name}/process_denied"), |b| {
        b.iter(|| black_box(&limiter).process().is_ok())
    });
}

/// `process()` of each unkeyed limiter on one thread, beside the floors it is made of.
fn unkeyed(c: &mut Criterion) {
    let (hour, second) = (Duration::from_secs(3600), Duration::from_secs(1));
    // A token a nanosecond (a call takes longer), or 2**32 - 1 a window of an hour.
    let (per_ns, window) = (1_000_000_000, u64::from(u32::MAX));
    let mut group = c.benchmark_group(UNKEYED);
    bench_unkeyed(
        &mut group,
        "token_bucket",
        || TokenBucket::new(per_ns, per_ns, second).unwrap(),
        || TokenBucket::new(1, 1, hour).unwrap(),
    );
    bench_unkeyed(
        &mut group,
        "gcra",
        || Gcra::new(per_ns, second, None).unwrap(),
        || Gcra::new(1, hour, None).unwrap(),
    );
    bench_unkeyed(
        &mut group,
        "fixed_window",
        || FixedWindow::new(window, hour).unwrap(),
        || FixedWindow::new(1, hour).unwrap(),
    );
    bench_unkeyed(
        &mut group,
        "sliding_window",
        || SlidingWindow::new(window, hour).unwrap(),
        || SlidingWindow::new(1, hour).unwrap(),
    );
    let clock = Clock::monotonic();
    group.bench_function("floor/clock_now_ns", |b| b.iter(|| clock.now_ns()));
    let tsc = shm_clock::calibrate();
    if tsc.kind == shm_clock::KIND_TSC {
        group.bench_function("floor/tsc_now_ns", |b| b.iter(|| tsc.now_ns()));
    }
    let word = AtomicU64::new(0);
    group.bench_function("floor/u64_fetch_add", |b| {
        b.iter(|| black_box(&word).fetch_add(1, Ordering::AcqRel))
    });
    group.bench_function("floor/u64_load_cas", |b| {
        b.iter(|| {
            let word = black_box(&word);
            let current = word.load(Ordering::Acquire);
            word.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire)
        })
    });
    let wide = AtomicU128::new(0);
    group.bench_function("floor/u128_load_cas", |b| {
        b.iter(|| {
            let wide = black_box(&wide);
            let current = wide.load(Ordering::Acquire);
            wide.compare_exchange_weak(current, current + 1, Ordering::AcqRel, Ordering::Acquire)
        })
    });
    group.finish();
}

const UNKEYED: &str = "unkeyed";

/// Where criterion writes its results, found as criterion finds it.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("criterion")
}

/// The estimate criterion prints (the slope, else the mean) of `group/function`, in ns, when
/// it was written after `since`; read from `estimates.json` without a JSON parser.
fn estimate_ns(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let dir = function.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_");
    let path = criterion_home()
        .join(group)
        .join(dir)
        .join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None; // an earlier run's: this one filtered it out
    }
    let text = std::fs::read_to_string(path).ok()?;
    let point = |field: &str| -> Option<f64> {
        let rest = &text[text.find(&format!("\"{field}\":"))?..];
        let rest = &rest[rest.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
        rest[..rest.find([',', '}'])?].trim().parse().ok()
    };
    let slope_null = text.contains("\"slope\":null");
    if slope_null { None } else { point("slope") }.or_else(|| point("mean"))
}

/// The `unkeyed` group as a markdown table, when this run measured it.
fn unkeyed_table(since: SystemTime) {
    let ns = |function: &str| estimate_ns(UNKEYED, function, since);
    let cell = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.1}"));
    let Some(clock) = ns("floor/clock_now_ns") else {
        return;
    };
    println!("\n## unkeyed: ns per call, one thread (criterion's estimate)\n");
    println!("| limiter | process() admitted | decide_at, no clock read | process() denied | admitted - clock read |");
    println!("|---|--:|--:|--:|--:|");
    for name in ["token_bucket", "gcra", "fixed_window", "sliding_window"] {
        let admitted = ns(&format!("{name}/process"));
        println!(
            "| {name} | {} | {} | {} | {} |",
            cell(admitted),
            cell(ns(&format!("{name}/decide_at_no_clock"))),
            cell(ns(&format!("{name}/process_denied"))),
            cell(admitted.map(|a| a - clock)),
        );
    }
    println!("\n| floor | ns |\n|---|--:|");
    for floor in [
        "clock_now_ns",
        "tsc_now_ns",
        "u64_fetch_add",
        "u64_load_cas",
        "u128_load_cas",
    ] {
        if let Some(value) = ns(&format!("floor/{floor}")) {
            println!("| {floor} | {value:.1} |");
        }
    }
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
    targets = hot_key, round_robin, denied, two_threads, clock, unkeyed
}

/// criterion's `criterion_main!`, then the `unkeyed` table.
fn main() {
    let started = SystemTime::now();
    benches();
    Criterion::default().configure_from_args().final_summary();
    unkeyed_table(started);
}
