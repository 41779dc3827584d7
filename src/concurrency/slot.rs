//! One slot: the permits of one key (or of an unkeyed limiter), its wait queue and its limit.
//!
//! The invariant every operation keeps: `in_flight <= limit`, except that a slot with nothing
//! in flight always admits its next caller, so an adaptive limit that fell below a caller's
//! cost cannot starve it (a fixed limit is never below a cost: acquisitions above it are
//! refused). A waiter is served only from the head of the queue, so a large request at the
//! head is not overtaken forever by small ones behind it.

use super::adaptive::{AdaptiveLimit, Sample};
use super::config::{ConcurrencyConfig, LimitSetting};
use super::queue::{Order, WaitQueue, Waiter};

#[derive(Clone, Debug)]
pub enum SlotLimit {
    Fixed(u32),
    Adaptive(AdaptiveLimit),
}

impl SlotLimit {
    pub fn new(setting: &LimitSetting) -> Self {
        match setting {
            LimitSetting::Fixed(limit) => SlotLimit::Fixed(*limit),
            LimitSetting::Adaptive(config) => SlotLimit::Adaptive(
                AdaptiveLimit::new(config.clone()).expect("validated with the config"),
            ),
        }
    }

    pub fn get(&self) -> u32 {
        match self {
            SlotLimit::Fixed(limit) => *limit,
            SlotLimit::Adaptive(adaptive) => adaptive.limit(),
        }
    }
}

#[derive(Debug)]
pub struct Slot<W> {
    pub in_flight: u32,
    pub queue: WaitQueue<W>,
    pub limit: SlotLimit,
}

impl<W> Slot<W> {
    pub fn new(config: &ConcurrencyConfig) -> Self {
        Slot::with_order(config, config.order)
    }

    fn with_order(config: &ConcurrencyConfig, order: Order) -> Self {
        Slot {
            in_flight: 0,
            queue: WaitQueue::new(order),
            limit: SlotLimit::new(&config.limit),
        }
    }

    /// Whether `cost` more permits may be taken now.
    pub fn fits(&self, cost: u32) -> bool {
        self.in_flight == 0
            || u64::from(self.in_flight) + u64::from(cost) <= u64::from(self.limit.get())
    }

    /// Nothing in flight and nobody waiting: a keyed slot in this state is dropped.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.queue.is_empty()
    }

    /// Takes `cost` permits; returns the count in flight with them.
    pub fn take(&mut self, cost: u32) -> u32 {
        self.in_flight += cost;
        self.in_flight
    }

    /// Gives `cost` permits back and feeds the adaptive limit its sample.
    pub fn give_back(&mut self, cost: u32, sample: Sample) {
        self.in_flight = self.in_flight.saturating_sub(cost);
        if let SlotLimit::Adaptive(adaptive) = &mut self.limit {
            adaptive.on_sample(sample);
        }
    }

    /// Pops the waiters at the head of the queue while their cost fits, taking their permits.
    /// Returns each with the count in flight once it held its permits.
    pub fn serve_waiting(&mut self) -> Vec<(Waiter<W>, u32)> {
        let mut served = Vec::new();
        while let Some((_, waiter)) = self.queue.first() {
            if !self.fits(waiter.cost) {
                break;
            }
            let waiter = self.queue.pop_first().expect("the first waiter exists");
            let in_flight = self.take(waiter.cost);
            served.push((waiter, in_flight));
        }
        served
    }
}
