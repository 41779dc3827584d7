//! The shared-memory store (`storage="shm://NAME"`, issue 11): one exact limit across the
//! processes of a host. Built so far: the region (`region.rs`: safe creation, opening and
//! validation), its header (`header.rs`: the layout, stated once) and the clock every process
//! shares (`clock.rs`: one calibration kept in the header).

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
mod test_rng;
mod units;
pub mod url;

pub use shared_store::SharedStore;
pub use store::ShmStore;
pub use table::OnFull;
