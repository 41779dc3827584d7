//! The Redis backend (also Redis Cluster and Valkey): every decision is one atomic Lua script
//! call, so every process and host pointed at the same server shares one exact limit.

mod backend;
mod blocking;
mod deny_cache;
mod scripts;
mod tls;
mod url;

pub use backend::{RedisBackend, StorageError};
pub use url::{parse_storage, redacted, RedisTarget, Storage, StorageUrlError};
