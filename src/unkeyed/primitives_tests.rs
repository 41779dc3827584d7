//! The unkeyed limiters against the keyed limiter, under threads, and waiting.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::config::LimiterConfig;
use crate::limiter::Limiter;
use crate::rate::Rate;
use crate::AlgorithmKind;

/// xorshift64*, so a failure names its seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

const KINDS: [AlgorithmKind; 4] = [
    AlgorithmKind::TokenBucket,
    AlgorithmKind::Gcra,
    AlgorithmKind::Fixed,
    AlgorithmKind::Sliding,
];

/// The unkeyed limiter of `kind` with `limit` per `period_ns` and, for the buckets, `burst`.
fn unkeyed(
    kind: AlgorithmKind,
    limit: u64,
    period_ns: u64,
    burst: u64,
    clock: &ManualClock,
) -> Box<dyn Strategy> {
    let period = Duration::from_nanos(period_ns);
    let clock = Clock::Manual(clock.clone());
    match kind {
        AlgorithmKind::TokenBucket => Box::new(
            TokenBucket::new(burst, limit, period)
                .unwrap()
                .with_clock(clock),
        ),
        AlgorithmKind::Gcra => Box::new(
            Gcra::new(limit, period, Some(burst))
                .unwrap()
                .with_clock(clock),
        ),
        AlgorithmKind::Fixed => {
            Box::new(FixedWindow::new(limit, period).unwrap().with_clock(clock))
        }
        _ => Box::new(SlidingWindow::new(limit, period).unwrap().with_clock(clock)),
    }
}

fn keyed(
    kind: AlgorithmKind,
    limit: u64,
    period_ns: u64,
    burst: u64,
    clock: &ManualClock,
) -> Limiter {
    let config = LimiterConfig {
        rates: vec![Rate { limit, period_ns }],
        algorithm: kind,
        burst: kind.has_burst().then_some(burst),
        max_keys: None,
        on_full: Default::default(),
    };
    Limiter::new(config, Clock::Manual(clock.clone())).unwrap()
}

#[test]
fn each_decides_as_a_keyed_limiter_on_one_key() {
    for seed in 1..=400u64 {
        let mut rng = seed * 7_919;
        let kind = KINDS[(seed % 4) as usize];
        // Windows past 65,535 now and then (the keyed limiter's wide counts).
        let limit = if seed % 16 == 3 {
            70_000 + next(&mut rng) % 10
        } else {
            1 + next(&mut rng) % 50
        };
        let period = limit + next(&mut rng) % 10_000_000;
        let burst = 1 + next(&mut rng) % 60;
        // Time 0 now and then: a window anchored there must not read as no state.
        let clock = ManualClock::new(if seed % 5 == 0 { 0 } else { 1_000_000 });
        let one = unkeyed(kind, limit, period, burst, &clock);
        let many = keyed(kind, limit, period, burst, &clock);
        let capacity = if kind.has_burst() { burst } else { limit };
        for step in 0..300 {
            let context =
                format!("seed {seed} {kind} {limit}/{period}ns burst {burst} step {step}");
            match next(&mut rng) % 8 {
                0 => {
                    clock.advance_ns(next(&mut rng) % (period / 2 + 1)).unwrap();
                }
                1 => {
                    assert_eq!(one.peek(), many.peek("k"), "peek: {context}");
                    let cost = next(&mut rng) % (capacity + 2);
                    let preview = many.preview("k", cost);
                    assert_eq!(one.preview(cost), preview, "preview: {context}");
                }
                2 if next(&mut rng) % 8 == 0 => {
                    one.reset();
                    many.reset("k");
                }
                3 => assert_eq!(one.decide(0), many.decide("k", 0), "cost 0: {context}"),
                _ => {
                    let cost = 1 + next(&mut rng) % (capacity + 1);
                    assert_eq!(one.decide(cost), many.decide("k", cost), "{context}");
                }
            }
        }
    }
}

#[test]
fn threads_on_one_limiter_admit_exactly_its_capacity() {
    for kind in KINDS {
        let clock = ManualClock::new(1_000);
        // 100,000 a day: nothing refills or rolls over during the test; enough calls that
        // the threads overlap (a plain store instead of the swap admits more).
        let day = 86_400_000_000_000;
        let limiter: Arc<dyn Strategy> = unkeyed(kind, 100_000, day, 100_000, &clock).into();
        let barrier = Arc::new(Barrier::new(8));
        let admitted: usize = (0..8)
            .map(|_| {
                let (limiter, barrier) = (limiter.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    (0..40_000).filter(|_| limiter.process().is_ok()).count()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(admitted, 100_000, "{kind}");
        assert!(limiter.process_n(1).is_err(), "{kind}");
    }
}

#[test]
fn a_bucket_reserves_instants_in_order_and_takes_refunds_back() {
    let clock = ManualClock::new(0);
    let second = 1_000_000_000;
    // 1 a second, burst 1.
    let bucket = unkeyed(AlgorithmKind::Gcra, 1, second, 1, &clock);
    let waits: Vec<u64> = (0..4)
        .map(|_| bucket.reserve_at(1, 0, 10 * second))
        .map(|r| {
            assert!(r.decision.allowed);
            r.wait_ns
        })
        .collect();
    assert_eq!(waits, [0, second, 2 * second, 3 * second]);
    // Too long a wait: refused with it, reserving nothing.
    let refused = bucket.reserve_at(1, 0, 3 * second);
    assert!(!refused.decision.allowed);
    assert_eq!(refused.decision.retry_after_ns, 4 * second);
    // The last waiter gives up: the next one gets its instant.
    bucket.refund(1);
    assert_eq!(bucket.reserve_at(1, 0, 10 * second).wait_ns, 3 * second);
    // More than the capacity never goes.
    let never = bucket.reserve_at(2, 0, u64::MAX);
    assert!(!never.decision.allowed);
    assert_eq!(never.decision.retry_after_ns, crate::decision::NEVER);
}

#[test]
fn a_window_reserves_nothing_and_says_how_long_to_wait() {
    for kind in [AlgorithmKind::Fixed, AlgorithmKind::Sliding] {
        let clock = ManualClock::new(0);
        let window = unkeyed(kind, 2, 1_000, 2, &clock);
        assert_eq!(window.reserve_at(1, 0, 10_000).wait_ns, 0);
        assert_eq!(window.reserve_at(1, 0, 10_000).wait_ns, 0);
        let denied = window.reserve_at(1, 0, 10_000);
        assert!(!denied.decision.allowed, "{kind}");
        assert!(denied.decision.retry_after_ns > 0, "{kind}");
        window.refund(1);
        assert!(
            !window.decide(1).allowed,
            "{kind}: a refund gives nothing back to a window"
        );
    }
}

#[test]
fn bad_settings_are_refused_by_the_constructors_names() {
    let second = Duration::from_secs(1);
    let param = |e: crate::config::ConfigError| e.param;
    assert_eq!(
        TokenBucket::new(0, 1, second).err().map(param),
        Some("capacity")
    );
    assert_eq!(
        TokenBucket::new(5, 0, second).err().map(param),
        Some("increment")
    );
    assert_eq!(
        TokenBucket::new(5, 1, Duration::ZERO).err().map(param),
        Some("period")
    );
    assert_eq!(Gcra::new(0, second, None).err().map(param), Some("limit"));
    assert_eq!(
        Gcra::new(5, second, Some(0)).err().map(param),
        Some("burst")
    );
    assert_eq!(
        FixedWindow::new(0, second).err().map(param),
        Some("capacity")
    );
    let too_many = u64::from(u32::MAX) + 1;
    assert_eq!(
        SlidingWindow::new(too_many, second).err().map(param),
        Some("capacity")
    );
    assert_eq!(
        SlidingWindow::new(1, Duration::ZERO).err().map(param),
        Some("interval")
    );
    let error = Gcra::new(100, Duration::from_nanos(10), None)
        .err()
        .unwrap();
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
    let huge = u64::from(u32::MAX);
    let day = Duration::from_secs(86_400);
    // The buckets refill one token a nanosecond: every call is admitted, as in the windows.
    let ns = Duration::from_nanos(1);
    let all: [(&str, Box<dyn Strategy>); 4] = [
        (
            "token_bucket",
            Box::new(TokenBucket::new(huge, 1, ns).unwrap()),
        ),
        ("gcra", Box::new(Gcra::new(1, ns, Some(huge)).unwrap())),
        (
            "fixed_window",
            Box::new(FixedWindow::new(huge, day).unwrap()),
        ),
        (
            "sliding_window",
            Box::new(SlidingWindow::new(huge, day).unwrap()),
        ),
    ];
    for round in 0..2 {
        for (name, limiter) in &all {
            let calls = 10_000_000u64;
            let start = std::time::Instant::now();
            let admitted = (0..calls).filter(|_| limiter.process().is_ok()).count();
            let ns = start.elapsed().as_nanos() as f64 / calls as f64;
            println!("round {round}: {name}: {ns:.1} ns a process() ({admitted} admitted)");
        }
    }
}
