//! The atomic bucket against the keyed limiter, and under threads.

use std::sync::{Arc, Barrier};

use super::*;
use crate::clock::ManualClock;
use crate::limiter::Limiter;

/// xorshift64*, so a failure names its seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

#[test]
fn it_decides_as_a_keyed_limiter_on_one_key() {
    for seed in 1..=200u64 {
        let mut rng = seed * 7_919;
        let limit = 1 + next(&mut rng) % 50;
        let period = 1 + next(&mut rng) % 10_000_000;
        let burst = 1 + next(&mut rng) % 60;
        let algorithm = if seed % 2 == 0 {
            AlgorithmKind::TokenBucket
        } else {
            AlgorithmKind::Gcra
        };
        let clock = ManualClock::new(1_000_000);
        let bucket = if algorithm == AlgorithmKind::TokenBucket {
            AtomicBucket::token_bucket(burst, limit, period, Clock::Manual(clock.clone()))
        } else {
            AtomicBucket::gcra(limit, period, Some(burst), Clock::Manual(clock.clone()))
        }
        .unwrap();
        let keyed = Limiter::new(
            LimiterConfig {
                rates: vec![Rate {
                    limit,
                    period_ns: period,
                }],
                algorithm,
                burst: Some(burst),
                max_keys: None,
                on_full: Default::default(),
            },
            Clock::Manual(clock.clone()),
        )
        .unwrap();
        for step in 0..300 {
            let context = format!("seed {seed} {limit}/{period}ns burst {burst} step {step}");
            match next(&mut rng) % 8 {
                0 => {
                    clock.advance_ns(next(&mut rng) % (period / 2 + 1)).unwrap();
                }
                1 => assert_eq!(bucket.peek(), keyed.peek("k"), "peek: {context}"),
                2 if next(&mut rng) % 8 == 0 => {
                    bucket.reset();
                    keyed.reset("k");
                }
                _ => {
                    let cost = 1 + next(&mut rng) % (burst + 1);
                    assert_eq!(bucket.decide(cost), keyed.decide("k", cost), "{context}");
                }
            }
        }
    }
}

#[test]
fn threads_on_one_bucket_admit_exactly_its_capacity() {
    let clock = ManualClock::new(1_000);
    // 100,000 tokens, one more an hour: nothing refills during the test; enough calls that
    // the threads overlap (a plain store instead of the swap admits more)
    let hour = 3_600_000_000_000;
    let bucket = AtomicBucket::token_bucket(100_000, 1, hour, Clock::Manual(clock));
    let bucket = Arc::new(bucket.unwrap());
    let barrier = Arc::new(Barrier::new(8));
    let admitted: usize = (0..8)
        .map(|_| {
            let (bucket, barrier) = (bucket.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                (0..40_000).filter(|_| bucket.process()).count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .sum();
    assert_eq!(admitted, 100_000);
    assert!(!bucket.process_n(1));
}

#[test]
fn bad_settings_are_refused_by_name() {
    let clock = || Clock::Manual(ManualClock::new(0));
    let error = AtomicBucket::token_bucket(0, 1, 10, clock()).err().unwrap();
    assert_eq!(error.param, "burst");
    let error = AtomicBucket::token_bucket(5, 0, 10, clock()).err().unwrap();
    assert_eq!(error.param, "limit");
    let error = AtomicBucket::gcra(5, 0, None, clock()).err().unwrap();
    assert_eq!(error.param, "window_seconds");
    let error = AtomicBucket::gcra(100, 10, None, clock()).err().unwrap();
    assert!(
        error
            .message
            .contains("more than one request per nanosecond"),
        "{}",
        error.message
    );
}

#[test]
#[ignore = "a measurement: prints ns per process() (cargo test --release -- --ignored --nocapture)"]
fn process_cost() {
    let bucket = AtomicBucket::token_bucket(u64::from(u32::MAX), 1, 1, Clock::monotonic());
    let bucket = bucket.unwrap();
    let manual = AtomicBucket::token_bucket(
        u64::from(u32::MAX),
        1,
        1,
        Clock::Manual(ManualClock::new(0)),
    );
    let manual = manual.unwrap();
    for round in 0..3 {
        for (name, b) in [("monotonic clock", &bucket), ("manual clock", &manual)] {
            let calls = 10_000_000u64;
            let start = std::time::Instant::now();
            let admitted = (0..calls).filter(|_| b.process()).count();
            let ns = start.elapsed().as_nanos() as f64 / calls as f64;
            println!("round {round}: {name}: {ns:.1} ns a process() ({admitted} admitted)");
        }
    }
}
