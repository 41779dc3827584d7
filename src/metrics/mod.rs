//! What the limiters count about themselves, for `stats()`, the exporters and the dashboard.

mod top_keys;

pub use top_keys::{Counted, TopKeys};
