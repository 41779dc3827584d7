//! A keyed limiter in a plain Rust program (no Python): `cargo run --example keyed`.
//!
//! First on a manual clock, where time moves only when the program says so and every decision
//! is the same on every run; then on the real clock, shared by four threads.

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rust_py_rate_limit::{
    parse_rates, AlgorithmKind, Clock, Decision, Limiter, LimiterConfig, ManualClock,
};

const MS: u64 = 1_000_000;

fn show(at_ns: u64, key: &str, cost: u64, d: Decision) {
    let verdict = if d.allowed { "allowed" } else { "denied " };
    println!(
        "  t={:>6} ms  {key:<10} cost {cost}: {verdict}  remaining {:>2}  retry after {:>4} ms",
        at_ns / MS,
        d.remaining,
        d.retry_after_ns / MS,
    );
}

fn manual_clock() -> Result<(), Box<dyn Error>> {
    println!("Sliding window, 3/second and 5/minute for each key, on a manual clock:");
    let clock = ManualClock::new(0);
    let config = LimiterConfig::new(parse_rates("3/second; 5/minute")?, AlgorithmKind::Sliding);
    let limiter = Limiter::new(config, Clock::Manual(clock.clone()))?;

    let mut admitted = 0;
    for step in 0..8 {
        for key in ["user:alice", "user:bob"] {
            // bob sends only every other step
            if key == "user:bob" && step % 2 == 1 {
                continue;
            }
            let d = limiter.decide(key, 1);
            show(clock.now_ns(), key, 1, d);
            if key == "user:alice" && d.allowed {
                admitted += 1;
            }
        }
        clock.advance_ns(250 * MS)?;
    }
    // alice: three in the first second, then the minute's remaining two as the second slides.
    assert_eq!(admitted, 5, "alice is held to 5 a minute");

    let standing = limiter.peek("user:alice");
    println!(
        "  alice's standing: {} remaining, full again in {} ms",
        standing.remaining,
        standing.reset_after_ns / MS
    );
    // A sliding window still weighs the previous minute: wait until alice is full again.
    clock.advance_ns(standing.reset_after_ns)?;
    let d = limiter.decide("user:alice", 3);
    show(clock.now_ns(), "user:alice", 3, d);
    assert!(d.allowed, "once full again, alice may send 3 at once");

    let stats = limiter.stats();
    println!(
        "  stats: {} allowed, {} blocked, {} keys",
        stats.allowed, stats.blocked, stats.active_keys
    );
    Ok(())
}

fn real_clock() -> Result<(), Box<dyn Error>> {
    println!("Token bucket, 40/second in bursts of 5, one key shared by 4 threads, real clock:");
    let config = LimiterConfig {
        burst: Some(5),
        ..LimiterConfig::new(parse_rates("40/second")?, AlgorithmKind::TokenBucket)
    };
    let limiter = Arc::new(Limiter::new(config, Clock::monotonic())?);
    let admitted = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let run_for = Duration::from_millis(250);

    let threads: Vec<_> = (0..4)
        .map(|_| {
            let limiter = Arc::clone(&limiter);
            let admitted = Arc::clone(&admitted);
            thread::spawn(move || {
                while started.elapsed() < run_for {
                    let d = limiter.decide("api.example.com", 1);
                    if d.allowed {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        // Throttle ourselves: sleep exactly until a token is due.
                        thread::sleep(Duration::from_nanos(d.retry_after_ns));
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a worker thread panicked");
    }

    let elapsed = started.elapsed();
    let admitted = admitted.load(Ordering::Relaxed);
    // The burst at once, then 40 a second: never more than that, however the threads race.
    let most = 5 + (40.0 * elapsed.as_secs_f64()).floor() as u64;
    println!(
        "  {admitted} admitted in {} ms (at most {most}: the burst of 5, then 40 a second)",
        elapsed.as_millis()
    );
    assert!(admitted <= most, "{admitted} admitted, more than {most}");
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    manual_clock()?;
    println!();
    real_clock()
}
