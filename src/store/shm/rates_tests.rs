//! Several rates over the shared table: against memory, under threads and processes, with
//! requests left half-applied by a dead process, and late helpers.

use std::sync::{Arc, Barrier};

use super::*;
use crate::algorithm::{AlgorithmKind, FixedWindow};
use crate::clock::{Clock, ManualClock};
use crate::config::LimiterConfig;
use crate::limiter::Limiter;
use crate::rate::{Rate, NANOS_PER_SECOND};
use crate::store::shm::open::open_table;
use crate::store::shm::test_dir::TempDir;
use crate::store::shm::test_rng::Rng;

const START: u64 = 1_000_000 * NANOS_PER_SECOND;
const HOUR: u64 = 3600 * NANOS_PER_SECOND;

fn config(algorithm: AlgorithmKind, rates: &[(u64, u64)]) -> LimiterConfig {
    LimiterConfig {
        rates: rates
            .iter()
            .map(|&(limit, period_ns)| Rate { limit, period_ns })
            .collect(),
        algorithm,
        burst: None,
        max_keys: None,
        on_full: Default::default(),
    }
}

fn shared(
    dir: &TempDir,
    name: &str,
    capacity: u64,
    config: LimiterConfig,
    clock: &ManualClock,
) -> Limiter {
    let rates = config.rates.len() as u32;
    let region = open_table(&dir.0, name, Some(capacity), rates).unwrap();
    Limiter::shared(config, Clock::Manual(clock.clone()), region).unwrap()
}

/// Two fixed windows over a table of two rates, driven directly (no limiter).
fn two_windows(dir: &TempDir, name: &str) -> RatesStore<FixedWindow, 2, 7, 32> {
    let region = open_table(&dir.0, name, Some(100), 2).unwrap();
    let rates = vec![
        FixedWindow::new(Rate {
            limit: 5,
            period_ns: 100,
        }),
        FixedWindow::new(Rate {
            limit: 8,
            period_ns: 1000,
        }),
    ];
    RatesStore::new(rates, "test", region, OnFull::Reject)
}

#[test]
fn several_rates_decide_as_in_memory_on_random_sequences() {
    let dir = TempDir::new();
    for seed in 1..=30u64 {
        for algorithm in AlgorithmKind::ALL {
            let mut rng = Rng(seed * 104_729 + algorithm as u64);
            let count = 2 + rng.below(3) as usize;
            let rates: Vec<(u64, u64)> = (0..count)
                .map(|_| (1 + rng.below(20), 1 + rng.below(5 * NANOS_PER_SECOND)))
                .collect();
            let longest = rates.iter().map(|r| r.1).max().unwrap();
            let clock = ManualClock::new(START);
            let config = config(algorithm, &rates);
            let memory = Limiter::new(config.clone(), Clock::Manual(clock.clone())).unwrap();
            let shm = shared(
                &dir,
                &format!("model-{seed}-{algorithm}"),
                1000,
                config,
                &clock,
            );
            for step in 0..400 {
                let key = format!("k{}", rng.below(6));
                let context = format!("seed {seed} {algorithm} {rates:?} step {step}");
                match rng.below(10) {
                    0 => {
                        clock.advance_ns(rng.below(longest * 2)).unwrap();
                    }
                    1 => assert_eq!(shm.peek(&key), memory.peek(&key), "peek: {context}"),
                    2 => {
                        let cost = rng.below(22);
                        assert_eq!(
                            shm.preview(&key, cost),
                            memory.preview(&key, cost),
                            "preview: {context}"
                        );
                    }
                    3 if rng.below(4) == 0 => {
                        shm.reset(&key);
                        memory.reset(&key);
                    }
                    _ => {
                        let cost = if rng.below(5) == 0 { rng.below(22) } else { 1 };
                        assert_eq!(
                            shm.decide(&key, cost),
                            memory.decide(&key, cost),
                            "decide: {context}"
                        );
                    }
                }
            }
            let (s, m) = (shm.stats(), memory.stats());
            assert_eq!(
                (s.allowed, s.blocked),
                (m.allowed, m.blocked),
                "{algorithm}"
            );
        }
    }
}

#[test]
fn threads_on_one_key_admit_exactly_what_the_tightest_rate_allows() {
    let dir = TempDir::new();
    for algorithm in AlgorithmKind::ALL {
        for (n, rates) in [
            vec![(700, HOUR), (500, 24 * HOUR)],
            vec![(500, HOUR), (900, 24 * HOUR), (2000, 48 * HOUR)],
            vec![
                (3000, HOUR),
                (3000, 2 * HOUR),
                (3000, 3 * HOUR),
                (600, 4 * HOUR),
            ],
        ]
        .into_iter()
        .enumerate()
        {
            let clock = ManualClock::new(START);
            let limiter = Arc::new(shared(
                &dir,
                &format!("threads-{algorithm}-{n}"),
                1000,
                config(algorithm, &rates),
                &clock,
            ));
            let expected = rates.iter().map(|r| r.0).min().unwrap();
            let barrier = Arc::new(Barrier::new(8));
            let admitted: u64 = (0..8)
                .map(|_| {
                    let (limiter, barrier) = (limiter.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        (0..400).filter(|_| limiter.allow("hot", 1)).count() as u64
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .sum();
            assert_eq!(admitted, expected, "{algorithm} {rates:?}");
            // Every rate counted every admission, and nothing else.
            let peek = limiter.peek("hot");
            assert_eq!(peek.remaining, 0, "{algorithm} {rates:?}");
            limiter.reset("hot");
            assert!(limiter.allow("hot", 1));
        }
    }
}

#[test]
fn a_request_left_installed_by_a_dead_process_is_applied_once_by_the_next_visitor() {
    let dir = TempDir::new();
    // Left at each point: installed only, the first rate applied, both applied.
    for applied in 0..3 {
        let store = two_windows(&dir, &format!("dead-{applied}"));
        let now = 10;
        assert!(store.decide(b"k", 1, now).allowed);
        let tag = store.base.tag(b"k");
        let bucket = store.bucket(tag);
        let View::Held { held, control, .. } = store.view(bucket, tag, now) else {
            panic!("k holds a slot");
        };
        // A process installs a request of cost 2, then dies part-way through applying it.
        let pending = Control::request(
            held.ident.version,
            next_seq(control.seq()),
            now + store.bound,
            2,
        );
        assert!(bucket.update(held, control, pending));
        for (i, rate) in store.rates.iter().enumerate().take(applied) {
            let (_, old) = read_rate_word(bucket.word(held, i).load());
            let next = rate
                .decide(Some(PackedState::unpack(old)), now, 2)
                .1
                .unwrap();
            let word = bucket.word(held, i);
            assert!(word.swap(word.load(), rate_word(pending.seq(), next.pack())));
        }
        // The next visitor applies it (once) before deciding: 1 + 2 of the 5 and of the 8.
        let peek = store.peek(b"k", now);
        assert_eq!(peek.remaining, 2, "applied {applied}");
        for i in 0..2 {
            assert_eq!(read_rate_word(bucket.word(held, i).load()).0, pending.seq());
        }
        // Two rates' slots are 64 bytes, each in one cache line: identity, control, words.
        assert_eq!(bucket.word(held, 0) as *const _ as usize % 64, 32);
        assert_eq!(store.decide(b"k", 1, now).remaining, 1);
        assert!(store.decide(b"k", 1, now).allowed);
        assert!(!store.decide(b"k", 1, now).allowed, "5 of the short window");
        // A late helper of the old request changes nothing.
        store.apply(bucket, held, pending);
        assert!(!store.decide(b"k", 1, now).allowed);
        assert_eq!(
            store.peek(b"k", now + 100).remaining,
            3,
            "8 - 5 of the long window"
        );
        store.check_table(now).unwrap();
    }
}

#[test]
fn a_late_helper_never_writes_over_a_later_request_or_a_new_holder() {
    let dir = TempDir::new();
    let store = two_windows(&dir, "late");
    let now = 10;
    assert!(store.decide(b"k", 1, now).allowed);
    let tag = store.base.tag(b"k");
    let bucket = store.bucket(tag);
    let View::Held { held, control, .. } = store.view(bucket, tag, now) else {
        panic!("k holds a slot");
    };
    let stale = Control::request(
        held.ident.version,
        next_seq(control.seq()),
        now + store.bound,
        1,
    );
    // The request the late helper read is installed and applied by its author...
    assert!(bucket.update(held, control, stale));
    store.apply(bucket, held, stale);
    // ... then two more, a reset, and one more.
    assert!(store.decide(b"k", 1, now).allowed);
    assert!(store.decide(b"k", 1, now).allowed);
    assert!(store.reset(b"k", now));
    assert!(store.decide(b"k", 1, now).allowed);
    let words = |b: &Slots<2, 7, 32>| [b.word(held, 0).load(), b.word(held, 1).load()];
    let before = (bucket.cell(held), words(bucket));
    store.apply(bucket, held, stale);
    assert_eq!(
        (bucket.cell(held), words(bucket)),
        before,
        "the late helper wrote"
    );
    assert_eq!(store.peek(b"k", now).remaining, 4);
}

#[test]
fn a_reset_while_a_request_is_being_applied_forgets_it_whole() {
    let dir = TempDir::new();
    let store = two_windows(&dir, "reset");
    let now = 10;
    for _ in 0..3 {
        assert!(store.decide(b"k", 1, now).allowed);
    }
    let tag = store.base.tag(b"k");
    let bucket = store.bucket(tag);
    let View::Held { held, control, .. } = store.view(bucket, tag, now) else {
        panic!("k holds a slot");
    };
    let pending = Control::request(
        held.ident.version,
        next_seq(control.seq()),
        now + store.bound,
        1,
    );
    assert!(bucket.update(held, control, pending));
    // The first rate gets the request, then the key is reset, then the rest is applied late.
    let (_, old) = read_rate_word(bucket.word(held, 0).load());
    let next = store.rates[0]
        .decide(Some(PackedState::unpack(old)), now, 1)
        .1
        .unwrap();
    let word = bucket.word(held, 0);
    assert!(word.swap(word.load(), rate_word(pending.seq(), next.pack())));
    assert!(store.reset(b"k", now));
    store.apply(bucket, held, pending);
    // Nothing of the old states shows through: every rate starts again.
    assert_eq!(store.peek(b"k", now).remaining, 5);
    for _ in 0..5 {
        assert!(store.decide(b"k", 1, now).allowed);
    }
    assert!(!store.decide(b"k", 1, now).allowed);
    assert_eq!(store.peek(b"k", now + 100).remaining, 3);
}

#[test]
fn a_full_bucket_of_several_rates_rejects_or_evicts_and_reuses_expired_slots() {
    let dir = TempDir::new();
    // capacity 5 makes one bucket of 7 slots of two rates
    for on_full in [OnFull::Reject, OnFull::Evict] {
        let clock = ManualClock::new(START);
        let minute = 60 * NANOS_PER_SECOND;
        let config = LimiterConfig {
            on_full,
            ..config(AlgorithmKind::Fixed, &[(2, minute), (5, 2 * minute)])
        };
        let limiter = shared(&dir, &format!("full-{on_full:?}"), 5, config, &clock);
        for i in 0..7 {
            assert!(limiter.allow(&format!("k{i}"), 1));
            clock.advance_ns(NANOS_PER_SECOND).unwrap();
        }
        assert_eq!(limiter.stats().active_keys, 7);
        let newcomer = limiter.decide("new", 1);
        let stats = limiter.stats();
        match on_full {
            OnFull::Reject => {
                assert!(!newcomer.allowed);
                assert_eq!((stats.rejected_full, stats.evicted), (1, 0));
                assert!(limiter.allow("k0", 1) && !limiter.allow("k0", 1));
            }
            OnFull::Evict => {
                assert!(newcomer.allowed);
                assert_eq!((stats.rejected_full, stats.evicted), (0, 1));
                assert_eq!(limiter.decide("k0", 1).remaining, 1, "k0 went first");
            }
        }
        clock.advance_ns(5 * minute).unwrap();
        let before = limiter.stats();
        for i in 0..7 {
            assert!(limiter.allow(&format!("fresh{i}"), 1));
        }
        assert_eq!(limiter.stats().rejected_full, before.rejected_full);
        limiter.check_shared_table().unwrap().unwrap();
    }
}

/// Run in child processes by `processes_on_one_key_admit_exactly_the_tightest_rate`.
#[test]
#[ignore = "run in child processes by processes_on_one_key_admit_exactly_the_tightest_rate"]
fn child_hammers_one_key_with_several_rates() {
    let Some(dir) = std::env::var_os("RPRL_SHM_CHILD_DIR") else {
        return;
    };
    let algorithm =
        AlgorithmKind::parse(&std::env::var("RPRL_SHM_CHILD_ALGORITHM").unwrap()).unwrap();
    let region = open_table(std::path::Path::new(&dir), "procs", Some(1000), 3).unwrap();
    let clock = Clock::Shared(*region.clock());
    let config = config(algorithm, &[(900, HOUR), (500, 2 * HOUR), (700, 3 * HOUR)]);
    let limiter = Arc::new(Limiter::shared(config, clock, region).unwrap());
    let admitted: usize = (0..4)
        .map(|_| {
            let limiter = limiter.clone();
            std::thread::spawn(move || (0..300).filter(|_| limiter.allow("hot", 1)).count())
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .sum();
    println!("admitted={admitted}");
}

#[test]
fn processes_on_one_key_admit_exactly_the_tightest_rate() {
    let test_binary = std::env::current_exe().unwrap();
    for algorithm in AlgorithmKind::ALL {
        let dir = TempDir::new();
        let children: Vec<_> = (0..4)
            .map(|_| {
                std::process::Command::new(&test_binary)
                    .args([
                        "--exact",
                        "store::shm::rates::tests::child_hammers_one_key_with_several_rates",
                        "--ignored",
                        "--nocapture",
                        "--quiet",
                    ])
                    .env("RPRL_SHM_CHILD_DIR", &dir.0)
                    .env("RPRL_SHM_CHILD_ALGORITHM", algorithm.name())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let admitted: usize = children
            .into_iter()
            .map(|child| {
                let output = child.wait_with_output().unwrap();
                assert!(output.status.success());
                let text = String::from_utf8(output.stdout).unwrap();
                let line = text
                    .lines()
                    .find(|l| l.starts_with("admitted="))
                    .expect(&text);
                line["admitted=".len()..].parse::<usize>().unwrap()
            })
            .sum();
        assert_eq!(
            admitted, 500,
            "{algorithm}: 4 processes x 4 threads x 300 tries"
        );
    }
}
