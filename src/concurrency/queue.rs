//! The wait queue of one concurrency slot: who gets the next free permit.
//!
//! Waiters are kept in one ordered map keyed by `(priority, ordinal)`. The first entry is the
//! next to be served: the highest priority, and within a priority the oldest waiter (`fifo`) or
//! the newest (`lifo`, whose ordinal counts down). The last entry is the one to shed when a more
//! important waiter arrives at a full queue: the lowest priority, served last. Insertion,
//! removal by ticket and both ends are `O(log n)`, and `n` is at most the queue's bound.

use std::cmp::Reverse;
use std::collections::BTreeMap;

/// The order in which waiters of one priority get permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Fifo,
    /// Newest first: under overload the newest caller is the one most likely still waiting.
    Lifo,
}

impl Order {
    pub const ALL: [Order; 2] = [Order::Fifo, Order::Lifo];

    pub fn name(self) -> &'static str {
        match self {
            Order::Fifo => "fifo",
            Order::Lifo => "lifo",
        }
    }

    /// `"fifo"` or `"lifo"`; anything else is an error naming the value and the choices.
    pub fn parse(text: &str) -> Result<Order, String> {
        Order::ALL
            .into_iter()
            .find(|order| order.name() == text)
            .ok_or_else(|| format!("`order` must be 'fifo' or 'lifo', got {text:?}"))
    }
}

/// Where a waiter sits in its queue; what a caller needs to take it out again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    priority: Reverse<i32>,
    ordinal: u64,
}

impl Place {
    pub fn priority(&self) -> i32 {
        self.priority.0
    }
}

/// One waiter: the permits it asks for, when it came and gives up, and how to wake it (`W`).
#[derive(Debug)]
pub struct Waiter<W> {
    pub cost: u32,
    /// When it was queued (the limiter's clock), for the time-in-queue histogram.
    pub enqueued_ns: u64,
    pub deadline_ns: u64,
    pub wake: W,
}

#[derive(Debug)]
pub struct WaitQueue<W> {
    order: Order,
    waiters: BTreeMap<Place, Waiter<W>>,
    arrivals: u64,
}

impl<W> WaitQueue<W> {
    pub fn new(order: Order) -> Self {
        WaitQueue {
            order,
            waiters: BTreeMap::new(),
            arrivals: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Queues a waiter behind those of its priority (fifo) or ahead of them (lifo).
    pub fn push(&mut self, priority: i32, waiter: Waiter<W>) -> Place {
        self.arrivals += 1;
        let ordinal = match self.order {
            Order::Fifo => self.arrivals,
            Order::Lifo => u64::MAX - self.arrivals,
        };
        let place = Place {
            priority: Reverse(priority),
            ordinal,
        };
        self.waiters.insert(place, waiter);
        place
    }

    /// The waiter to serve next.
    pub fn first(&self) -> Option<(&Place, &Waiter<W>)> {
        self.waiters.first_key_value()
    }

    pub fn pop_first(&mut self) -> Option<Waiter<W>> {
        self.waiters.pop_first().map(|(_, waiter)| waiter)
    }

    /// The priority of the waiter that would be served last (the one to shed first).
    pub fn lowest_priority(&self) -> Option<i32> {
        self.waiters
            .last_key_value()
            .map(|(place, _)| place.priority())
    }

    pub fn pop_last(&mut self) -> Option<Waiter<W>> {
        self.waiters.pop_last().map(|(_, waiter)| waiter)
    }

    /// Takes a waiter out by its place; `None` if it already left (served, shed or expired).
    pub fn remove(&mut self, place: &Place) -> Option<Waiter<W>> {
        self.waiters.remove(place)
    }

    /// Takes out every waiter whose deadline is at or before `now_ns`.
    pub fn remove_expired(&mut self, now_ns: u64) -> Vec<Waiter<W>> {
        let expired: Vec<Place> = self
            .waiters
            .iter()
            .filter(|(_, waiter)| waiter.deadline_ns <= now_ns)
            .map(|(place, _)| *place)
            .collect();
        expired
            .iter()
            .filter_map(|place| self.waiters.remove(place))
            .collect()
    }

    /// The earliest deadline among the waiters.
    pub fn earliest_deadline(&self) -> Option<u64> {
        self.waiters.values().map(|waiter| waiter.deadline_ns).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(wake: u32) -> Waiter<u32> {
        Waiter {
            cost: 1,
            enqueued_ns: 0,
            deadline_ns: u64::from(wake) * 10,
            wake,
        }
    }

    fn drain(queue: &mut WaitQueue<u32>) -> Vec<u32> {
        std::iter::from_fn(|| queue.pop_first().map(|w| w.wake)).collect()
    }

    #[test]
    fn fifo_serves_oldest_first_and_lifo_newest_within_a_priority() {
        for (order, expected) in [(Order::Fifo, [1, 2, 3]), (Order::Lifo, [3, 2, 1])] {
            let mut queue = WaitQueue::new(order);
            for wake in 1..=3 {
                queue.push(0, waiter(wake));
            }
            assert_eq!(drain(&mut queue), expected, "{order:?}");
        }
    }

    #[test]
    fn higher_priority_is_served_first_and_lowest_is_shed_first() {
        let mut queue = WaitQueue::new(Order::Fifo);
        queue.push(0, waiter(1));
        queue.push(5, waiter(2));
        queue.push(-1, waiter(3));
        queue.push(5, waiter(4));
        assert_eq!(queue.lowest_priority(), Some(-1));
        assert_eq!(queue.pop_last().map(|w| w.wake), Some(3));
        assert_eq!(drain(&mut queue), [2, 4, 1]);
    }

    #[test]
    fn remove_by_place_and_expire_by_deadline() {
        let mut queue = WaitQueue::new(Order::Fifo);
        let places: Vec<Place> = (1..=4).map(|w| queue.push(0, waiter(w))).collect();
        assert_eq!(queue.remove(&places[1]).map(|w| w.wake), Some(2));
        assert!(queue.remove(&places[1]).is_none(), "a waiter leaves once");
        assert_eq!(queue.earliest_deadline(), Some(10));
        let expired: Vec<u32> = queue
            .remove_expired(30)
            .into_iter()
            .map(|w| w.wake)
            .collect();
        assert_eq!(expired, [1, 3]);
        assert_eq!(drain(&mut queue), [4]);
    }

    #[test]
    fn order_names_round_trip_and_unknown_is_named() {
        for order in Order::ALL {
            assert_eq!(Order::parse(order.name()), Ok(order));
        }
        let err = Order::parse("random").unwrap_err();
        assert!(err.contains("\"random\"") && err.contains("fifo"), "{err}");
    }
}
