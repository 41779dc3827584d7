//! Adaptive concurrency limits: learn how many requests may be in flight from their latency.
//!
//! A service with `C` workers and a no-load latency `R0` serves `C / R0` requests a second.
//! Letting `n > C` requests in at once does not serve more: the extra `n - C` wait in a queue,
//! and by Little's law every request then takes `R = R0 * n / C`. So the ratio of the recent
//! latency `R` to the no-load latency `R0` tells how far the limit `n` is above the capacity,
//! and the limit that keeps `R <= tolerance * R0` is about `tolerance * C`, without anyone
//! telling the library `C`.
//!
//! Both algorithms take the same [`Sample`]s (one per completed request) through a pure step
//! [`AdaptiveLimit::on_sample`] and share the windows (at least `window_samples` samples and
//! one round trip) and the no-load latency estimate of `window.rs`, which a fresh limiter
//! measures first at `probe_limit` requests in flight. They differ in how they move the limit:
//! - [`AdaptiveKind::Gradient`] (`gradient.rs`): each window, multiply the limit by
//!   `tolerance * R0 / R` (kept within `[0.5, 1]`), add some headroom while that is 1, smoothed;
//! - [`AdaptiveKind::Aimd`] (`aimd.rs`): add `increase` each window whose mean round trip is
//!   within `tolerance * R0`, multiply by `backoff` each window past it or with a drop.
//!
//! Rules common to both: the limit stays within `[min_limit, max_limit]`, it never grows while
//! the application uses less than half of it (`2 * in_flight < limit`: latency measured at a
//! fraction of the limit says nothing about the limit), and no input (a zero or huge round trip,
//! a clock that stands still or goes backwards) can panic or put a NaN in it.

mod aimd;
mod gradient;
#[cfg(test)]
mod simulation;
mod window;

use std::fmt;

use aimd::Aimd;
use window::{NoLoad, Window};

/// One completed request, as the limiter saw it.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// When the request completed (any monotonic nanosecond clock).
    pub now_ns: u64,
    /// How long it took, from admission to completion.
    pub rtt_ns: u64,
    /// Permits held when this request started, itself included.
    pub in_flight: u32,
    /// It timed out, was shed or failed as overload (its round trip is not a latency sample).
    pub dropped: bool,
}

/// The algorithm that moves the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdaptiveKind {
    Gradient,
    Aimd,
}

impl AdaptiveKind {
    pub const ALL: [AdaptiveKind; 2] = [AdaptiveKind::Gradient, AdaptiveKind::Aimd];

    pub fn name(&self) -> &'static str {
        match self {
            AdaptiveKind::Gradient => "gradient",
            AdaptiveKind::Aimd => "aimd",
        }
    }

    /// The kind named `name` (as [`AdaptiveKind::name`] spells it).
    pub fn parse(name: &str) -> Result<AdaptiveKind, AdaptiveError> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| AdaptiveError {
                param: "adaptive",
                message: format!("unknown algorithm {name:?}: expected \"gradient\" or \"aimd\""),
            })
    }
}

/// The settings of an adaptive limit. [`AdaptiveConfig::new`] gives the defaults; each field
/// says what it does and why its default is what it is.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveConfig {
    pub kind: AdaptiveKind,
    /// The most the limit starts at once the no-load latency is measured: 20 (Netflix's
    /// default). It starts at twice the most requests in flight in the window that measured
    /// it (at least `probe_limit`), so a service only lightly used so far starts low and grows
    /// with use; a busy one is not starved while the limit grows.
    pub initial_limit: u32,
    /// The floor: 1. The limit may go as low as one request at a time if latency says so; raise
    /// it to keep a minimum of throughput whatever the latency.
    pub min_limit: u32,
    /// The ceiling: 1000 (Envoy's default). Far above what one Python process serves at once;
    /// it only bounds the limit's growth while latency carries no signal.
    pub max_limit: u32,
    /// How much slower than the no-load latency `R0` the requests of a window may be on average
    /// before the limit is cut: 1.25 (Envoy's default `buffer` of 25% over its minimum round
    /// trip). The limit settles near `tolerance * C`: a queue of a quarter of the workers keeps
    /// them all busy through the jitter of arrivals, and leaves room for the tail: in the
    /// simulated service the p99 stays under twice `R0` down to `C = 4`. With 1.5 (Netflix
    /// Gradient2's `rttTolerance`) it does not there: a limit of 6 for 4 workers gives a p99 of
    /// 2.0-2.2 `R0`.
    pub tolerance: f64,
    /// The fewest samples an update looks at: 10 (Netflix's window size). A window also spans at
    /// least one mean round trip, so the limit moves about once per round trip.
    pub window_samples: u32,
    /// Gradient: the weight of each window's new value, `limit = (1 - s) * limit + s * target`:
    /// 0.2 (Netflix's default). One noisy window moves the limit by a fifth of its opinion.
    pub smoothing: f64,
    /// Gradient: the growth added to each window's target while latency stays within the
    /// tolerance, as a fraction of the limit: `headroom = min(sqrt(limit), growth * limit)`.
    /// 0.1: the limit grows by at most `smoothing * growth` = 2% a window (from 20 to 300 in
    /// about 140 windows); the square root (Envoy's headroom) takes over above a limit of 100,
    /// so that a large limit does not overshoot by a tenth each time it probes upward.
    pub growth: f64,
    /// The concurrency at which the no-load latency is measured: 3 (Envoy's `min_concurrency`),
    /// clamped to `[min_limit, max_limit]`. Until a window of samples that all started with at
    /// most this many in flight has been seen, the limit is held at it: a fresh limiter measures
    /// the service unloaded first (a service with 3 or more workers does not queue then), so the
    /// first requests of a flood cannot pass their queueing delay off as the no-load latency.
    pub probe_limit: u32,
    /// AIMD: the factor a late window (or one with a drop) multiplies the limit by: 0.9
    /// (Netflix's `backoffRatio`). Gentle, because a late window is a queue of a few, not a
    /// lost packet.
    pub backoff: f64,
    /// AIMD: how much the limit grows each window (at least one round trip) whose requests came
    /// back in time: 0.5. Half a request, because at a small limit one request is a large step
    /// (5 -> 6 permits is 20% more latency for 4 workers). Until the first late window it grows
    /// by one for each busy request back in time instead (doubling each round trip, as TCP's
    /// slow start does), so the first climb is fast.
    pub increase: f64,
}

impl AdaptiveConfig {
    /// The documented defaults for `kind`.
    pub fn new(kind: AdaptiveKind) -> Self {
        AdaptiveConfig {
            kind,
            initial_limit: 20,
            min_limit: 1,
            max_limit: 1000,
            tolerance: 1.25,
            window_samples: 10,
            smoothing: 0.2,
            growth: 0.1,
            probe_limit: 3,
            backoff: 0.9,
            increase: 0.5,
        }
    }

    /// Checks the settings; an error names the setting at fault and its value.
    pub fn validate(&self) -> Result<(), AdaptiveError> {
        if self.min_limit == 0 {
            return refuse(
                "min_limit",
                "0 is below 1: the limit must admit at least one request",
            );
        }
        if self.min_limit > self.max_limit {
            return refuse(
                "min_limit",
                format!("{} is above max_limit ({})", self.min_limit, self.max_limit),
            );
        }
        if self.initial_limit < self.min_limit || self.initial_limit > self.max_limit {
            return refuse(
                "initial_limit",
                format!(
                    "{} is outside [min_limit, max_limit] = [{}, {}]",
                    self.initial_limit, self.min_limit, self.max_limit
                ),
            );
        }
        if self.probe_limit == 0 {
            return refuse("probe_limit", "0 is below 1");
        }
        if self.window_samples == 0 {
            return refuse("window_samples", "0 is below 1");
        }
        check_factor("tolerance", self.tolerance, 1.0, f64::MAX, "at least 1")?;
        check_factor(
            "smoothing",
            self.smoothing,
            f64::MIN_POSITIVE,
            1.0,
            "in (0, 1]",
        )?;
        check_factor("growth", self.growth, f64::MIN_POSITIVE, 1.0, "in (0, 1]")?;
        check_factor(
            "backoff",
            self.backoff,
            f64::MIN_POSITIVE,
            0.999,
            "in (0, 1)",
        )?;
        check_factor(
            "increase",
            self.increase,
            f64::MIN_POSITIVE,
            1e6,
            "in (0, 1e6]",
        )?;
        Ok(())
    }
}

fn check_factor(
    param: &'static str,
    value: f64,
    low: f64,
    high: f64,
    range: &str,
) -> Result<(), AdaptiveError> {
    // Written so that NaN fails the test.
    if value >= low && value <= high {
        Ok(())
    } else {
        refuse(param, format!("{value} is not a number {range}"))
    }
}

/// A refused setting: `param` is the setting's name, `message` says what is wrong with its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdaptiveError {
    pub param: &'static str,
    pub message: String,
}

impl fmt::Display for AdaptiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid `{}`: {}", self.param, self.message)
    }
}

impl std::error::Error for AdaptiveError {}

fn refuse<T>(param: &'static str, message: impl Into<String>) -> Result<T, AdaptiveError> {
    Err(AdaptiveError {
        param,
        message: message.into(),
    })
}

/// The state of an adaptive limit: its settings, the algorithm's state and the current limit.
#[derive(Clone, Debug)]
pub struct AdaptiveLimit {
    config: AdaptiveConfig,
    /// The limit as a real number, always finite and within `[min_limit, max_limit]`.
    estimate: f64,
    window: Window,
    no_load: NoLoad,
    algorithm: Algorithm,
}

#[derive(Clone, Debug)]
enum Algorithm {
    Gradient,
    Aimd(Aimd),
}

impl AdaptiveLimit {
    pub fn new(config: AdaptiveConfig) -> Result<Self, AdaptiveError> {
        config.validate()?;
        let algorithm = match config.kind {
            AdaptiveKind::Gradient => Algorithm::Gradient,
            AdaptiveKind::Aimd => Algorithm::Aimd(Aimd::default()),
        };
        Ok(AdaptiveLimit {
            estimate: f64::from(config.initial_limit),
            window: Window::default(),
            no_load: NoLoad::default(),
            config,
            algorithm,
        })
    }

    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The current limit: the estimate rounded down, within `[min_limit, max_limit]`; at most
    /// the probe limit until the no-load latency is known.
    pub fn limit(&self) -> u32 {
        // `as` saturates; the estimate is finite and within the bounds anyway.
        let limit = (self.estimate as u32).clamp(self.config.min_limit, self.config.max_limit);
        if self.no_load.rtt_ns().is_some() {
            limit
        } else {
            limit.min(self.probe_limit())
        }
    }

    /// The no-load round trip learnt so far, in nanoseconds.
    pub fn no_load_rtt_ns(&self) -> Option<u64> {
        self.no_load.rtt_ns()
    }

    fn probe_limit(&self) -> u32 {
        (self.config.probe_limit).clamp(self.config.min_limit, self.config.max_limit)
    }

    /// The pure step: takes one sample, returns the new limit (always within
    /// `[min_limit, max_limit]`).
    pub fn on_sample(&mut self, sample: Sample) -> u32 {
        let limit = self.limit();
        let closed = self.window.add(&sample, self.config.window_samples, limit);
        let measured_before = self.no_load.rtt_ns().is_some();
        if let Some(window) = &closed {
            let clean = window.max_in_flight <= self.probe_limit();
            self.no_load.observe(window, clean);
            if !measured_before && self.no_load.rtt_ns().is_some() {
                // The limit leaves the probe no higher than twice what was used: a limit
                // above what the application ever used says nothing about its capacity, and
                // would admit a flood's first requests far past it.
                let used = f64::from(window.max_in_flight.max(1)) * 2.0;
                let start = used.max(f64::from(self.probe_limit()));
                self.estimate = bounded(&self.config, self.estimate, self.estimate.min(start));
            }
        }
        let Some(no_load) = self.no_load.rtt_ns() else {
            return limit;
        };
        // No longer held at the probe limit once the no-load latency is known.
        let limit = self.limit();
        let proposed = match &mut self.algorithm {
            Algorithm::Gradient => match closed {
                Some(window) => {
                    gradient::step(&self.config, self.estimate, limit, &window, no_load)
                }
                None => self.estimate,
            },
            Algorithm::Aimd(state) => state.step(
                &self.config,
                self.estimate,
                limit,
                &sample,
                closed.as_ref(),
                no_load,
            ),
        };
        self.estimate = bounded(&self.config, self.estimate, proposed);
        self.limit()
    }
}

/// The proposed estimate within the bounds; a non-finite proposal keeps the old estimate.
fn bounded(config: &AdaptiveConfig, old: f64, proposed: f64) -> f64 {
    let value = if proposed.is_finite() { proposed } else { old };
    value.clamp(f64::from(config.min_limit), f64::from(config.max_limit))
}

/// Whether the application used at least half of `limit` (the condition for any growth).
fn busy(in_flight: u32, limit: u32) -> bool {
    u64::from(in_flight) * 2 >= u64::from(limit)
}

#[cfg(test)]
mod tests;
