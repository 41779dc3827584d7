//! A simulated service for the tests: `C` workers behind an adaptive limit, in simulated time.
//!
//! Requests arrive open-loop (Poisson, at `load * C / L` a second, where `L` is the mean service
//! time). The limiter admits a request when fewer than `limit` are in flight and sheds it
//! otherwise (no queue in the limiter). An admitted request that finds all `C` workers busy waits
//! in the service's own FIFO queue, which is where latency grows: its round trip is the wait plus
//! a service time drawn uniformly from `[0.75 L, 1.25 L]`. Each completion is one [`Sample`].
//! Everything is deterministic for a seed (splitmix64).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::{AdaptiveConfig, AdaptiveKind, AdaptiveLimit, Sample};

/// Mean service time: 10 ms.
pub const SERVICE_NS: u64 = 10_000_000;

#[derive(Clone, Debug)]
pub struct Scenario {
    pub kind: AdaptiveKind,
    pub servers: u32,
    /// Arrival rate as a multiple of the capacity `C / L`.
    pub load: f64,
    /// Simulated run time, in mean service times.
    pub duration: u64,
    /// The statistics cover the last `measured` mean service times of the run.
    pub measured: u64,
    pub seed: u64,
}

#[derive(Clone, Debug)]
pub struct Outcome {
    /// The limit at the end of the run.
    pub final_limit: u32,
    /// The median of the limit seen by the arrivals of the measured part.
    pub median_limit: u32,
    /// p99 round trip of the requests admitted in the measured part, over `L`.
    pub p99_ratio: f64,
    /// Admitted and shed arrivals of the measured part.
    pub admitted: u64,
    pub shed: u64,
    /// Most requests in flight at once over the whole run.
    pub max_in_flight: u32,
    /// The no-load latency the limiter learnt, over `L`.
    pub no_load_ratio: f64,
    /// Mean round trip of the requests admitted in the measured part, over `L`.
    pub mean_ratio: f64,
}

pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A request in the service: when it was admitted and how many were in flight then.
#[derive(Clone, Copy)]
struct Request {
    admitted_ns: u64,
    in_flight: u32,
}

/// The workers and their FIFO queue.
struct Service {
    /// Requests being served: (finish time, sequence number for a stable order, admitted at,
    /// in flight at admission), earliest finish first.
    running: BinaryHeap<Reverse<(u64, u64, u64, u32)>>,
    waiting: VecDeque<Request>,
    busy: u32,
    sequence: u64,
}

impl Service {
    fn start(&mut self, request: Request, now: u64, rng: &mut SplitMix64) {
        let service = (SERVICE_NS as f64 * (0.75 + 0.5 * rng.unit())) as u64;
        self.sequence += 1;
        self.busy += 1;
        self.running.push(Reverse((
            now + service,
            self.sequence,
            request.admitted_ns,
            request.in_flight,
        )));
    }
}

pub fn run(scenario: &Scenario) -> Outcome {
    let mut limiter = AdaptiveLimit::new(AdaptiveConfig::new(scenario.kind)).unwrap();
    let mut rng = SplitMix64(scenario.seed);
    let servers = scenario.servers;
    let end_ns = scenario.duration * SERVICE_NS;
    let measure_from = (scenario.duration - scenario.measured) * SERVICE_NS;
    let mean_gap_ns = SERVICE_NS as f64 / (scenario.load * f64::from(servers));

    let mut next_arrival = 0u64;
    let mut service = Service {
        running: BinaryHeap::new(),
        waiting: VecDeque::new(),
        busy: 0,
        sequence: 0,
    };
    let mut in_flight = 0u32;

    let mut latencies = Vec::new();
    let mut limits = Vec::new();
    let (mut admitted, mut shed, mut max_in_flight) = (0u64, 0u64, 0u32);

    loop {
        let next_completion = service.running.peek().map(|Reverse((at, ..))| *at);
        let arrival_first = next_completion.is_none_or(|at| next_arrival < at);
        if arrival_first {
            let now = next_arrival;
            if now >= end_ns {
                break;
            }
            let limit = limiter.limit();
            if now >= measure_from {
                limits.push(limit);
            }
            if in_flight < limit {
                in_flight += 1;
                max_in_flight = max_in_flight.max(in_flight);
                let request = Request {
                    admitted_ns: now,
                    in_flight,
                };
                if service.busy < servers {
                    service.start(request, now, &mut rng);
                } else {
                    service.waiting.push_back(request);
                }
                admitted += u64::from(now >= measure_from);
            } else {
                shed += u64::from(now >= measure_from);
            }
            let gap = -(1.0 - rng.unit()).ln() * mean_gap_ns;
            next_arrival = now + (gap as u64).max(1);
        } else {
            let Some(Reverse((now, _, admitted_ns, started_in_flight))) = service.running.pop()
            else {
                unreachable!("a completion was peeked");
            };
            service.busy -= 1;
            in_flight -= 1;
            let rtt = now - admitted_ns;
            if admitted_ns >= measure_from {
                latencies.push(rtt);
            }
            limiter.on_sample(Sample {
                now_ns: now,
                rtt_ns: rtt,
                in_flight: started_in_flight,
                dropped: false,
            });
            if let Some(request) = service.waiting.pop_front() {
                service.start(request, now, &mut rng);
            }
        }
    }

    latencies.sort_unstable();
    limits.sort_unstable();
    let p99 = latencies
        .get(latencies.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or(0);
    Outcome {
        final_limit: limiter.limit(),
        median_limit: limits.get(limits.len() / 2).copied().unwrap_or(0),
        p99_ratio: p99 as f64 / SERVICE_NS as f64,
        admitted,
        shed,
        max_in_flight,
        no_load_ratio: limiter.no_load_rtt_ns().unwrap_or(0) as f64 / SERVICE_NS as f64,
        mean_ratio: latencies.iter().sum::<u64>() as f64
            / latencies.len().max(1) as f64
            / SERVICE_NS as f64,
    }
}
