//! The shared-memory store (`storage="shm://NAME"`, issue 11): one exact limit across the
//! processes of a host. The region (`region.rs`, `header.rs`: safe creation, opening and
//! validation), the clock every process shares (`clock.rs`), the lock-free table
//! (`units.rs`, `table.rs`), the stores over it (`store.rs` for one rate, `rates.rs` for
//! several) and how a limiter opens one (`open.rs`, `url.rs`, `shared_store.rs`).

pub mod clock;
pub mod header;
pub mod open;
pub mod rates;
pub mod region;
pub mod shared_store;
pub mod store;
pub mod table;
#[cfg(test)]
mod test_dir;
#[cfg(test)]
mod test_hammer;
#[cfg(test)]
mod test_rng;
mod units;
pub mod url;

pub use shared_store::SharedStore;
pub use store::ShmStore;
pub use table::OnFull;
