//! One store hammered by many OS threads at once: what a free-threaded CPython does.
//!
//! Under the GIL, Python threads never race inside the store (`allow` keeps the GIL), so
//! `tests/test_threads.py` never contends a shard lock. These tests do, through the whole
//! engine (`Limiter` over every store variant), on a [`ManualClock`] so that every count is
//! exact:
//! - one hot key and many keys, per algorithm and per store variant (one rate, the wide
//!   sliding window, two rates inline, three rates boxed, a burst): exactly the capacity is
//!   admitted, and the totals add up to the calls;
//! - the clock moving between rounds: each round admits what a single thread admits;
//! - `cleanup_expired`, the background [`Sweeper`] and a full map's sweep for room racing the
//!   deciders: no decision changes, no key is lost or counted twice.
//!
//! The expected figures come from replaying the same calls on one thread on a twin limiter:
//! within a round every call on a key is the same request at the same instant, so how many of
//! them are admitted does not depend on their order.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::algorithm::AlgorithmKind;
use crate::clock::{Clock, ManualClock};
use crate::config::LimiterConfig;
use crate::limiter::Limiter;
use crate::rate::{Rate, NANOS_PER_SECOND};
use crate::store::Sweeper;

const THREADS: usize = 8;

const BUCKETS: [AlgorithmKind; 3] = [
    AlgorithmKind::TokenBucket,
    AlgorithmKind::LeakyBucket,
    AlgorithmKind::Gcra,
];

fn per_seconds(limit: u64, seconds: u64) -> Rate {
    Rate {
        limit,
        period_ns: seconds * NANOS_PER_SECOND,
    }
}

/// A limiter's settings, built alike for the raced limiter and its single-threaded twin.
#[derive(Clone, Debug)]
struct Setup {
    algorithm: AlgorithmKind,
    rates: Vec<Rate>,
    burst: Option<u64>,
    max_keys: Option<usize>,
}

impl Setup {
    fn new(algorithm: AlgorithmKind, rates: &[Rate]) -> Self {
        Setup {
            algorithm,
            rates: rates.to_vec(),
            burst: None,
            max_keys: None,
        }
    }

    fn build(&self, clock: &ManualClock) -> Limiter {
        let config = LimiterConfig {
            rates: self.rates.clone(),
            algorithm: self.algorithm,
            burst: self.burst,
            max_keys: self.max_keys,
            on_full: Default::default(),
        };
        Limiter::new(config, Clock::Manual(clock.clone())).unwrap()
    }
}

/// Aborts the test process if the test is still running after `WATCHDOG`: a corrupted table
/// (a lock that does not exclude) can loop forever instead of failing an assertion.
struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

const WATCHDOG: Duration = Duration::from_secs(60);

impl Watchdog {
    fn arm(test: &'static str) -> Self {
        let (disarm, armed) = std::sync::mpsc::channel::<()>();
        thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = armed.recv_timeout(WATCHDOG) {
                eprintln!("{test} still runs after {WATCHDOG:?}: a hang, aborting");
                std::process::abort();
            }
        });
        Watchdog(Some(disarm))
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        // Dropping the sender disconnects the channel, which disarms the watchdog.
        self.0.take();
    }
}

/// Runs `work(thread)` on `THREADS` threads released together; returns their results.
fn race<T: Send>(work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = Barrier::new(THREADS);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|index| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    work(index)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// `calls` calls of `cost` on `key` from one thread: how many were admitted.
fn replay(limiter: &Limiter, key: &str, cost: u64, calls: usize) -> usize {
    (0..calls)
        .filter(|_| limiter.decide(key, cost).allowed)
        .count()
}

/// Every store variant of every algorithm, each with the rates that select it.
fn store_variants() -> Vec<Setup> {
    let mut setups = Vec::new();
    for algorithm in AlgorithmKind::ALL {
        setups.push(Setup::new(algorithm, &[per_seconds(301, 60)]));
        setups.push(Setup::new(
            algorithm,
            &[per_seconds(50, 1), per_seconds(120, 3600)],
        ));
        setups.push(Setup::new(
            algorithm,
            &[
                per_seconds(40, 1),
                per_seconds(90, 60),
                per_seconds(200, 3600),
            ],
        ));
    }
    // The sliding window's wide form (counts as u32): a limit above 65,535.
    setups.push(Setup::new(
        AlgorithmKind::Sliding,
        &[per_seconds(70_001, 60)],
    ));
    for algorithm in BUCKETS {
        setups.push(Setup {
            burst: Some(77),
            ..Setup::new(algorithm, &[per_seconds(1000, 60)])
        });
    }
    setups
}

#[test]
fn one_hot_key_admits_exactly_the_capacity_on_every_store() {
    let _watchdog = Watchdog::arm("one_hot_key_admits_exactly_the_capacity_on_every_store");
    for setup in store_variants() {
        let capacity = setup
            .burst
            .unwrap_or_else(|| setup.rates.iter().map(|r| r.limit).min().unwrap());
        for cost in [1, 3] {
            let clock = ManualClock::new(0);
            let limiter = setup.build(&clock);
            // Enough calls for twice the capacity, spread over the threads.
            let calls = (2 * capacity as usize / cost as usize)
                .div_ceil(THREADS)
                .max(100);
            let admitted: usize = race(|_| replay(&limiter, "hot", cost, calls))
                .into_iter()
                .sum();
            let what = format!("{setup:?}, cost {cost}");
            assert_eq!(admitted as u64, capacity / cost, "{what}");
            let stats = limiter.stats();
            assert_eq!(stats.allowed, admitted as u64, "{what}");
            assert_eq!(stats.total_checks(), (THREADS * calls) as u64, "{what}");
            assert_eq!(stats.active_keys, 1, "{what}");
            assert_eq!(limiter.peek("hot").remaining, capacity % cost, "{what}");
        }
    }
}

#[test]
fn many_keys_each_admit_exactly_their_limit_while_totals_are_read() {
    let _watchdog = Watchdog::arm("many_keys_each_admit_exactly_their_limit_while_totals_are_read");
    const KEYS: usize = 150;
    const LIMIT: u64 = 5;
    for algorithm in AlgorithmKind::ALL {
        for rates in [
            vec![per_seconds(LIMIT, 60)],
            vec![per_seconds(LIMIT, 60), per_seconds(100, 3600)],
        ] {
            let clock = ManualClock::new(0);
            let limiter = Setup::new(algorithm, &rates).build(&clock);
            // Short keys live inline, long ones boxed: both kinds, hashed over every shard.
            let keys: Vec<String> = (0..KEYS)
                .flat_map(|n| {
                    [
                        format!("u:{n}"),
                        format!("a-key-longer-than-fifteen-bytes-{n}"),
                    ]
                })
                .collect();
            let admitted: Vec<AtomicU64> = keys.iter().map(|_| AtomicU64::new(0)).collect();
            let rounds = 2; // each thread asks each key twice: 16 calls for a limit of 5
            race(|index| {
                for i in 0..rounds * keys.len() {
                    // Every thread starts at another key, so they meet on every shard.
                    let k = (i + index * 37) % keys.len();
                    if limiter.allow(&keys[k], 1) {
                        admitted[k].fetch_add(1, Ordering::Relaxed);
                    }
                    if i % 64 == 0 {
                        let stats = limiter.stats(); // totals read while others write
                        assert!(stats.active_keys <= keys.len() as u64);
                    }
                }
            });
            let what = format!("{algorithm}, {} rates", rates.len());
            for (key, count) in keys.iter().zip(&admitted) {
                assert_eq!(count.load(Ordering::Relaxed), LIMIT, "{what}: {key}");
                assert_eq!(limiter.peek(key).remaining, 0, "{what}: {key}");
            }
            let stats = limiter.stats();
            assert_eq!(stats.allowed, LIMIT * keys.len() as u64, "{what}");
            assert_eq!(
                stats.total_checks(),
                (THREADS * rounds * keys.len()) as u64,
                "{what}"
            );
            assert_eq!(stats.active_keys, keys.len() as u64, "{what}");
        }
    }
}

/// Clock steps between rounds, in ns: standing still, within a window, across windows, and
/// past every state's life.
const STEPS_NS: [u64; 9] = [
    0,
    300_000_000,
    700_000_000,
    1_100_000_000,
    50_000_000,
    0,
    2_999_999_999,
    1,
    61 * NANOS_PER_SECOND,
];

#[test]
fn rounds_between_clock_steps_admit_what_one_thread_admits() {
    let _watchdog = Watchdog::arm("rounds_between_clock_steps_admit_what_one_thread_admits");
    for algorithm in AlgorithmKind::ALL {
        for rates in [
            vec![per_seconds(10, 1)],
            vec![per_seconds(10, 1), per_seconds(25, 60)],
        ] {
            let setup = Setup::new(algorithm, &rates);
            let (clock, twin_clock) = (ManualClock::new(0), ManualClock::new(0));
            let (limiter, twin) = (setup.build(&clock), setup.build(&twin_clock));
            let calls = 6; // per thread and round: 48 requests against a capacity of 10
            for (round, step) in STEPS_NS.into_iter().enumerate() {
                clock.advance_ns(step).unwrap();
                twin_clock.advance_ns(step).unwrap();
                let cost = 1 + round as u64 % 2;
                let admitted: usize = race(|_| replay(&limiter, "hot", cost, calls))
                    .into_iter()
                    .sum();
                let expected = replay(&twin, "hot", cost, THREADS * calls);
                let what = format!("{algorithm}, {} rates, round {round}", rates.len());
                assert_eq!(admitted, expected, "{what}");
                assert_eq!(limiter.peek("hot"), twin.peek("hot"), "{what}");
            }
            assert_eq!(limiter.stats(), twin.stats(), "{algorithm}");
        }
    }
}

/// Runs `deciders` while `sweep` loops on another thread until they are done.
fn with_sweeping<T: Send>(sweep: impl Fn() + Sync, deciders: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let (started, done) = (AtomicBool::new(false), AtomicBool::new(false));
    thread::scope(|scope| {
        scope.spawn(|| {
            started.store(true, Ordering::Release);
            while !done.load(Ordering::Acquire) {
                sweep();
                thread::yield_now(); // two cores: let the deciders run between sweeps
            }
        });
        while !started.load(Ordering::Acquire) {
            thread::yield_now();
        }
        let results = race(&deciders);
        done.store(true, Ordering::Release);
        results
    })
}

/// Clock steps that expire every key, some keys' states partly, or nothing.
const SWEEP_STEPS_NS: [u64; 7] = [
    0,
    3 * NANOS_PER_SECOND,
    400_000_000,
    NANOS_PER_SECOND,
    0,
    2 * NANOS_PER_SECOND + 1,
    600_000_000,
];

#[test]
fn sweeps_racing_the_deciders_change_no_decision_and_lose_no_key() {
    let _watchdog = Watchdog::arm("sweeps_racing_the_deciders_change_no_decision_and_lose_no_key");
    const KEYS: usize = 64;
    const CALLS_PER_KEY: usize = 2; // per thread and round: 16 a key against a limit of 3
    for algorithm in AlgorithmKind::ALL {
        for rates in [
            vec![per_seconds(3, 1)],
            vec![per_seconds(3, 1), per_seconds(7, 10)],
        ] {
            let setup = Setup::new(algorithm, &rates);
            let (clock, twin_clock) = (ManualClock::new(0), ManualClock::new(0));
            let limiter = Arc::new(setup.build(&clock));
            let twin = setup.build(&twin_clock);
            // The background sweeper too, as `cleanup_interval` runs it, besides the loop.
            let weak = Arc::downgrade(&limiter);
            let background = Sweeper::spawn(Duration::from_micros(50), move || {
                weak.upgrade().map(|l| l.cleanup_expired()).is_some()
            })
            .unwrap();
            let keys: Vec<String> = (0..KEYS).map(|n| format!("key-{n}")).collect();
            let what = format!("{algorithm}, {} rates", rates.len());
            for (round, step) in SWEEP_STEPS_NS.into_iter().enumerate() {
                clock.advance_ns(step).unwrap();
                twin_clock.advance_ns(step).unwrap();
                let admitted: Vec<AtomicU64> = keys.iter().map(|_| AtomicU64::new(0)).collect();
                with_sweeping(
                    || {
                        limiter.cleanup_expired();
                    },
                    |index| {
                        for i in 0..CALLS_PER_KEY * KEYS {
                            let k = (i + index * 11) % KEYS;
                            if limiter.allow(&keys[k], 1) {
                                admitted[k].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    },
                );
                for (key, count) in keys.iter().zip(&admitted) {
                    let expected = replay(&twin, key, 1, THREADS * CALLS_PER_KEY);
                    assert_eq!(
                        count.load(Ordering::Relaxed),
                        expected as u64,
                        "{what}, round {round}, {key}"
                    );
                }
                // Every key was just asked, so none has expired: each is tracked once.
                assert_eq!(limiter.stats().active_keys, KEYS as u64, "{what}");
                for key in &keys {
                    assert_eq!(limiter.peek(key), twin.peek(key), "{what}, {round}, {key}");
                }
            }
            drop(background);
            let (stats, twin_stats) = (limiter.stats(), twin.stats());
            assert_eq!(
                (stats.allowed, stats.blocked),
                (twin_stats.allowed, twin_stats.blocked),
                "{what}"
            );
            clock.advance_ns(100 * NANOS_PER_SECOND).unwrap();
            assert_eq!(limiter.cleanup_expired(), KEYS, "{what}: every key, once");
            assert!(limiter.stats().active_keys == 0, "{what}");
        }
    }
}

#[test]
fn a_full_map_racing_newcomers_and_sweeps_never_overfills_or_loses_a_key() {
    let _watchdog =
        Watchdog::arm("a_full_map_racing_newcomers_and_sweeps_never_overfills_or_loses_a_key");
    const MAX_KEYS: usize = 100;
    const NEW_KEYS: usize = 40; // per thread and round: 320 newcomers for 100 places
    for algorithm in AlgorithmKind::ALL {
        let setup = Setup {
            max_keys: Some(MAX_KEYS),
            ..Setup::new(algorithm, &[per_seconds(1, 1)])
        };
        let clock = ManualClock::new(0);
        let limiter = setup.build(&clock);
        let mut rejected_total = 0;
        for round in 0..5 {
            let key = |thread: usize, i: usize| format!("r{round}-t{thread}-k{i}");
            let decide_all = |thread: usize| -> Vec<bool> {
                (0..NEW_KEYS)
                    .map(|i| limiter.allow(&key(thread, i), 1))
                    .collect()
            };
            // Odd rounds also race a `cleanup_expired` loop against the sweep for room.
            let admitted = if round % 2 == 1 {
                with_sweeping(
                    || {
                        limiter.cleanup_expired();
                    },
                    decide_all,
                )
            } else {
                race(decide_all)
            };
            let what = format!("{algorithm}, round {round}");
            let newcomers = admitted.iter().flatten().filter(|&&a| a).count();
            assert!((1..=MAX_KEYS).contains(&newcomers), "{what}: {newcomers}");
            if round == 0 {
                assert_eq!(newcomers, MAX_KEYS, "{what}: an empty map fills exactly");
            }
            // Every admitted newcomer is tracked with its state; every refused one is not;
            // the keys of the round before (all expired) were swept for room.
            for (thread, decisions) in admitted.iter().enumerate() {
                for (i, &allowed) in decisions.iter().enumerate() {
                    let remaining = limiter.peek(&key(thread, i)).remaining;
                    assert_eq!(remaining, u64::from(!allowed), "{what}: {}", key(thread, i));
                }
            }
            let stats = limiter.stats();
            assert_eq!(stats.active_keys, newcomers as u64, "{what}");
            rejected_total += THREADS * NEW_KEYS - newcomers;
            assert_eq!(stats.rejected_full, rejected_total as u64, "{what}");
            assert_eq!(stats.blocked, stats.rejected_full, "{what}");
            assert_eq!(
                stats.total_checks(),
                ((round + 1) * THREADS * NEW_KEYS) as u64,
                "{what}"
            );
            // Past every state's life, and past the one-second spacing of sweeps for room.
            clock.advance_ns(2 * NANOS_PER_SECOND).unwrap();
        }
        let tracked = limiter.stats().active_keys as usize;
        assert_eq!(limiter.cleanup_expired(), tracked, "{algorithm}");
        assert_eq!(limiter.stats().active_keys, 0, "{algorithm}");
    }
}
