//! Several rates over the shared table: against memory, under threads and processes, with
//! requests left half-applied by a dead process, and late helpers.

use std::sync::Arc;

use super::*;
use crate::algorithm::{AlgorithmKind, FixedWindow, PackedState, SlidingWindow, WordsState};
use crate::clock::{Clock, ManualClock};
use crate::config::LimiterConfig;
use crate::limiter::Limiter;
use crate::rate::{Rate, NANOS_PER_SECOND};
use crate::store::shm::open::open_table;
use crate::store::shm::test_dir::TempDir;
use crate::store::shm::test_hammer::{
    admitted_by_eight_threads, child_setting, four_children_admit, print_admitted_by_four_threads,
};
use crate::store::shm::test_rng::Rng;
use crate::store::shm::units::Gate;

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
    let words = crate::store::shm::SharedStore::words(&config);
    let region = open_table(&dir.0, name, Some(capacity), words).unwrap();
    Limiter::shared(config, Clock::Manual(clock.clone()), region).unwrap()
}

/// Two fixed windows (5 a 100 ns, 8 a 1000 ns) over a table of two rates made for `capacity`
/// keys, driven directly (no limiter).
fn windows_in(dir: &TempDir, name: &str, capacity: u64) -> TwoWindows {
    let region = open_table(&dir.0, name, Some(capacity), 2).unwrap();
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

type TwoWindows = RatesStore<FixedWindow, 2, 2, 7, 32>;

/// Installs a request of `cost` on `key` at `now` (as a decision would, once it has read the
/// key's states), applying it to no word: what an author killed just after leaves.
fn install<'a>(
    store: &'a TwoWindows,
    key: &[u8],
    now: u64,
    cost: u32,
) -> (&'a Slots<2, 7, 32>, Held, Control) {
    let tag = store.base.tag(key);
    let bucket = store.bucket(tag);
    let View::Held { held, control, .. } = store.view(bucket, tag, now) else {
        panic!("the key holds a slot");
    };
    let seq = next_seq(control.seq());
    let request = Control::request(held.ident.version, seq, now + store.bound, cost);
    assert!(bucket.update(held, control, request));
    (bucket, held, request)
}

/// Applies `request` to rate `i`'s word, as its author would.
fn apply_word(
    store: &TwoWindows,
    bucket: &Slots<2, 7, 32>,
    held: Held,
    request: Control,
    i: usize,
) {
    let now = request.expires_at() - store.bound;
    let (_, old) = read_rate_word(bucket.word(held, i).load());
    let next = store.rates[i]
        .decide(
            Some(PackedState::unpack(old)),
            now,
            u64::from(request.cost()),
        )
        .1
        .unwrap();
    let word = bucket.word(held, i);
    assert!(word.swap(word.load(), rate_word(request.seq(), next.pack())));
}

/// Runs 400 random steps (decide, peek, preview, reset, the clock moving) on `config` in
/// memory and over the shared table, asserting every answer and the counts agree. Costs are
/// mostly 1, else up to `most`.
fn compare_with_memory(dir: &TempDir, name: &str, config: LimiterConfig, rng: &mut Rng, most: u64) {
    let longest = config.rates.iter().map(|r| r.period_ns).max().unwrap();
    let clock = ManualClock::new(START);
    let memory = Limiter::new(config.clone(), Clock::Manual(clock.clone())).unwrap();
    let context = format!("{name} {:?}", config.rates);
    let shm = shared(dir, name, 1000, config, &clock);
    for step in 0..400 {
        let key = format!("k{}", rng.below(6));
        let context = format!("{context} step {step}");
        let cost = if rng.below(5) == 0 {
            rng.below(most + 1)
        } else {
            1
        };
        match rng.below(10) {
            0 => {
                clock.advance_ns(rng.below(longest * 2)).unwrap();
            }
            1 => assert_eq!(shm.peek(&key), memory.peek(&key), "peek: {context}"),
            2 => assert_eq!(
                shm.preview(&key, cost),
                memory.preview(&key, cost),
                "preview: {context}"
            ),
            3 if rng.below(4) == 0 => {
                shm.reset(&key);
                memory.reset(&key);
            }
            _ => assert_eq!(
                shm.decide(&key, cost),
                memory.decide(&key, cost),
                "decide: {context}"
            ),
        }
    }
    let (s, m) = (shm.stats(), memory.stats());
    assert_eq!((s.allowed, s.blocked), (m.allowed, m.blocked), "{context}");
    shm.check_shared_table().unwrap().unwrap();
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
            let name = format!("model-{seed}-{algorithm}");
            compare_with_memory(&dir, &name, config(algorithm, &rates), &mut rng, 21);
        }
    }
}

#[test]
fn sliding_windows_counting_past_65535_decide_as_in_memory_on_random_sequences() {
    let dir = TempDir::new();
    for seed in 1..=40u64 {
        let mut rng = Rng(seed * 7_727);
        let count = 1 + rng.below(4) as usize;
        // the first past 65,535 (so all take two words), the others any size
        let rates: Vec<(u64, u64)> = (0..count)
            .map(|i| {
                let limit = if i == 0 { 65_536 } else { 1_000 } + rng.below(200_000);
                (limit, 1 + rng.below(5 * NANOS_PER_SECOND))
            })
            .collect();
        let name = format!("wide-{seed}");
        let config = config(AlgorithmKind::Sliding, &rates);
        assert_eq!(
            crate::store::shm::SharedStore::words(&config),
            2 * count as u32
        );
        compare_with_memory(&dir, &name, config, &mut rng, 40_000);
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
            let admitted = admitted_by_eight_threads(&limiter);
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
        let store = windows_in(&dir, &format!("dead-{applied}"), 100);
        let now = 10;
        assert!(store.decide(b"k", 1, now).allowed);
        // A process installs a request of cost 2, then dies part-way through applying it.
        let (bucket, held, request) = install(&store, b"k", now, 2);
        for i in 0..applied {
            apply_word(&store, bucket, held, request, i);
        }
        // The next visitor applies it (once) before deciding: 1 + 2 of the 5 and of the 8.
        let peek = store.peek(b"k", now);
        assert_eq!(peek.remaining, 2, "applied {applied}");
        for i in 0..2 {
            assert_eq!(read_rate_word(bucket.word(held, i).load()).0, request.seq());
        }
        // Two rates' slots are 64 bytes, each in one cache line: identity, control, words.
        assert_eq!(bucket.word(held, 0) as *const _ as usize % 64, 32);
        assert_eq!(store.decide(b"k", 1, now).remaining, 1);
        assert!(store.decide(b"k", 1, now).allowed);
        assert!(!store.decide(b"k", 1, now).allowed, "5 of the short window");
        // A late helper of the old request changes nothing.
        store.apply(bucket, held, request);
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
    let store = windows_in(&dir, "late", 100);
    let now = 10;
    assert!(store.decide(b"k", 1, now).allowed);
    let (bucket, held, stale) = install(&store, b"k", now, 1);
    // The request the late helper read is installed and applied by its author...
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
    let store = windows_in(&dir, "reset", 100);
    let now = 10;
    for _ in 0..3 {
        assert!(store.decide(b"k", 1, now).allowed);
    }
    // The first rate gets the request, then the key is reset, then the rest is applied late.
    let (bucket, held, request) = install(&store, b"k", now, 1);
    apply_word(&store, bucket, held, request, 0);
    assert!(store.reset(b"k", now));
    store.apply(bucket, held, request);
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
    let Some((dir, algorithm)) = child_setting() else {
        return;
    };
    let region = open_table(&dir, "procs", Some(1000), 3).unwrap();
    let clock = Clock::Shared(*region.clock());
    let config = config(algorithm, &[(900, HOUR), (500, 2 * HOUR), (700, 3 * HOUR)]);
    print_admitted_by_four_threads(Limiter::shared(config, clock, region).unwrap());
}

#[test]
fn processes_on_one_key_admit_exactly_the_tightest_rate() {
    four_children_admit(
        "store::shm::rates::tests::child_hammers_one_key_with_several_rates",
        500,
    );
}

// ---------- membership changes at a version the control's 8-bit check cannot tell apart

/// Two fixed windows (5 a 100 ns, 8 a 1000 ns) over a table of one bucket of 7 slots.
fn one_bucket(dir: &TempDir, name: &str) -> TwoWindows {
    windows_in(dir, name, 5)
}

/// Runs `f` on another thread: its result, or None when it has not returned in 5 s (the
/// thread is then left spinning).
fn returns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(5)).ok()
}

#[test]
fn a_change_at_a_version_256_past_the_holders_leaves_no_stale_reset_spinning_its_lookups() {
    let dir = TempDir::new();
    let store = Arc::new(one_bucket(&dir, "stale-reset"));
    let tag = store.base.tag(b"k");
    let bucket = store.bucket(tag);
    let absent = store.base.tag(b"nobody");
    let gate_version = |now| match bucket.lookup(absent, now) {
        Lookup::Absent { gate } => Gate::decode(gate).version,
        Lookup::Held { .. } => panic!("nobody holds no slot"),
    };
    // k counts at 10 (live until 1010) and holds its slot at version v
    assert!(store.decide(b"k", 1, 10).allowed);
    let Lookup::Held { held, .. } = bucket.lookup(tag, 10) else {
        panic!("k holds a slot");
    };
    let v = held.ident.version;
    // five keys live until 1500, then keys come and go in the last free slot until the
    // bucket's version is v - 2 (mod 256), and one more stays (live until 1500): the next
    // change is at v + 256 (mod 256: k's own version, as the control's check sees it)
    for i in 0..5 {
        assert!(store.decide(format!("live{i}").as_bytes(), 1, 500).allowed);
    }
    let mut churn = 0;
    while (gate_version(500) + 2) % 256 != v % 256 {
        let key = format!("churn{churn}");
        assert!(store.decide(key.as_bytes(), 1, 500).allowed);
        assert!(store.reset(key.as_bytes(), 500));
        churn += 1;
    }
    assert!(store.decide(b"last", 1, 500).allowed);
    let now = 1200;
    // A reset of k (or a clear) reads k's slot, and stalls before its swap.
    let Lookup::Held { held, cell } = bucket.lookup(tag, now) else {
        panic!("k holds a slot");
    };
    assert!(cell.is_present());
    // A new key claims k's expired slot, the only free one.
    let new = store.base.tag(b"new");
    let Lookup::Absent { gate } = bucket.lookup(new, now) else {
        panic!("new holds no slot");
    };
    bucket.claim(new, gate, now, OnFull::Reject);
    // The reset resumes: it empties the control it read, for the version it read.
    bucket.update(held, cell, cell.emptied(held.ident.version));
    // k's next call returns, and every slot's control is its holder's.
    let shared = store.clone();
    let peek = returns(move || shared.peek(b"k", now));
    assert!(
        peek.is_some(),
        "k's lookup spins: its control is emptied for a version its slot no longer has"
    );
    store.check_table(now).unwrap();
    assert_eq!(store.peek(b"k", now).remaining, 5);
    assert!(store.decide(b"new", 1, now).allowed);
}

// ---------- a fuzz of killed authors, stalled deciders and resets, and late helpers

/// A request read (`view`) by a decider that then stalls before installing it.
struct StaleDecide<S> {
    key: usize,
    held: Held,
    control: Control,
    states: [Option<S>; 2],
    now: u64,
    cost: u64,
}

/// The key's states as a store that never loses one keeps them: decisions on them are what
/// the shared table must give (an expired state decides as no state).
type Model<S> = std::collections::HashMap<usize, [Option<S>; 2]>;

/// Takes `request` (already installed) and applies it to the first `words` rates' words
/// only, as an author killed part-way would.
fn apply_part<A>(store: &RatesStore<A, 2, 2, 7, 32>, held: Held, request: Control, words: usize)
where
    A: Algorithm + Lifetime,
    A::State: PackedState,
{
    let bucket = &store.base.table::<Control, 2, 7, 32>().buckets()[0];
    let now = request.expires_at() - store.bound;
    for (i, rate) in store.rates.iter().enumerate().take(words) {
        let word = bucket.word(held, i);
        let current = word.load();
        let (stamp, state) = read_rate_word(current);
        if stamp == request.seq() || bucket.cell(held) != request {
            continue;
        }
        let old = (next_seq(stamp) == request.seq()).then(|| PackedState::unpack(state));
        let next = rate.decide(old, now, u64::from(request.cost())).1.unwrap();
        word.swap(current, rate_word(request.seq(), next.pack()));
    }
}

fn model_decide<A: Algorithm>(
    rates: &[A; 2],
    model: &mut Model<A::State>,
    key: usize,
    cost: u64,
    now: u64,
) -> Decision {
    let states = model.get(&key).copied().unwrap_or([None; 2]);
    let decisions: Vec<_> = rates
        .iter()
        .zip(states)
        .map(|(rate, state)| rate.decide(state, now, cost))
        .collect();
    let decision = decisions
        .iter()
        .map(|d| d.0)
        .reduce(Decision::most_restrictive)
        .unwrap();
    if decision.allowed {
        let next = [decisions[0].1, decisions[1].1];
        model.insert(key, next);
    }
    decision
}

fn model_peek<A: Algorithm>(
    rates: &[A; 2],
    model: &Model<A::State>,
    key: usize,
    now: u64,
) -> Decision {
    let states = model.get(&key).copied().unwrap_or([None; 2]);
    rates
        .iter()
        .zip(states)
        .map(|(rate, state)| rate.peek(state, now))
        .reduce(Decision::most_restrictive)
        .unwrap()
}

/// 16 keys over one bucket of 7 slots (so slots change hands as states expire), with authors
/// killed after installing their request, deciders and resets stalled between their read and
/// their swap, and late helpers of any request ever installed, each at random. After every
/// step every slot's words are its holder's, and every decision and peek is the one a store
/// that never loses a state gives.
fn fuzz_killed_and_stalled<A>(rates: [A; 2], name: &str, seeds: std::ops::Range<u64>)
where
    A: Algorithm + Lifetime + Clone,
    A::State: PackedState,
{
    let dir = TempDir::new();
    for seed in seeds {
        let region = open_table(&dir.0, &format!("{name}-{seed}"), Some(5), 2).unwrap();
        let store =
            RatesStore::<A, 2, 2, 7, 32>::new(rates.to_vec(), "fuzz", region, OnFull::Reject);
        let bucket = &store.base.table::<Control, 2, 7, 32>().buckets()[0];
        let mut rng = Rng(seed * 7919 + 1);
        let mut model: Model<A::State> = Model::new();
        let mut stale_decides: Vec<StaleDecide<A::State>> = vec![];
        let mut stale_resets: Vec<(usize, Held, Control)> = vec![];
        let mut installed: Vec<(Held, Control)> = vec![];
        let mut now = START;
        let key_name = |k: usize| format!("key{k}");
        for step in 0..5000 {
            let context = format!("{name} seed {seed} step {step}");
            if let Err(e) = store.check_table(now) {
                panic!("{context}: {e}");
            }
            now += rng.below(store.bound / 4 + 1);
            let k = rng.below(16) as usize;
            let key = key_name(k);
            let tag = store.base.tag(key.as_bytes());
            match rng.below(14) {
                0..=3 => {
                    let cost = rng.below(3);
                    let full = store.stats(now).rejected_full;
                    let got = store.decide(key.as_bytes(), cost, now);
                    if store.stats(now).rejected_full == full {
                        let want = model_decide(&store.rates, &mut model, k, cost, now);
                        assert_eq!(got, want, "decide: {context}");
                    }
                }
                4 => {
                    let want = model_peek(&store.rates, &model, k, now);
                    assert_eq!(store.peek(key.as_bytes(), now), want, "peek: {context}");
                }
                5 | 6 => {
                    // a decider reads the key's states; it installs now (and is killed after
                    // applying part of it), or stalls
                    let View::Held {
                        held,
                        control,
                        states,
                        ..
                    } = store.view(bucket, tag, now)
                    else {
                        continue;
                    };
                    let cost = 1 + rng.below(2);
                    let stale = StaleDecide {
                        key: k,
                        held,
                        control,
                        states,
                        now,
                        cost,
                    };
                    stale_decides.push(stale);
                    if rng.below(2) == 0 {
                        let i = stale_decides.len() - 1;
                        resume_decide(
                            &store,
                            &mut model,
                            &mut installed,
                            stale_decides.swap_remove(i),
                            &mut rng,
                            &context,
                        );
                    }
                }
                7 if !stale_decides.is_empty() => {
                    let i = rng.below(stale_decides.len() as u64) as usize;
                    let stale = stale_decides.swap_remove(i);
                    resume_decide(
                        &store,
                        &mut model,
                        &mut installed,
                        stale,
                        &mut rng,
                        &context,
                    );
                }
                8 => {
                    if let Lookup::Held { held, cell } = bucket.lookup(tag, now) {
                        stale_resets.push((k, held, cell));
                    }
                }
                9 if !stale_resets.is_empty() => {
                    let i = rng.below(stale_resets.len() as u64) as usize;
                    let (k, held, cell) = stale_resets.swap_remove(i);
                    // the rest of `reset`: the swap from what its lookup read
                    if cell.is_present()
                        && bucket.update(held, cell, cell.emptied(held.ident.version))
                    {
                        model.remove(&k);
                    }
                }
                10 if !installed.is_empty() => {
                    // a late helper of any request ever installed
                    let (held, request) = installed[rng.below(installed.len() as u64) as usize];
                    store.apply(bucket, held, request);
                }
                11 => {
                    store.reset(key.as_bytes(), now);
                    model.remove(&k);
                }
                12 if rng.below(20) == 0 => {
                    store.clear(now);
                    model.clear();
                }
                _ => {
                    let cost = rng.below(3);
                    let want = {
                        let mut copy = model.clone();
                        model_decide(&store.rates, &mut copy, k, cost, now)
                    };
                    let got = store.preview(key.as_bytes(), cost, now);
                    // (a full bucket's refusal of a new key is the only difference allowed)
                    if got != Decision::no_room(store.primary()) || !want.allowed {
                        assert_eq!(got, want, "preview: {context}");
                    }
                }
            }
        }
    }
}

/// The rest of a decision that read `stale` (maybe long ago): install its request if the
/// control is still the one it read, then apply all, part (killed) or none of it.
fn resume_decide<A>(
    store: &RatesStore<A, 2, 2, 7, 32>,
    model: &mut Model<A::State>,
    installed: &mut Vec<(Held, Control)>,
    stale: StaleDecide<A::State>,
    rng: &mut Rng,
    context: &str,
) where
    A: Algorithm + Lifetime,
    A::State: PackedState,
{
    let bucket = &store.base.table::<Control, 2, 7, 32>().buckets()[0];
    let decision = store.evaluate(&stale.states, stale.now, stale.cost);
    if !decision.allowed {
        return;
    }
    let request = Control::request(
        stale.held.ident.version,
        next_seq(stale.control.seq()),
        stale.now + store.bound,
        stale.cost as u32,
    );
    if !bucket.update(stale.held, stale.control, request) {
        return;
    }
    // It takes effect here: on the states the model has had since the decider read them.
    let want = model_decide(&store.rates, model, stale.key, stale.cost, stale.now);
    assert!(
        want.allowed,
        "installed a request the model refuses: {context}"
    );
    installed.push((stale.held, request));
    match rng.below(3) {
        0 => store.apply(bucket, stale.held, request),
        words => apply_part(store, stale.held, request, words as usize - 1),
    }
}

#[test]
fn killed_authors_stalled_deciders_and_resets_and_late_helpers_at_random_lose_nothing() {
    let second = NANOS_PER_SECOND;
    let (short, long) = (
        Rate {
            limit: 3,
            period_ns: second,
        },
        Rate {
            limit: 7,
            period_ns: 5 * second,
        },
    );
    fuzz_killed_and_stalled(
        [FixedWindow::new(short), FixedWindow::new(long)],
        "fixed",
        1..20,
    );
    fuzz_killed_and_stalled(
        [
            SlidingWindow::<u16>::new(short),
            SlidingWindow::<u16>::new(long),
        ],
        "sliding",
        1..20,
    );
    fuzz_killed_and_stalled(
        [
            crate::algorithm::Bucket::new(short, 3).unwrap(),
            crate::algorithm::Bucket::new(long, 7).unwrap(),
        ],
        "gcra",
        1..20,
    );
}

#[test]
fn a_wide_sliding_window_left_half_written_by_a_dead_author_is_finished_as_memory_decides() {
    // A sliding window counting past 65,535 keeps its state in two words: a helper that finds
    // the first written and the second not must take the second from its old value alone.
    let dir = TempDir::new();
    for seed in 1..=20u64 {
        let mut rng = Rng(seed * 31_337);
        let limit = 65_536 + rng.below(100_000);
        let window = 1_000 + rng.below(1_000_000);
        let rate = Rate {
            limit,
            period_ns: window,
        };
        let region = open_table(&dir.0, &format!("wide-dead-{seed}"), Some(100), 2).unwrap();
        let store = RatesStore::<SlidingWindow<u32>, 1, 2, 7, 32>::new(
            vec![SlidingWindow::new(rate)],
            "wide",
            region,
            OnFull::Reject,
        );
        let clock = ManualClock::new(START);
        let memory = Limiter::new(
            config(AlgorithmKind::Sliding, &[(limit, window)]),
            Clock::Manual(clock.clone()),
        )
        .unwrap();
        let mut now = START;
        let mut dead = 0;
        for step in 0..300 {
            let context = format!("seed {seed} step {step}");
            let delta = rng.below(window / 2);
            now += delta;
            clock.advance_ns(delta).unwrap();
            let cost = 1 + rng.below(limit / 3);
            let tag = store.base.tag(b"k");
            let bucket = store.bucket(tag);
            let view = store.view(bucket, tag, now);
            match view {
                View::Held {
                    held,
                    control,
                    words,
                    states,
                } if rng.below(2) == 0 => {
                    // an author installs, writes `written` of the two words, and dies
                    let (decision, next) = store.rates[0].decide(states[0], now, cost);
                    assert_eq!(decision, memory.decide("k", cost), "{context}");
                    let Some(next) = next else { continue };
                    let seq = next_seq(control.seq());
                    let request =
                        Control::request(held.ident.version, seq, now + store.bound, cost as u32);
                    assert!(bucket.update(held, control, request));
                    let written = rng.below(2) as usize;
                    for (j, new) in next.to_words().iter().enumerate().take(written) {
                        bucket.word(held, j).swap(words[j], rate_word(seq, *new));
                    }
                    dead += 1;
                }
                _ => assert_eq!(
                    store.decide(b"k", cost, now),
                    memory.decide("k", cost),
                    "{context}"
                ),
            }
            assert_eq!(store.peek(b"k", now), memory.peek("k"), "peek: {context}");
        }
        assert!(dead > 50, "{dead} dead authors");
        store.check_table(now).unwrap();
    }
}
