//! Tests of the common face (configuration, bounds, hostile input) and of both algorithms
//! against the simulated service of `simulation.rs`.

use super::simulation::{self, Scenario, SplitMix64};
use super::*;

const MS: u64 = 1_000_000;
const CAPACITIES: [u32; 7] = [4, 8, 16, 32, 64, 128, 256];

fn refused(config: &AdaptiveConfig) -> AdaptiveError {
    let error = config.validate().unwrap_err();
    assert_eq!(AdaptiveLimit::new(config.clone()).unwrap_err(), error);
    error
}

#[test]
fn defaults_are_valid_and_documented_values() {
    for kind in AdaptiveKind::ALL {
        let config = AdaptiveConfig::new(kind);
        config.validate().unwrap();
        assert_eq!(config.kind, kind);
        assert_eq!(
            (config.initial_limit, config.min_limit, config.max_limit),
            (20, 1, 1000)
        );
        assert_eq!(config.tolerance, 1.25);
        assert_eq!(config.probe_limit, 3);
    }
}

#[test]
fn kind_names_round_trip_and_unknown_names_are_refused() {
    for kind in AdaptiveKind::ALL {
        assert_eq!(AdaptiveKind::parse(kind.name()), Ok(kind));
    }
    for bad in ["", "Gradient", "vegas", "aimd "] {
        let error = AdaptiveKind::parse(bad).unwrap_err();
        assert_eq!(error.param, "adaptive");
        assert!(error.message.contains(&format!("{bad:?}")), "{error}");
        assert!(
            error.message.contains("\"gradient\" or \"aimd\""),
            "{error}"
        );
    }
}

#[test]
fn bad_limits_are_refused_naming_the_setting_and_value() {
    let base = AdaptiveConfig::new(AdaptiveKind::Gradient);
    type Change = fn(&mut AdaptiveConfig);
    let cases: [(Change, &str, &str); 6] = [
        (|c| c.min_limit = 0, "min_limit", "0"),
        (
            |c| c.min_limit = 1001,
            "min_limit",
            "1001 is above max_limit (1000)",
        ),
        (
            |c| c.initial_limit = 0,
            "initial_limit",
            "0 is outside [min_limit, max_limit] = [1, 1000]",
        ),
        (|c| c.initial_limit = 1001, "initial_limit", "1001"),
        (|c| c.window_samples = 0, "window_samples", "0"),
        (|c| c.probe_limit = 0, "probe_limit", "0"),
    ];
    for (change, param, text) in cases {
        let mut config = base.clone();
        change(&mut config);
        let error = refused(&config);
        assert_eq!(error.param, param, "{error}");
        assert!(error.to_string().contains(text), "{error}");
        assert!(error.to_string().starts_with(&format!("invalid `{param}`")));
    }
}

#[test]
fn bad_factors_are_refused_naming_the_setting_and_value() {
    let base = AdaptiveConfig::new(AdaptiveKind::Aimd);
    type Set = fn(&mut AdaptiveConfig, f64);
    let settings: [(Set, &str, &[f64]); 5] = [
        (|c, v| c.tolerance = v, "tolerance", &[0.99, 0.0, -1.0]),
        (|c, v| c.smoothing = v, "smoothing", &[0.0, -0.1, 1.01]),
        (|c, v| c.growth = v, "growth", &[0.0, -0.5, 2.0]),
        (|c, v| c.backoff = v, "backoff", &[0.0, 1.0, -0.5, 1.5]),
        (|c, v| c.increase = v, "increase", &[0.0, -1.0, 1e7]),
    ];
    for (set, param, bad_values) in settings {
        let always_bad = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        for &value in bad_values.iter().chain(&always_bad) {
            let mut config = base.clone();
            set(&mut config, value);
            let error = refused(&config);
            assert_eq!(error.param, param, "{value}: {error}");
            assert!(error.message.contains(&value.to_string()), "{error}");
        }
    }
}

#[test]
fn the_limit_is_held_at_the_probe_limit_until_the_no_load_latency_is_known() {
    let mut config = AdaptiveConfig::new(AdaptiveKind::Gradient);
    let mut limit = AdaptiveLimit::new(config.clone()).unwrap();
    assert_eq!(limit.limit(), 3);
    // Samples that started with more in flight (not clean) teach nothing.
    for i in 0..30 {
        limit.on_sample(Sample {
            now_ns: i * 5 * MS,
            rtt_ns: 10 * MS,
            in_flight: 4,
            dropped: false,
        });
    }
    assert_eq!((limit.limit(), limit.no_load_rtt_ns()), (3, None));
    // The probe limit is clamped to the bounds.
    config.min_limit = 5;
    assert_eq!(AdaptiveLimit::new(config.clone()).unwrap().limit(), 5);
    config.min_limit = 1;
    config.max_limit = 2;
    config.initial_limit = 2;
    assert_eq!(AdaptiveLimit::new(config).unwrap().limit(), 2);
}

#[test]
fn the_limit_leaves_the_probe_at_twice_what_was_used_then_grows_with_use() {
    for kind in AdaptiveKind::ALL {
        for (used, expected) in [(1, 3), (3, 6)] {
            let mut limit = AdaptiveLimit::new(AdaptiveConfig::new(kind)).unwrap();
            let mut now = 0;
            for _ in 0..10 {
                now += 5 * MS;
                limit.on_sample(Sample {
                    now_ns: now,
                    rtt_ns: 10 * MS,
                    in_flight: used,
                    dropped: false,
                });
            }
            assert_eq!(limit.no_load_rtt_ns(), Some(10 * MS), "{kind:?}");
            // not initial_limit (20): a limit above what was ever used says nothing of capacity
            // (AIMD's slow start may add one for the window's last, busy, on-time sample)
            let left = limit.limit();
            assert!(
                (expected..=expected + 1).contains(&left),
                "{kind:?} used {used}: {left}"
            );
            // busy and on time: it grows from there (2% a window for the gradient)
            for _ in 0..2_000 {
                now += 2 * MS;
                let in_flight = limit.limit();
                limit.on_sample(Sample {
                    now_ns: now,
                    rtt_ns: 10 * MS,
                    in_flight,
                    dropped: false,
                });
            }
            assert!(
                limit.limit() >= 20,
                "{kind:?}: {} (estimate {})",
                limit.limit(),
                limit.estimate
            );
        }
    }
}

/// Any sequence of samples, however hostile, keeps the limit within the bounds, without panics.
#[test]
fn hostile_samples_never_panic_nor_leave_the_bounds() {
    let mut rng = SplitMix64(42);
    for kind in AdaptiveKind::ALL {
        for (min, max, initial) in [(1, 1000, 20), (5, 7, 6), (1, 1, 1), (3, u32::MAX, 100)] {
            let mut config = AdaptiveConfig::new(kind);
            (config.min_limit, config.max_limit, config.initial_limit) = (min, max, initial);
            let mut limit = AdaptiveLimit::new(config).unwrap();
            let mut now = 0u64;
            for _ in 0..20_000 {
                now = match rng.next() % 6 {
                    0 => now,                                         // the clock stands still
                    1 => now.saturating_sub(rng.next() % (100 * MS)), // or goes back
                    2 => rng.next(),                                  // or jumps anywhere
                    _ => now.saturating_add(rng.next() % (10 * MS)),
                };
                let rtt_ns = match rng.next() % 5 {
                    0 => 0,
                    1 => u64::MAX,
                    2 => rng.next(),
                    _ => rng.next() % (100 * MS),
                };
                let in_flight = match rng.next() % 4 {
                    0 => 0,
                    1 => u32::MAX,
                    _ => (rng.next() % 2000) as u32,
                };
                let dropped = rng.next() % 10 == 0;
                let new = limit.on_sample(Sample {
                    now_ns: now,
                    rtt_ns,
                    in_flight,
                    dropped,
                });
                assert_eq!(new, limit.limit());
                assert!(
                    (min..=max).contains(&new),
                    "{kind:?}: {new} not in [{min}, {max}]"
                );
            }
        }
    }
}

#[test]
fn extreme_round_trips_keep_the_limit_finite() {
    for kind in AdaptiveKind::ALL {
        let mut limit = AdaptiveLimit::new(AdaptiveConfig::new(kind)).unwrap();
        // A no-load latency of 0 ns (counted as 1 ns), then the largest possible round trips.
        for (rtt, in_flight) in [(0, 1), (u64::MAX, 20)] {
            for i in 0..2000 {
                limit.on_sample(Sample {
                    now_ns: u64::MAX - 2000 + i,
                    rtt_ns: rtt,
                    in_flight,
                    dropped: false,
                });
            }
        }
        assert_eq!(limit.no_load_rtt_ns(), Some(1));
        assert_eq!(
            limit.limit(),
            1,
            "{kind:?}: huge round trips cut to min_limit"
        );
    }
}

#[test]
fn a_frozen_clock_still_closes_windows() {
    for kind in AdaptiveKind::ALL {
        let mut limit = AdaptiveLimit::new(AdaptiveConfig::new(kind)).unwrap();
        let mut feed = |rtt_ns: u64, in_flight: u32, count: u32| {
            for _ in 0..count {
                limit.on_sample(Sample {
                    now_ns: 7,
                    rtt_ns,
                    in_flight,
                    dropped: false,
                });
            }
            limit.limit()
        };
        feed(10 * MS, 1, 10);
        // Windows of `limit` samples: latency 4 times the no-load value shrinks the limit.
        assert!(feed(40 * MS, 20, 200) < 20, "{kind:?}");
    }
}

fn overload(kind: AdaptiveKind, servers: u32, seed: u64) -> simulation::Outcome {
    simulation::run(&Scenario {
        kind,
        servers,
        load: 2.0,
        duration: 400,
        measured: 100,
        seed,
    })
}

/// The target: a service of capacity C under twice the load it can serve ends with the
/// limit within [C/2, 2C] and the p99 of admitted requests within twice the no-load latency
/// (here the mean service time L, the strictest reading: the no-load p99 is 1.25 L).
#[test]
fn simulated_overload_finds_the_capacity_and_keeps_p99_within_twice_no_load() {
    for kind in AdaptiveKind::ALL {
        for servers in CAPACITIES {
            for seed in 1..=3 {
                let outcome = overload(kind, servers, seed);
                let what = format!("{kind:?} C={servers} seed {seed}: {outcome:?}");
                let median = f64::from(outcome.median_limit);
                let capacity = f64::from(servers);
                assert!(
                    median >= 0.5 * capacity && median <= 2.0 * capacity,
                    "{what}"
                );
                assert!(outcome.p99_ratio <= 2.0, "{what}");
                // The limit admits about what the service can serve (C / L a second): the
                // rest is shed, not queued.
                let served = outcome.admitted as f64 / (capacity * 100.0);
                assert!(served > 0.9 && served < 1.02, "{what}");
                assert!(outcome.shed > outcome.admitted / 2, "{what}");
            }
        }
    }
}

/// At 30% of capacity the application never uses half a large limit: the limit stays near
/// twice what is used, however long it runs, and nothing is shed.
#[test]
fn simulated_low_load_does_not_grow_the_limit() {
    for kind in AdaptiveKind::ALL {
        for servers in CAPACITIES {
            let outcome = simulation::run(&Scenario {
                kind,
                servers,
                load: 0.3,
                duration: 400,
                measured: 100,
                seed: 5,
            });
            let what = format!("{kind:?} C={servers}: {outcome:?}");
            let bound = (2.1 * f64::from(outcome.max_in_flight) + 2.0).max(20.0);
            assert!(f64::from(outcome.final_limit) <= bound, "{what}");
            assert!(f64::from(outcome.median_limit) <= bound, "{what}");
            assert_eq!(outcome.shed, 0, "{what}");
            assert!(outcome.p99_ratio < 1.3, "{what}");
        }
    }
}

/// `cargo test --lib simulation_table -- --ignored --nocapture` prints the numbers quoted in
/// docs/DESIGN.md.
#[test]
#[ignore]
fn simulation_table() {
    println!("| algorithm | C | median limit | final limit | limit / C | p99 / L | mean / L | learnt R0 / L | admitted / capacity |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for kind in AdaptiveKind::ALL {
        for servers in CAPACITIES {
            let o = overload(kind, servers, 1);
            println!(
                "| {} | {servers} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} |",
                kind.name(),
                o.median_limit,
                o.final_limit,
                f64::from(o.median_limit) / f64::from(servers),
                o.p99_ratio,
                o.mean_ratio,
                o.no_load_ratio,
                o.admitted as f64 / (f64::from(servers) * 100.0),
            );
        }
    }
    println!();
    println!("| algorithm | C | load 0.3: final limit | most in flight | p99 / L | shed |");
    println!("|---|---|---|---|---|---|");
    for kind in AdaptiveKind::ALL {
        for servers in CAPACITIES {
            let o = simulation::run(&Scenario {
                kind,
                servers,
                load: 0.3,
                duration: 400,
                measured: 100,
                seed: 5,
            });
            println!(
                "| {} | {servers} | {} | {} | {:.2} | {} |",
                kind.name(),
                o.final_limit,
                o.max_in_flight,
                o.p99_ratio,
                o.shed
            );
        }
    }
}
