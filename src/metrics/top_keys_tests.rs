//! Space-Saving's guarantees on streams with known heavy hitters.

use std::collections::HashMap;
use std::hash::BuildHasher;

use super::*;

/// xorshift64*, so a failure names its seed.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

fn hash(key: &[u8]) -> u64 {
    foldhash::fast::FixedState::with_seed(7).hash_one(key)
}

/// The guarantees against the true counts of the stream recorded.
fn check(sketch: &TopKeys, truth: &HashMap<Vec<u8>, u64>, context: &str) {
    let total: u64 = truth.values().sum();
    assert_eq!(sketch.total(), total, "{context}");
    let bound = total / sketch.capacity() as u64;
    let monitored = sketch.top(usize::MAX);
    assert!(monitored.len() <= sketch.capacity(), "{context}");
    for counted in &monitored {
        let real = truth.get(&*counted.key).copied().unwrap_or(0);
        assert!(
            counted.count >= real,
            "{context}: {counted:?} under its true {real}"
        );
        assert!(
            counted.count - counted.error <= real,
            "{context}: {counted:?} vs {real}"
        );
        assert!(
            counted.error <= bound,
            "{context}: {counted:?} error above {bound}"
        );
    }
    for (key, &real) in truth {
        if real > bound {
            assert!(
                monitored.iter().any(|c| &*c.key == key.as_slice()),
                "{context}: key {key:?} seen {real} > {bound} times is missing"
            );
        }
    }
}

#[test]
fn heavy_hitters_are_found_with_counts_within_the_bound() {
    for seed in 1..=60u64 {
        let mut rng = seed * 104_729;
        // Small sketches scan their hashes, large ones index them (seed % 3 == 0).
        let capacity = if seed % 3 == 0 {
            65 + (next(&mut rng) % 100) as usize
        } else {
            1 + (next(&mut rng) % 20) as usize
        };
        let heavy = 1 + next(&mut rng) % 5;
        let mut sketch = TopKeys::new(capacity);
        let mut truth: HashMap<Vec<u8>, u64> = HashMap::new();
        for step in 0..5_000 {
            // Half the stream from a few heavy keys, the rest spread over many.
            let key = if next(&mut rng) % 2 == 0 {
                format!("heavy:{}", next(&mut rng) % heavy)
            } else {
                format!("tail:{}", next(&mut rng) % 3_000)
            };
            let weight = 1 + next(&mut rng) % 3;
            sketch.record(hash(key.as_bytes()), key.as_bytes(), weight);
            *truth.entry(key.into_bytes()).or_default() += weight;
            if step % 997 == 0 {
                check(&sketch, &truth, &format!("seed {seed} step {step}"));
            }
        }
        check(&sketch, &truth, &format!("seed {seed} end"));
        // A heavy key whose true count passes every tail key's largest possible count (its
        // true count plus the bound) ranks above them all.
        let bound = sketch.total() / capacity as u64;
        let tail_most = truth
            .iter()
            .filter(|(k, _)| k.starts_with(b"tail:"))
            .map(|(_, &n)| n)
            .max()
            .unwrap_or(0);
        let top = sketch.top(heavy as usize);
        for (key, &real) in truth.iter().filter(|(k, _)| k.starts_with(b"heavy:")) {
            if real > tail_most + bound {
                assert!(
                    top.iter().any(|c| &*c.key == key.as_slice()),
                    "seed {seed}: {key:?} ({real}) not among the top {heavy}: {top:?}"
                );
            }
        }
    }
}

#[test]
fn keys_are_told_apart_by_their_hash() {
    for capacity in [4, 100] {
        let mut sketch = TopKeys::new(capacity);
        for _ in 0..3 {
            sketch.record(hash(b"a"), b"a", 1);
        }
        sketch.record(hash(b"b"), b"b", 1);
        // The same hash is the same key (a 64-bit collision of the seeded hash), named by
        // the first key that had it.
        sketch.record(hash(b"a"), b"also a", 2);
        let top = sketch.top(10);
        assert_eq!(top.len(), 2, "{capacity}");
        assert_eq!((&*top[0].key, top[0].count), (&b"a"[..], 5));
        assert_eq!((&*top[1].key, top[1].count), (&b"b"[..], 1));
    }
}

#[test]
fn a_full_sketch_gives_the_smallest_place_away_and_reset_empties_it() {
    let mut sketch = TopKeys::new(2);
    for (key, times) in [(&b"a"[..], 5), (b"b", 2), (b"c", 1)] {
        for _ in 0..times {
            sketch.record(hash(key), key, 1);
        }
    }
    let top = sketch.top(2);
    assert_eq!(&*top[0].key, b"a");
    assert_eq!(
        top[1],
        Counted {
            key: (*b"c").into(),
            count: 3,
            error: 2
        },
        "c took b's place, inheriting its count as error"
    );
    sketch.reset();
    assert!(sketch.top(10).is_empty());
    assert_eq!(sketch.total(), 0);
    assert_eq!(sketch.capacity(), 2);
}
