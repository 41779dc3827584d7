//! Where per-key state lives.

mod contract;
mod key;
mod memory;
mod on_full;
mod policy;
#[cfg(feature = "redis")]
pub mod redis;
mod shard_lock;
#[cfg(unix)]
pub mod shm;
mod sweeper;
#[cfg(test)]
mod threaded_tests;

pub use contract::Store;
pub use key::CompactKey;
pub use memory::{MemoryStore, StoreStats};
pub use on_full::OnFull;
pub use policy::{MultiRate, Policy, SingleRate, StateList};
pub use sweeper::{pause_all_for_fork, resume_all_after_fork, Sweeper};
