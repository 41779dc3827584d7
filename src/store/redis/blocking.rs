//! Blocking connections for the synchronous calls on a single server.
//!
//! A sync `allow()` on the shared async connection would cross threads twice (to the
//! connection's driver task and back), which costs more than the round trip itself on a
//! small machine. A blocking connection does the round trip on the calling thread, as
//! redis-py does; one is taken from the pool per call and put back after it, so concurrent
//! threads each get their own and none waits for another's reply.

use std::time::Duration;

use parking_lot::Mutex;

/// Idle connections kept for reuse; more concurrent callers open more and close the extras.
const MAX_IDLE: usize = 32;

pub struct BlockingPool {
    client: redis::Client,
    idle: Mutex<Vec<redis::Connection>>,
    connect_timeout: Duration,
    timeout: Duration,
}

impl BlockingPool {
    pub fn new(
        url: &str,
        ca_pem: Option<&[u8]>,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> redis::RedisResult<Self> {
        Ok(BlockingPool {
            client: super::tls::open(url, ca_pem)?,
            idle: Mutex::new(Vec::new()),
            connect_timeout,
            timeout,
        })
    }

    fn take(&self) -> redis::RedisResult<redis::Connection> {
        if let Some(connection) = self.idle.lock().pop() {
            return Ok(connection);
        }
        let connection = self
            .client
            .get_connection_with_timeout(self.connect_timeout)?;
        connection.set_read_timeout(Some(self.timeout))?;
        connection.set_write_timeout(Some(self.timeout))?;
        Ok(connection)
    }

    /// Runs `work` on a pooled connection. A connection whose round trip failed on the wire is
    /// dropped (its stream may hold half a reply); one that got an error reply is kept.
    pub fn with<T>(
        &self,
        work: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let mut connection = self.take()?;
        let result = work(&mut connection);
        let healthy = match &result {
            Ok(_) => true,
            Err(e) => !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped()),
        };
        if healthy {
            let mut idle = self.idle.lock();
            if idle.len() < MAX_IDLE {
                idle.push(connection);
            }
        }
        result
    }
}
