//! Unkeyed limiters: one state for the whole process (a global limit, or a client throttling
//! its own calls), with no key to hash, no map and no lock. Each keeps its state in one atomic
//! word updated by a compare-and-swap loop (`AtomicState`), and decides exactly
//! as a keyed [`crate::Limiter`] of the same algorithm does on one key.

mod atomic_state;
mod primitives;
mod strategy;
mod word;

pub use atomic_state::Reservation;
pub use primitives::{FixedWindow, Gcra, SlidingWindow, TokenBucket};
pub use strategy::{Retry, Strategy};

#[cfg(test)]
#[path = "primitives_tests.rs"]
mod tests;
