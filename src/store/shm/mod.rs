//! The shared-memory store: per-key state in a region every process of the host maps.

pub mod clock;
