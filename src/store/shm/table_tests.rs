//! The membership protocol: changes left half-done by a dead process, late helpers, old
//! holders reviving their slot, and racing claims.

use std::sync::{Arc, Barrier};

use super::*;
use crate::store::shm::units::{expiry_code, Cell, Gate, Ident, Intent};

/// A zeroed bucket on the heap (as in a new region).
fn bucket() -> Box<Bucket> {
    // SAFETY: a bucket is plain atomics, for which all-zero is a valid value.
    unsafe { Box::new(std::mem::zeroed()) }
}

/// Writes a fixed window of count 1 starting at `now`, living `lifetime` ns, as the key's
/// update of the cell `lookup` read.
fn count_one(b: &Bucket, held: Held, cell: Cell, now: u64, lifetime: u64) -> bool {
    let state = [now as u32, (now >> 32) as u32, 1];
    b.update(
        held,
        cell,
        Cell::with_state(held.ident.version, expiry_code(lifetime), state),
    )
}

/// Gives `slot` to `tag` at `version` with a fixed-window state `[start, count]` living 100 ns.
fn hold(b: &Bucket, slot: usize, tag: u64, version: u64, start: u64, count: u32) {
    let s = &b.slots[slot];
    s.ident
        .swap(s.ident.load(), Ident { tag, version }.encode());
    let state = [start as u32, (start >> 32) as u32, count];
    s.cell.swap(
        s.cell.load(),
        Cell::with_state(version, expiry_code(100), state).0,
    );
}

fn set_gate(b: &Bucket, gate: Gate) -> u128 {
    let word = gate.encode();
    b.gate.swap(b.gate.load(), word);
    word
}

fn fill(b: &Bucket, start: u64) {
    for slot in 0..SLOTS {
        hold(b, slot, 100 + slot as u64, slot as u64 + 1, start, 1);
    }
    set_gate(
        b,
        Gate {
            version: SLOTS as u64,
            intent: None,
        },
    );
}

#[test]
fn a_change_left_at_any_step_by_a_dead_process_is_finished_by_the_next_visitor() {
    // slot 3 held an expired state of tag 103; tag 7 was being given slot 3 at version 16
    for step in 0..3 {
        let b = bucket();
        fill(&b, 0);
        let now = 1_000;
        let intent = set_gate(
            &b,
            Gate {
                version: 16,
                intent: Some(Intent {
                    slot: 3,
                    evict: false,
                    tag: 7,
                }),
            },
        );
        let s = &b.slots[3];
        if step >= 1 {
            // (b) done: the cell emptied for version 16
            s.cell.swap(s.cell.load(), Cell::empty(16).0);
        }
        if step >= 2 {
            // (a) done: the slot is tag 7's; only the gate was left open
            s.ident.swap(
                s.ident.load(),
                Ident {
                    tag: 7,
                    version: 16,
                }
                .encode(),
            );
        }
        assert!(Gate::decode(b.gate.load()).intent.is_some());
        match b.lookup(7, now) {
            Lookup::Held { held, cell } => {
                assert_eq!(held.slot, 3, "step {step}");
                assert_eq!(cell, Cell::empty(16), "step {step}");
            }
            other => panic!("step {step}: {other:?}"),
        }
        assert!(matches!(b.lookup(103, now), Lookup::Absent { .. }));
        b.check(now).unwrap();
        // A helper that read the change long ago and resumes now changes nothing.
        b.finish(intent, now);
        assert!(matches!(b.lookup(7, now), Lookup::Held { held, .. } if held.slot == 3));
        b.check(now).unwrap();
    }
}

#[test]
fn a_late_helper_does_not_give_a_slot_back_after_it_changed_hands_again() {
    let b = bucket();
    fill(&b, 0);
    let first = set_gate(
        &b,
        Gate {
            version: 16,
            intent: Some(Intent {
                slot: 3,
                evict: false,
                tag: 7,
            }),
        },
    );
    b.finish(first, 1_000);
    // the slot expires again and goes to tag 8 at version 17
    let Lookup::Absent { gate } = b.lookup(8, 10_000) else {
        panic!()
    };
    // make every other slot live, so 8 can only take slot 3
    for slot in (0..SLOTS).filter(|s| *s != 3) {
        hold(&b, slot, 100 + slot as u64, slot as u64 + 1, 10_000, 1);
    }
    assert_eq!(b.claim(8, gate, 10_000, OnFull::Reject), Claim::Retry);
    assert!(matches!(b.lookup(8, 10_000), Lookup::Held { held, .. } if held.slot == 3));
    b.finish(first, 10_000);
    assert!(matches!(b.lookup(8, 10_000), Lookup::Held { held, .. } if held.slot == 3));
    assert!(matches!(b.lookup(7, 10_000), Lookup::Absent { .. }));
    b.check(10_000).unwrap();
}

#[test]
fn an_old_holder_that_uses_its_slot_again_before_the_change_keeps_it() {
    // 103's state has expired; a claim for 7 announces slot 3; 103 writes a fresh window
    // before anyone carries the claim out (see `dropped_change`)
    let b = bucket();
    dropped_change(&b, 1_000);
    assert!(matches!(b.lookup(103, 1_000), Lookup::Held { held, .. } if held.slot == 3));
    assert!(
        matches!(b.lookup(7, 1_000), Lookup::Absent { .. }),
        "the claim was dropped"
    );
}

#[test]
fn racing_claims_with_churn_never_put_a_key_in_two_slots() {
    let b: Arc<Bucket> = Arc::from(bucket());
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads as u64)
        .map(|t| {
            let (b, barrier) = (b.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut now = 0u64;
                let mut x = t + 1;
                for _ in 0..20_000 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let tag = 1 + (x >> 33) % 40;
                    now += (x >> 60) % 3;
                    loop {
                        match b.lookup(tag, now) {
                            Lookup::Held { held, cell } => {
                                if count_one(&b, held, cell, now, 50) {
                                    break;
                                }
                            }
                            Lookup::Absent { gate } => {
                                let on_full = if t % 2 == 0 {
                                    OnFull::Evict
                                } else {
                                    OnFull::Reject
                                };
                                if b.claim(tag, gate, now, on_full) == Claim::Full {
                                    break;
                                }
                            }
                        }
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    b.check(u64::MAX / 2).unwrap();
}

#[test]
fn a_helper_that_read_the_old_identity_and_stalled_does_not_wipe_the_new_holders_state() {
    let b = bucket();
    let now = 1_000;
    let Lookup::Absent { gate } = b.lookup(7, now) else {
        panic!()
    };
    let intent = Gate {
        version: 1,
        intent: Some(Intent {
            slot: 0,
            evict: false,
            tag: 7,
        }),
    }
    .encode();
    assert!(b.gate.swap(gate, intent));
    // helper A reads the slot's identity (never used) ... and stalls
    let stale = b.slots[0].ident.load();
    // meanwhile the change is carried out, and tag 7 counts a request
    b.finish(intent, now);
    let Lookup::Held { held, cell } = b.lookup(7, now) else {
        panic!()
    };
    let counted = Cell::with_state(held.ident.version, expiry_code(100), [now as u32, 0, 1]);
    assert!(b.update(held, cell, counted));
    // A resumes with the identity it read before
    let target = Ident { tag: 7, version: 1 };
    let mut ident = stale;
    while b.step(&b.slots[0], ident, target, false, now) {
        ident = b.slots[0].ident.load();
    }
    assert_eq!(Cell(b.slots[0].cell.load()), counted, "the count survives");
    b.check(now).unwrap();
}

#[test]
fn a_new_key_takes_the_slot_that_expired_longest_ago_not_one_just_expired() {
    let b = bucket();
    fill(&b, 0);
    // every state has expired by 1_000; slot 5's most recently (its anchor is latest)
    for slot in 0..SLOTS {
        hold(
            &b,
            slot,
            100 + slot as u64,
            slot as u64 + 1,
            if slot == 9 { 0 } else { 500 },
            1,
        );
    }
    let Lookup::Absent { gate } = b.lookup(7, 1_000) else {
        panic!()
    };
    assert_eq!(b.claim(7, gate, 1_000, OnFull::Reject), Claim::Retry);
    assert!(matches!(b.lookup(7, 1_000), Lookup::Held { held, .. } if held.slot == 9));
}

// -------------------- dropped changes and late helpers (found by a review of the protocol)

/// Slot 3 holds tag 103 (version 4) with a state expired at 1_000; every other slot is live
/// until 1_128. A claim for tag 7 announces slot 3 at version 16, and 103 revives its slot
/// before anyone carries the claim out, so the change is dropped. Returns the intent word.
fn dropped_change(b: &Bucket, now: u64) -> u128 {
    crate::store::shm::units::lock_free();
    fill(b, 0);
    for slot in (0..SLOTS).filter(|s| *s != 3) {
        hold(b, slot, 100 + slot as u64, slot as u64 + 1, now, 1);
    }
    let Lookup::Held { held, cell } = b.lookup(103, now) else {
        panic!()
    };
    assert_eq!(held.ident.version, 4);
    let Lookup::Absent { gate } = b.lookup(7, now) else {
        panic!()
    };
    let intent = Gate {
        version: 16,
        intent: Some(Intent {
            slot: 3,
            evict: false,
            tag: 7,
        }),
    }
    .encode();
    // the claim's author swaps the gate (claim() would then call finish(intent)); helper L
    // (the author itself, or any lookup that read the gate now) holds `intent` and stalls
    assert!(b.gate.swap(gate, intent));
    // 103 revives its slot: a fresh window, live until 1_128
    let revived = Cell::with_state(held.ident.version, expiry_code(100), [now as u32, 0, 1]);
    assert!(b.update(held, cell, revived));
    // helper D carries the change out: it sees the revived state and drops it, closing the gate
    b.finish(intent, now);
    assert!(Gate::decode(b.gate.load()).intent.is_none());
    b.check(now).unwrap();
    intent
}

#[test]
fn a_late_helper_of_a_dropped_change_does_not_put_a_key_in_two_slots() {
    let b = bucket();
    let now = 1_000;
    let intent = dropped_change(&b, now);
    // 7 is absent: it claims again and (evicting) gets slot 0 at version 17
    let Lookup::Absent { gate } = b.lookup(7, now) else {
        panic!()
    };
    assert_eq!(b.claim(7, gate, now, OnFull::Evict), Claim::Evicted);
    assert!(matches!(b.lookup(7, now), Lookup::Held { held, .. } if held.slot == 0));
    b.check(now).unwrap();
    // L resumes. Its `now` is later than D's (it read the clock after D did; or 103 simply
    // reset its key here, which makes the cell empty(4) and reusable at any now)
    b.finish(intent, 2_000);
    let slots: Vec<usize> = (0..SLOTS)
        .filter(|&i| Ident::decode(b.slots[i].ident.load()).tag == 7)
        .collect();
    assert_eq!(slots, vec![0], "FIXED: tag 7 holds one slot");
    b.check(2_000).unwrap();
}

#[test]
fn a_late_helper_of_a_dropped_change_does_not_take_the_slot_after_a_reset() {
    let b = bucket();
    let now = 1_000;
    let intent = dropped_change(&b, now);
    // 103 resets its key: its cell is empty(4) again, reusable at any now
    assert!(b.reset(103, now));
    // L resumes with the very same `now` as everyone: the slot goes to 7, which nobody asked for
    b.finish(intent, now);
    assert!(matches!(b.lookup(7, now), Lookup::Absent { .. }), "FIXED");
    assert!(matches!(b.lookup(103, now), Lookup::Held { held, .. } if held.slot == 3));
    b.check(now).unwrap();
}

#[test]
fn a_late_helper_killed_between_its_two_steps_leaves_no_lookup_spinning() {
    let b: Arc<Bucket> = Arc::from(bucket());
    let now = 1_000;
    let intent = dropped_change(&b, now);
    let _ = intent;
    // L resumes with a later now and does (b) only, then is SIGKILLed (or SIGSTOPped)
    let s = &b.slots[3];
    let target = Ident {
        tag: 7,
        version: 16,
    };
    assert!(
        !b.step(s, s.ident.load(), target, false, 2_000),
        "FIXED: inert"
    );
    assert!(
        Gate::decode(b.gate.load()).intent.is_none(),
        "the gate is closed"
    );
    // 103's next call never returns: its slot's cell is not its own and no change is pending
    let (tx, rx) = std::sync::mpsc::channel();
    let b2 = b.clone();
    std::thread::spawn(move || {
        let r = b2.lookup(103, 2_000);
        let _ = tx.send(format!("{r:?}"));
    });
    rx.recv_timeout(std::time::Duration::from_secs(2))
        .expect("FIXED: lookup returns");
    b.check(2_000).unwrap();
}

#[test]
fn late_and_killed_helpers_at_random_keep_every_invariant() {
    for seed in 1..20000u64 {
        let b = bucket();
        let mut x = seed;
        let mut rnd = |m: u64| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let mut intents: Vec<u128> = vec![];
        let mut stale: Vec<(Held, Cell)> = vec![];
        let mut now = 0u64;
        for i in 0..3000 {
            now += rnd(40);
            let op = rnd(12);
            let tag = 1 + 2 * rnd(24);
            // the state must be sane whenever a lookup is about to run
            if op <= 7 || op == 9 {
                if let Err(e) = b.check(now) {
                    panic!("seed {seed} op {i}: {e}");
                }
            }
            match op {
                0..=5 => loop {
                    match b.lookup(tag, now) {
                        Lookup::Held { held, cell } => {
                            if count_one(&b, held, cell, now, 64) {
                                break;
                            }
                        }
                        Lookup::Absent { gate } => {
                            // announce, then maybe die before finishing
                            let g = Gate::decode(gate);
                            let mut best = None;
                            for (j, s) in b.slots.iter().enumerate() {
                                if reusable(Ident::decode(s.ident.load()), Cell(s.cell.load()), now)
                                {
                                    best = Some(j);
                                    break;
                                }
                            }
                            let (slot, evict) = match best {
                                Some(j) => (j, false),
                                None => (rnd(15) as usize, true),
                            };
                            let intent = Gate {
                                version: g.version + 1,
                                intent: Some(Intent { slot, evict, tag }),
                            }
                            .encode();
                            if b.gate.swap(gate, intent) {
                                intents.push(intent);
                                if rnd(2) == 0 {
                                    b.finish(intent, now);
                                }
                                // else: the author died; a revival may come first
                            }
                            break;
                        }
                    }
                },
                6 => {
                    b.reset(tag, now);
                }
                7 => {
                    if rnd(10) == 0 {
                        b.clear(now);
                    }
                }
                9 => {
                    if let Lookup::Held { held, cell } = b.lookup(tag, now) {
                        stale.push((held, cell));
                    }
                }
                10 => {
                    if !stale.is_empty() {
                        // a stalled updater resumes
                        let (held, cell) = stale.swap_remove(rnd(stale.len() as u64) as usize);
                        let next = Cell::with_state(
                            held.ident.version,
                            expiry_code(64),
                            [now as u32, (now >> 32) as u32, 1],
                        );
                        b.update(held, cell, next);
                    }
                }
                _ => {
                    if !intents.is_empty() {
                        // a late helper of any change ever announced, with a skewed now, killed
                        // after k steps
                        let intent = intents[rnd(intents.len() as u64) as usize];
                        let g = Gate::decode(intent);
                        let it = g.intent.unwrap();
                        let target = Ident {
                            tag: it.tag,
                            version: g.version,
                        };
                        let hnow = now.saturating_sub(200) + rnd(400);
                        let s = &b.slots[it.slot];
                        for _ in 0..rnd(4) {
                            if !b.step(s, s.ident.load(), target, it.evict, hnow) {
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn a_change_at_a_version_2_24_past_the_holders_leaves_no_stale_reset_spinning_its_lookups() {
    let b: Arc<Bucket> = Arc::from(bucket());
    crate::store::shm::units::lock_free();
    // every state expired at 128; slot 0 is tag 100's, at version 1
    fill(&b, 0);
    // the bucket's version is 2^24: the next change would be at 1 + 2^24, whose 24-bit check
    // is the one slot 0's state carries
    set_gate(
        &b,
        Gate {
            version: 1 << 24,
            intent: None,
        },
    );
    let now = 1_000;
    // a reset of 100 (or a clear) reads its slot, and stalls before its swap
    let Lookup::Held { held, cell } = b.lookup(100, now) else {
        panic!()
    };
    assert_eq!(held.slot, 0);
    // tag 7 claims slot 0, expired first
    let Lookup::Absent { gate } = b.lookup(7, now) else {
        panic!()
    };
    b.claim(7, gate, now, OnFull::Reject);
    // the reset resumes: it empties the cell it read, for the version it read
    b.update(held, cell, Cell::empty(held.ident.version));
    let (tx, rx) = std::sync::mpsc::channel();
    let b2 = b.clone();
    std::thread::spawn(move || {
        let r = b2.lookup(100, now);
        let _ = tx.send(format!("{r:?}"));
    });
    rx.recv_timeout(std::time::Duration::from_secs(5))
        .expect("100's lookup spins: its cell is emptied for a version its slot no longer has");
    b.check(now).unwrap();
    assert!(matches!(b.lookup(7, now), Lookup::Held { held, .. } if held.slot == 0));
}
