//! Limiters with no key in a plain Rust program (no Python): `cargo run --example unkeyed`.
//!
//! Four threads share one token bucket of 50 calls a second (bursts of 5) to throttle their own
//! calls: each waits out the `Retry` its refusal carries. Then each kind of limiter once, on a
//! manual clock.

use std::error::Error;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rust_py_rate_limit::{
    Clock, FixedWindow, Gcra, ManualClock, SlidingWindow, Strategy, TokenBucket,
};

/// Blocks until `limiter` lets one call go.
fn wait_for_turn(limiter: &dyn Strategy) {
    while let Err(retry) = limiter.process() {
        thread::sleep(
            retry
                .after()
                .expect("a call of cost 1 always fits eventually"),
        );
    }
}

fn threads_throttled() -> Result<(), Box<dyn Error>> {
    let bucket = Arc::new(TokenBucket::new(5, 50, Duration::from_secs(1))?);
    let began = Instant::now();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let bucket = bucket.clone();
            thread::spawn(move || {
                for _ in 0..10 {
                    wait_for_turn(bucket.as_ref());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker panicked");
    }
    let took = began.elapsed().as_secs_f64();
    // 40 calls: 5 at once, then 35 at 50 a second.
    println!(
        "40 calls through 50/second (burst 5) by 4 threads took {took:.3} s (0.700 s expected)"
    );
    assert!(took >= 0.69, "{took}");
    Ok(())
}

fn each_kind() -> Result<(), Box<dyn Error>> {
    let clock = ManualClock::new(0);
    let manual = || Clock::Manual(clock.clone());
    let second = Duration::from_secs(1);
    let limiters: [(&str, Box<dyn Strategy>); 4] = [
        (
            "TokenBucket(3, 3, 1s)",
            Box::new(TokenBucket::new(3, 3, second)?.with_clock(manual())),
        ),
        (
            "Gcra(3, 1s)",
            Box::new(Gcra::new(3, second, None)?.with_clock(manual())),
        ),
        (
            "FixedWindow(3, 1s)",
            Box::new(FixedWindow::new(3, second)?.with_clock(manual())),
        ),
        (
            "SlidingWindow(3, 1s)",
            Box::new(SlidingWindow::new(3, second)?.with_clock(manual())),
        ),
    ];
    for (name, limiter) in &limiters {
        let admitted = (0..5).filter(|_| limiter.process().is_ok()).count();
        let wait = limiter.decide(1).retry_after_ns as f64 / 1e9;
        println!("{name:<22} 5 calls at once: {admitted} admitted, the next in {wait:.3} s");
        assert_eq!(admitted, 3);
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    threads_throttled()?;
    each_kind()
}
