//! Unkeyed limiters: one state for the whole process (a global limit, or a client throttling
//! its own calls), with no key to hash, no map and no lock. Issue 12; so far the bucket family
//! (token bucket, GCRA) in Rust, over one atomic word.

mod atomic_bucket;

pub use atomic_bucket::AtomicBucket;
