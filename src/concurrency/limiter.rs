//! `ConcurrencyLimiter`: how many at once, per key or for all, with a bounded wait queue.
//!
//! Every operation takes the one table lock, changes the counts and the queues, and returns
//! what must happen to waiters as [`Notice`]s: the caller wakes them *after* the lock is
//! released, because waking an asyncio waiter calls into Python and must never happen under a
//! lock another thread may hold while it waits for the GIL. `W` is how a waiter is woken (a
//! condition variable, an asyncio future, a channel in the tests); this module never looks
//! inside it.
//!
//! A permit is granted at once when its slot has room and nobody is waiting (no barging past
//! the queue); otherwise the caller may queue, if the queue has room, or if it outranks the
//! lowest-priority waiter, which is then shed. Waiters leave the queue by being served, shed,
//! expired (`expire`, which a `ManualClock` drives) or cancelled (`cancel`, which a waiter's own
//! timer or a cancelled task calls). Whichever comes first under the lock wins, so a waiter that
//! has left never takes a permit afterwards.
//!
//! Two histograms, on the limiter's clock (a `ManualClock` makes them exact): how long the
//! callers that queued waited until they were granted their permits (those that left the
//! queue without permits, timed out, shed or cancelled, are counted in the stats, not timed),
//! and how long permits were held, from grant to release. Both are recorded where the clock is
//! already read, so a grant and a release cost an atomic add or two and no more clock reads.

use hashbrown::HashMap;
use parking_lot::Mutex;

use super::adaptive::Sample;
use super::config::{ConcurrencyConfig, ConcurrencyConfigError};
use super::queue::{Place, Waiter};
use super::slot::Slot;
use crate::clock::Clock;
use crate::metrics::{Histogram, HistogramSnapshot, DURATION_BOUNDS_NS};

type Hasher = foldhash::fast::RandomState;

/// Permits held; released through [`ConcurrencyLimiter::release`] exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permit {
    pub key: Option<Box<[u8]>>,
    pub cost: u32,
    pub start_ns: u64,
    /// Permits in flight in the slot once these were taken (the adaptive limit's sample).
    pub in_flight: u32,
}

/// A queued waiter, as its owner knows it: enough to take it out again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub key: Option<Box<[u8]>>,
    pub place: Place,
    pub deadline_ns: u64,
}

/// Why no permit was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No permit free and the caller would not wait (or the limiter has no queue).
    NoPermit,
    /// The queue is full of waiters at least as important as the caller.
    QueueFull,
    /// A waiter was pushed out of the queue by a more important one.
    Shed,
    /// The waiter's `queue_timeout` passed.
    TimedOut,
    /// A new key, with `max_keys` keys already tracked.
    TooManyKeys,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::NoPermit => "no_permit",
            Refusal::QueueFull => "queue_full",
            Refusal::Shed => "shed",
            Refusal::TimedOut => "timed_out",
            Refusal::TooManyKeys => "max_keys",
        }
    }
}

/// What an acquisition got.
#[derive(Debug, PartialEq, Eq)]
pub enum Acquired {
    Granted(Permit),
    Queued(Ticket),
    Refused(Refusal),
}

/// What must happen to a waiter once the lock is released.
#[derive(Debug)]
pub enum Notice<W> {
    Granted(W, Permit),
    Refused(W, Refusal),
}

/// Totals since creation, and the counts now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConcurrencyStats {
    pub acquired: u64,
    /// Refused at once: no permit free and the caller would not wait (or no queue).
    pub rejected_no_permit: u64,
    /// Refused at once: the queue was full of waiters at least as important.
    pub rejected_queue_full: u64,
    /// Waiters pushed out of the queue by more important callers.
    pub rejected_shed: u64,
    /// New keys refused: `max_keys` keys were tracked.
    pub rejected_max_keys: u64,
    pub timed_out: u64,
    /// Waiters that left on their own (a cancelled task, an interrupted thread).
    pub cancelled: u64,
    /// Permits whose holders missed their deadline (an overload layer's `timeout`).
    pub deadline_missed: u64,
    pub queued_total: u64,
    /// The most permits one slot has held at once.
    pub max_in_flight_seen: u64,
    pub in_flight: u64,
    pub queued: u64,
    pub active_keys: u64,
}

impl ConcurrencyStats {
    /// Every refusal but timeouts: the four `rejected_*` reasons together.
    pub fn rejected(&self) -> u64 {
        self.rejected_no_permit
            + self.rejected_queue_full
            + self.rejected_shed
            + self.rejected_max_keys
    }

    /// Counts a refusal under its reason. Timeouts are counted in bulk where the queue
    /// expires waiters (`timed_out`); the arm here keeps the match whole.
    fn refused(&mut self, refusal: Refusal) {
        let count = match refusal {
            Refusal::NoPermit => &mut self.rejected_no_permit,
            Refusal::QueueFull => &mut self.rejected_queue_full,
            Refusal::Shed => &mut self.rejected_shed,
            Refusal::TooManyKeys => &mut self.rejected_max_keys,
            Refusal::TimedOut => &mut self.timed_out,
        };
        *count += 1;
    }

    /// Every figure by its public name, in the order `stats()` reports them.
    pub fn fields(&self) -> [(&'static str, u64); 14] {
        [
            ("acquired", self.acquired),
            ("rejected", self.rejected()),
            ("rejected_no_permit", self.rejected_no_permit),
            ("rejected_queue_full", self.rejected_queue_full),
            ("rejected_shed", self.rejected_shed),
            ("rejected_max_keys", self.rejected_max_keys),
            ("timed_out", self.timed_out),
            ("cancelled", self.cancelled),
            ("deadline_missed", self.deadline_missed),
            ("queued_total", self.queued_total),
            ("max_in_flight_seen", self.max_in_flight_seen),
            ("in_flight", self.in_flight),
            ("queued", self.queued),
            ("active_keys", self.active_keys),
        ]
    }
}

struct Table<W> {
    unkeyed: Slot<W>,
    keyed: HashMap<Box<[u8]>, Slot<W>, Hasher>,
    stats: ConcurrencyStats,
    /// An exponentially weighted mean of how long permits are held (ns), for retry hints.
    mean_hold_ns: u64,
}

impl<W> Table<W> {
    fn slot(&mut self, key: Option<&[u8]>) -> Option<&mut Slot<W>> {
        match key {
            None => Some(&mut self.unkeyed),
            Some(key) => self.keyed.get_mut(key),
        }
    }

    /// Drops a keyed slot with nothing in flight and nobody waiting.
    fn forget_if_idle(&mut self, key: Option<&[u8]>) {
        if let Some(key) = key {
            if self.keyed.get(key).is_some_and(Slot::is_idle) {
                self.keyed.remove(key);
            }
        }
    }

    /// Takes permits from a tracked slot if it has room and nobody waits.
    fn grant_now(&mut self, key: Option<&[u8]>, cost: u32, now_ns: u64) -> Option<Permit> {
        let slot = self.slot(key)?;
        if !(slot.queue.is_empty() && slot.fits(cost)) {
            return None;
        }
        let in_flight = slot.take(cost);
        Some(self.granted(key, cost, in_flight, now_ns))
    }

    /// Counts a grant of `cost` permits (`in_flight` with them) and makes its permit.
    fn granted(&mut self, key: Option<&[u8]>, cost: u32, in_flight: u32, now_ns: u64) -> Permit {
        self.stats.acquired += 1;
        self.stats.max_in_flight_seen = self.stats.max_in_flight_seen.max(u64::from(in_flight));
        Permit {
            key: key.map(Box::from),
            cost,
            start_ns: now_ns,
            in_flight,
        }
    }

    /// Serves the waiters of a slot that now have room, as notices, timing their wait.
    fn serve(
        &mut self,
        key: Option<&[u8]>,
        now_ns: u64,
        queue_time: &Histogram,
        notices: &mut Vec<Notice<W>>,
    ) {
        let Some(slot) = self.slot(key) else { return };
        let served = slot.serve_waiting();
        for (waiter, in_flight) in served {
            queue_time.observe(now_ns.saturating_sub(waiter.enqueued_ns));
            let permit = self.granted(key, waiter.cost, in_flight, now_ns);
            notices.push(Notice::Granted(waiter.wake, permit));
        }
        self.forget_if_idle(key);
    }
}

pub struct ConcurrencyLimiter<W> {
    config: ConcurrencyConfig,
    clock: Clock,
    table: Mutex<Table<W>>,
    /// From queued to granted, for the callers that waited and got their permits.
    queue_time: Histogram,
    /// From granted to released.
    lease_duration: Histogram,
}

impl<W> ConcurrencyLimiter<W> {
    pub fn new(config: ConcurrencyConfig, clock: Clock) -> Result<Self, ConcurrencyConfigError> {
        config.validate()?;
        let table = Table {
            unkeyed: Slot::new(&config),
            keyed: HashMap::with_hasher(Hasher::default()),
            stats: ConcurrencyStats::default(),
            mean_hold_ns: 0,
        };
        Ok(ConcurrencyLimiter {
            config,
            clock,
            table: Mutex::new(table),
            queue_time: Histogram::with_bounds(&DURATION_BOUNDS_NS),
            lease_duration: Histogram::with_bounds(&DURATION_BOUNDS_NS),
        })
    }

    pub fn config(&self) -> &ConcurrencyConfig {
        &self.config
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    /// Takes `cost` permits for `key` if they are free now; else, when `wake` is given and the
    /// queue has room (or holds a less important waiter, which is then shed), queues the caller.
    /// `cost` must be within `1..=max_cost` (checked by the caller, with the setting's name).
    pub fn acquire(
        &self,
        key: Option<&[u8]>,
        cost: u32,
        priority: i32,
        wake: Option<W>,
    ) -> (Acquired, Vec<Notice<W>>) {
        let now_ns = self.clock.now_ns();
        let mut notices = Vec::new();
        let mut table = self.table.lock();
        let table = &mut *table;
        if !self.track(table, key) {
            table.stats.refused(Refusal::TooManyKeys);
            return (Acquired::Refused(Refusal::TooManyKeys), notices);
        }
        if let Some(permit) = table.grant_now(key, cost, now_ns) {
            return (Acquired::Granted(permit), notices);
        }
        let slot = table.slot(key).expect("tracked above");
        let refused = |table: &mut Table<W>, refusal| {
            table.stats.refused(refusal);
            table.forget_if_idle(key);
            Acquired::Refused(refusal)
        };
        let Some(wake) = wake else {
            return (refused(table, Refusal::NoPermit), notices);
        };
        if self.config.queue == 0 {
            return (refused(table, Refusal::NoPermit), notices);
        }
        if slot.queue.len() >= self.config.queue as usize {
            if slot
                .queue
                .lowest_priority()
                .is_some_and(|lowest| lowest < priority)
            {
                let shed = slot.queue.pop_last().expect("the queue is full");
                table.stats.refused(Refusal::Shed);
                notices.push(Notice::Refused(shed.wake, Refusal::Shed));
            } else {
                return (refused(table, Refusal::QueueFull), notices);
            }
        }
        let slot = table.slot(key).expect("the slot exists");
        let deadline_ns = match self.config.queue_timeout_ns {
            Some(timeout) => now_ns.saturating_add(timeout),
            None => u64::MAX,
        };
        let place = slot.queue.push(
            priority,
            Waiter {
                cost,
                enqueued_ns: now_ns,
                deadline_ns,
                wake,
            },
        );
        table.stats.queued_total += 1;
        let ticket = Ticket {
            key: key.map(Box::from),
            place,
            deadline_ns,
        };
        (Acquired::Queued(ticket), notices)
    }

    /// Takes `cost` permits for `key` only if they are free now and nobody waits; otherwise
    /// changes and records nothing (an `acquire` after it gives the answer that counts).
    pub fn try_grant(&self, key: Option<&[u8]>, cost: u32) -> Option<Permit> {
        let now_ns = self.clock.now_ns();
        let mut table = self.table.lock();
        if !self.track(&mut table, key) {
            return None;
        }
        let permit = table.grant_now(key, cost, now_ns);
        table.forget_if_idle(key);
        permit
    }

    /// Makes sure `key` has a slot; false when it is new and `max_keys` keys are tracked.
    fn track(&self, table: &mut Table<W>, key: Option<&[u8]>) -> bool {
        let Some(key) = key else { return true };
        if table.keyed.contains_key(key) {
            return true;
        }
        if self
            .config
            .max_keys
            .is_some_and(|max| table.keyed.len() >= max)
        {
            return false;
        }
        table.keyed.insert(Box::from(key), Slot::new(&self.config));
        true
    }

    /// Gives a permit back (`dropped`: the request it covered failed as overload, e.g. timed
    /// out) and serves the waiters that now fit.
    pub fn release(&self, permit: &Permit, dropped: bool) -> Vec<Notice<W>> {
        let now_ns = self.clock.now_ns();
        let key = permit.key.as_deref();
        let mut notices = Vec::new();
        let mut table = self.table.lock();
        let rtt_ns = now_ns.saturating_sub(permit.start_ns);
        self.lease_duration.observe(rtt_ns);
        table.mean_hold_ns = if table.mean_hold_ns == 0 {
            rtt_ns
        } else {
            table.mean_hold_ns - table.mean_hold_ns / 8 + rtt_ns / 8
        };
        if let Some(slot) = table.slot(key) {
            slot.give_back(
                permit.cost,
                Sample {
                    now_ns,
                    rtt_ns,
                    in_flight: permit.in_flight,
                    dropped,
                },
            );
        }
        table.serve(key, now_ns, &self.queue_time, &mut notices);
        notices
    }

    /// Takes a queued waiter out (`timed_out`: because its deadline passed, else because its
    /// owner gave up). Returns whether it was still queued: `false` means it was already
    /// served or refused, and the notice for that is (or was) on its way to it.
    pub fn cancel(&self, ticket: &Ticket, timed_out: bool) -> (bool, Vec<Notice<W>>) {
        let key = ticket.key.as_deref();
        let mut notices = Vec::new();
        let mut table = self.table.lock();
        let removed = table
            .slot(key)
            .and_then(|slot| slot.queue.remove(&ticket.place))
            .is_some();
        if removed {
            if timed_out {
                table.stats.timed_out += 1;
            } else {
                table.stats.cancelled += 1;
            }
            // The head may have been the one that did not fit.
            table.serve(key, self.clock.now_ns(), &self.queue_time, &mut notices);
        }
        (removed, notices)
    }

    /// Times out every waiter whose deadline is at or before `now_ns` (the clock's time).
    pub fn expire(&self, now_ns: u64) -> Vec<Notice<W>> {
        let mut notices = Vec::new();
        let mut table = self.table.lock();
        let table = &mut *table;
        let mut expired_keys: Vec<Option<Box<[u8]>>> = Vec::new();
        for waiter in table.unkeyed.queue.remove_expired(now_ns) {
            notices.push(Notice::Refused(waiter.wake, Refusal::TimedOut));
        }
        if !notices.is_empty() {
            expired_keys.push(None);
        }
        for (key, slot) in table.keyed.iter_mut() {
            let expired = slot.queue.remove_expired(now_ns);
            if !expired.is_empty() {
                expired_keys.push(Some(key.clone()));
            }
            notices.extend(
                expired
                    .into_iter()
                    .map(|waiter| Notice::Refused(waiter.wake, Refusal::TimedOut)),
            );
        }
        table.stats.timed_out += notices.len() as u64;
        for key in expired_keys {
            table.serve(key.as_deref(), now_ns, &self.queue_time, &mut notices);
        }
        notices
    }

    /// The limit now: the unkeyed slot's, or for a key its own (the configured one for a key
    /// not tracked).
    pub fn limit(&self, key: Option<&[u8]>) -> u32 {
        let mut table = self.table.lock();
        match table.slot(key) {
            Some(slot) => slot.limit.get(),
            None => super::slot::SlotLimit::new(&self.config.limit).get(),
        }
    }

    /// Permits in flight and waiters queued, for one key (or the unkeyed slot).
    pub fn counts(&self, key: Option<&[u8]>) -> (u32, usize) {
        let mut table = self.table.lock();
        table
            .slot(key)
            .map_or((0, 0), |slot| (slot.in_flight, slot.queue.len()))
    }

    /// A guess at how long until a permit frees: the mean time permits are held.
    pub fn mean_hold_ns(&self) -> u64 {
        self.table.lock().mean_hold_ns
    }

    /// Counts a permit whose holder missed its deadline (an overload layer's `timeout`).
    pub fn note_deadline_missed(&self) {
        self.table.lock().stats.deadline_missed += 1;
    }

    /// How long the callers that queued waited for their permits (granted ones only).
    pub fn queue_time(&self) -> HistogramSnapshot {
        self.queue_time.snapshot()
    }

    /// How long permits were held, from grant to release.
    pub fn lease_duration(&self) -> HistogramSnapshot {
        self.lease_duration.snapshot()
    }

    pub fn stats(&self) -> ConcurrencyStats {
        let table = self.table.lock();
        let mut stats = table.stats;
        let slots = std::iter::once(&table.unkeyed).chain(table.keyed.values());
        for slot in slots {
            stats.in_flight += u64::from(slot.in_flight);
            stats.queued += slot.queue.len() as u64;
        }
        stats.active_keys = table.keyed.len() as u64;
        stats
    }
}

#[cfg(test)]
#[path = "limiter_tests.rs"]
mod tests;
