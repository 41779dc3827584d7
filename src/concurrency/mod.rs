//! Concurrency limits: how many requests may be in flight at once.

pub mod adaptive;
