//! `RedisBackend`: one limiter's decisions made on Redis, one script call per decision.
//!
//! Time: with a manual clock the client sends its time in nanoseconds, so decisions match the
//! in-memory store exactly; otherwise each script reads the server's `TIME` (microseconds), so
//! hosts with skewed clocks agree, and the rates are sent in microseconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use tokio::sync::OnceCell;

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};

use super::blocking::BlockingPool;
use super::deny_cache::DenyCache;
use super::scripts::script;
use super::tls;
use super::url::RedisTarget;
use crate::algorithm::AlgorithmKind;
use crate::clock::Clock;
use crate::config::{ConfigError, LimiterConfig};
use crate::decision::{Ask, Decision, NEVER};
use crate::metrics::{Histogram, HistogramSnapshot};

/// A failed round trip: the server is unreachable, slow, or answered with an error.
#[derive(Debug)]
pub enum StorageError {
    Timeout(Duration),
    Redis(redis::RedisError),
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageError::Timeout(d) => write!(f, "Redis did not answer within {d:?}"),
            StorageError::Redis(e) => {
                write!(f, "Redis error: {e}")?;
                let text = e.to_string();
                if text.contains("NOAUTH") || text.contains("unauthenticated") {
                    f.write_str(
                        " (the server requires authentication: give the password in the URL, \
                         redis://:password@host)",
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[derive(Clone)]
enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

/// `:<algorithm>:<limit>:<period>` with the period in whole seconds, milliseconds or
/// nanoseconds, whichever is exact: `:gcra:100:60s`.
fn rate_suffix(kind: AlgorithmKind, limit: u64, period_ns: u64) -> Vec<u8> {
    let period = if period_ns % 1_000_000_000 == 0 {
        format!("{}s", period_ns / 1_000_000_000)
    } else if period_ns % 1_000_000 == 0 {
        format!("{}ms", period_ns / 1_000_000)
    } else {
        format!("{period_ns}ns")
    };
    format!(":{}:{limit}:{period}", kind.name()).into_bytes()
}

/// The script's reply: allowed (0/1), limit, remaining, reset_after, retry_after (-1: never).
type Reply = (u8, u64, u64, i64, i64);

/// A manual clock's keys live at least this long on the server (real time), so that Redis
/// expiring them on its own clock never changes a decision the manual clock would make.
const MANUAL_CLOCK_MIN_TTL_MS: u64 = 3_600_000;

pub struct RedisBackend {
    target: RedisTarget,
    connection: OnceCell<Connection>,
    /// Blocking connections for the sync calls (a single server; a cluster's sync calls go
    /// through the async connection).
    blocking: Option<BlockingPool>,
    /// The `ssl_ca_certs` file's authorities, read at construction.
    ca_pem: Option<Vec<u8>>,
    kind: AlgorithmKind,
    prefix: Vec<u8>,
    /// What follows `{key}` in each rate's Redis key: the algorithm and the rate, so that
    /// limiters of other settings under the same prefix never share a state.
    suffixes: Vec<Vec<u8>>,
    /// The script's per-rate parameters, in `unit`.
    params: Vec<u64>,
    /// Nanoseconds per unit of the script's times: 1 with a manual clock, 1000 on server time.
    unit_ns: u64,
    clock: Clock,
    timeout: Duration,
    errors: AtomicU64,
    /// Set from a failed round trip until the next one that succeeds.
    outage: AtomicBool,
    /// Refusals answered in process until their retry time (`local_deny_cache=True`).
    deny_cache: Option<DenyCache>,
    allowed: AtomicU64,
    blocked: AtomicU64,
    /// How long decisions' round trips took.
    latency: Histogram,
}

impl RedisBackend {
    /// Checks the rates for the script's time unit; connects on first use, not here.
    pub fn new(
        target: RedisTarget,
        config: &LimiterConfig,
        clock: Clock,
        prefix: &str,
        timeout: Duration,
        local_deny_cache: bool,
    ) -> Result<Self, ConfigError> {
        let unit_ns = if matches!(clock, Clock::Manual(_)) {
            1
        } else {
            1000
        };
        let mut params = Vec::with_capacity(config.rates.len() * 3);
        for rate in &config.rates {
            let window = (rate.period_ns + unit_ns / 2) / unit_ns;
            if config.algorithm.has_burst() {
                // As the core's Bucket: T = window / limit rounded to the nearest unit.
                let interval = (window + rate.limit / 2) / rate.limit;
                if interval == 0 {
                    return Err(ConfigError {
                        param: "storage",
                        message: format!(
                            "{} requests per {} ns is more than one a microsecond, finer than \
                             Redis time",
                            rate.limit, rate.period_ns
                        ),
                    });
                }
                params.extend([rate.limit, interval, config.burst.unwrap_or(rate.limit)]);
            } else {
                params.extend([rate.limit, window.max(1)]);
            }
        }
        let ca_pem = match &target.ca_certs {
            None => None,
            Some(path) => Some(std::fs::read(path).map_err(|e| ConfigError {
                param: "storage",
                message: format!("cannot read ssl_ca_certs {}: {e}", path.display()),
            })?),
        };
        let blocking = if target.cluster {
            None
        } else {
            let connect_timeout = target.connect_timeout.unwrap_or(timeout);
            let response_timeout = target.response_timeout.unwrap_or(timeout);
            Some(
                BlockingPool::new(
                    &target.nodes[0],
                    ca_pem.as_deref(),
                    connect_timeout,
                    response_timeout,
                )
                .map_err(|e| ConfigError {
                    param: "storage",
                    message: format!("cannot use the URL: {e}"),
                })?,
            )
        };
        Ok(RedisBackend {
            target,
            connection: OnceCell::new(),
            blocking,
            ca_pem,
            kind: config.algorithm,
            prefix: prefix.as_bytes().to_vec(),
            suffixes: config
                .rates
                .iter()
                .map(|rate| rate_suffix(config.algorithm, rate.limit, rate.period_ns))
                .collect(),
            params,
            unit_ns,
            clock,
            timeout,
            errors: AtomicU64::new(0),
            outage: AtomicBool::new(false),
            deny_cache: local_deny_cache.then(DenyCache::default),
            allowed: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            latency: Histogram::default(),
        })
    }

    /// Round trips that failed (timeouts, connection and server errors).
    pub fn storage_errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Whether an outage is under way: the last round trip failed (until one succeeds).
    pub fn in_outage(&self) -> bool {
        self.outage.load(Ordering::Relaxed)
    }

    /// Records how a round trip went; `Some(true)` when it is the first failure of an outage,
    /// `Some(false)` when it is the first success after one, so that an outage is reported
    /// once, not once per request.
    pub fn outage_changed<T, E>(&self, result: &Result<T, E>) -> Option<bool> {
        match result {
            Err(_) => (!self.outage.swap(true, Ordering::AcqRel)).then_some(true),
            Ok(_) => (self.outage.load(Ordering::Relaxed)
                && self.outage.swap(false, Ordering::AcqRel))
            .then_some(false),
        }
    }

    /// How long the decisions' round trips took (failed ones included: a timeout is a
    /// round trip of the timeout's length).
    pub fn latency(&self) -> HistogramSnapshot {
        self.latency.snapshot()
    }

    /// Requests Redis admitted and refused through this backend.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.allowed.load(Ordering::Relaxed),
            self.blocked.load(Ordering::Relaxed),
        )
    }

    async fn connect(&self) -> Result<Connection, redis::RedisError> {
        let t = &self.target;
        if t.cluster {
            let mut builder = redis::cluster::ClusterClient::builder(t.nodes.clone());
            if t.tls {
                tls::prepare_cluster();
            }
            if let Some(certs) = tls::certificates(self.ca_pem.as_deref()) {
                builder = builder.certs(certs);
            }
            if let Some(d) = t.connect_timeout {
                builder = builder.connection_timeout(d);
            }
            if let Some(d) = t.response_timeout {
                builder = builder.response_timeout(d);
            }
            let client = builder.build()?;
            Ok(Connection::Cluster(client.get_async_connection().await?))
        } else {
            let client = tls::open(&t.nodes[0], self.ca_pem.as_deref())?;
            // No retry inside a connection attempt: its backoff (100 ms and more) outlasts the
            // per-call timeout, so a refused connection or a wrong password would only show as
            // a timeout. A failed connection is attempted again by the next call.
            let mut config = ConnectionManagerConfig::new().set_number_of_retries(0);
            config = config.set_connection_timeout(t.connect_timeout.or(Some(self.timeout)));
            config = config.set_response_timeout(t.response_timeout);
            Ok(Connection::Single(
                ConnectionManager::new_with_config(client, config).await?,
            ))
        }
    }

    /// Runs `work` on the connection (made on first use) within the per-call timeout.
    async fn round_trip<T, F>(&self, work: impl FnOnce(Connection) -> F) -> Result<T, StorageError>
    where
        F: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempt = async {
            let connection = self.connection.get_or_try_init(|| self.connect()).await?;
            work(connection.clone()).await
        };
        let result = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => StorageError::Redis(error),
            Err(_) => StorageError::Timeout(self.timeout),
        };
        self.errors.fetch_add(1, Ordering::Relaxed);
        Err(result)
    }

    /// `<prefix>:{<key>}:<algorithm>:<limit>:<period>` for each rate. The braces make the key
    /// the Redis Cluster hash tag, so all of a key's rates share one slot (and one script
    /// call) while different keys spread over the cluster; prefixes have no braces, so a
    /// prefix and a key can never be read as another prefix and key. An empty key would
    /// make an empty tag, which Redis ignores: it is `{<prefix>}:<suffix>` instead, a shape
    /// no other key takes.
    fn keys(&self, key: &[u8]) -> Vec<Vec<u8>> {
        self.suffixes
            .iter()
            .map(|suffix| {
                let mut k = Vec::with_capacity(self.prefix.len() + key.len() + suffix.len() + 4);
                if key.is_empty() {
                    k.push(b'{');
                    k.extend_from_slice(&self.prefix);
                    k.extend_from_slice(b"}:");
                } else {
                    k.extend_from_slice(&self.prefix);
                    k.extend_from_slice(b":{");
                    k.extend_from_slice(key);
                    k.push(b'}');
                }
                k.extend_from_slice(suffix);
                k
            })
            .collect()
    }

    /// The script call for `ask`: mode "decide", "dry" (decide, write nothing) or "peek" (the
    /// standing; cost 0).
    fn invocation(&self, key: &[u8], ask: Ask) -> redis::ScriptInvocation<'static> {
        let (mode, cost) = match ask {
            Ask::Decide(cost) => ("decide", cost),
            Ask::Preview(cost) => ("dry", cost),
            Ask::Standing => ("peek", 0),
        };
        let mut invocation = script(self.kind).prepare_invoke();
        for k in self.keys(key) {
            invocation.key(k);
        }
        let manual = matches!(self.clock, Clock::Manual(_));
        let now = if manual {
            self.clock.now_ns().to_string()
        } else {
            String::new()
        };
        let (unit_per_ms, min_ttl) = if manual {
            (1_000_000, MANUAL_CLOCK_MIN_TTL_MS)
        } else {
            (1000, 0)
        };
        invocation
            .arg(mode)
            .arg(now)
            .arg(cost)
            .arg(unit_per_ms)
            .arg(min_ttl);
        for p in &self.params {
            invocation.arg(*p);
        }
        invocation
    }

    async fn evaluate(&self, key: &[u8], ask: Ask) -> Result<Decision, StorageError> {
        let invocation = self.invocation(key, ask);
        let began = std::time::Instant::now();
        let reply = self
            .round_trip(|connection| async move {
                match connection {
                    Connection::Single(mut c) => invocation.invoke_async(&mut c).await,
                    Connection::Cluster(mut c) => invocation.invoke_async(&mut c).await,
                }
            })
            .await;
        self.latency.observe(elapsed_ns(began));
        let reply: Reply = reply?;
        Ok(self.decision(reply))
    }

    /// The script's reply, from its units to a [`Decision`].
    fn decision(&self, reply: Reply) -> Decision {
        let (allowed, limit, remaining, reset, retry) = reply;
        let unit = |v: i64| (v.max(0) as u64).saturating_mul(self.unit_ns);
        Decision {
            allowed: allowed == 1,
            limit,
            remaining,
            reset_after_ns: unit(reset),
            retry_after_ns: if retry < 0 { NEVER } else { unit(retry) },
        }
    }

    /// Counts a failed round trip and says what failed.
    fn failed(&self, error: redis::RedisError) -> StorageError {
        self.errors.fetch_add(1, Ordering::Relaxed);
        if error.is_timeout() {
            StorageError::Timeout(self.timeout)
        } else {
            StorageError::Redis(error)
        }
    }

    /// Counts a decision in `allowed` or `blocked`: Redis's, the deny cache's, and the answer
    /// `on_storage_error` gave while Redis failed (so `stats()` sees every decision made).
    pub fn count(&self, decision: &Decision) {
        let counter = if decision.allowed {
            &self.allowed
        } else {
            &self.blocked
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Whether the sync calls below can run on this thread (a single server), rather than
    /// through the async connection.
    pub fn has_blocking(&self) -> bool {
        self.blocking.is_some()
    }

    /// [`Self::answer`] on the calling thread, blocking. Only for a single server (see
    /// [`Self::has_blocking`]).
    pub fn answer_blocking(&self, key: &[u8], ask: Ask) -> Result<Decision, StorageError> {
        if let Some(refused) = self.cached_refusal(key, ask) {
            return Ok(refused);
        }
        let pool = self.blocking.as_ref().expect("has_blocking() was checked");
        let invocation = self.invocation(key, ask);
        let began = std::time::Instant::now();
        let reply = pool.with(|connection| invocation.invoke(connection));
        self.latency.observe(elapsed_ns(began));
        let reply: Reply = reply.map_err(|e| self.failed(e))?;
        let decision = self.decision(reply);
        self.decided(key, ask, &decision);
        Ok(decision)
    }

    /// After Redis answered a decision: counts it and remembers a refusal. A preview or a
    /// standing is neither counted nor remembered.
    fn decided(&self, key: &[u8], ask: Ask, decision: &Decision) {
        if let Ask::Decide(_) = ask {
            self.count(decision);
            self.remember_refusal(key, decision);
        }
    }

    /// A refusal the deny cache still holds for `key` (counted as blocked for a decision).
    /// A preview answers it too, since the decision would.
    fn cached_refusal(&self, key: &[u8], ask: Ask) -> Option<Decision> {
        let refused = self.deny_cache.as_ref()?.check(key, self.clock.now_ns())?;
        if let Ask::Decide(_) = ask {
            self.count(&refused);
        }
        Some(refused)
    }

    /// Drops cached refusals of `key`, or of every key.
    fn forget_refusals(&self, key: Option<&[u8]>) {
        match (&self.deny_cache, key) {
            (Some(cache), Some(key)) => cache.forget(key),
            (Some(cache), None) => cache.clear(),
            (None, _) => {}
        }
    }

    fn remember_refusal(&self, key: &[u8], decision: &Decision) {
        if let Some(cache) = &self.deny_cache {
            cache.remember(key, decision, self.clock.now_ns());
        }
    }

    /// [`Self::reset`] on the calling thread, blocking (a single server).
    pub fn reset_blocking(&self, key: &[u8]) -> Result<bool, StorageError> {
        self.forget_refusals(Some(key));
        let pool = self.blocking.as_ref().expect("has_blocking() was checked");
        let keys = self.keys(key);
        let removed: u64 = pool
            .with(|connection| redis::cmd("DEL").arg(keys).query(connection))
            .map_err(|e| self.failed(e))?;
        Ok(removed > 0)
    }

    /// Answers `ask` for `key` in one script call: a decision counts the cost if every rate
    /// admits it; a preview makes the same decision and writes nothing; a standing is what a
    /// request of cost 0 would see.
    pub async fn answer(&self, key: &[u8], ask: Ask) -> Result<Decision, StorageError> {
        if let Some(refused) = self.cached_refusal(key, ask) {
            return Ok(refused);
        }
        let decision = self.evaluate(key, ask).await?;
        self.decided(key, ask, &decision);
        Ok(decision)
    }

    /// Deletes every key of this prefix (on a cluster, on every master); returns how many were
    /// deleted.
    pub async fn clear(&self) -> Result<u64, StorageError> {
        self.forget_refusals(None);
        let nodes = if self.target.cluster {
            self.masters().await?.into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        // The prefix's glob characters are escaped, so that "a*" does not match "abc"'s keys.
        let mut escaped = Vec::with_capacity(self.prefix.len() + 4);
        for &byte in &self.prefix {
            if matches!(byte, b'*' | b'?' | b'[' | b']' | b'\\') {
                escaped.push(b'\\');
            }
            escaped.push(byte);
        }
        // The two shapes of `keys`: `<prefix>:{<key>}...` and, for the empty key, `{<prefix>}:...`.
        let by_key = [escaped.as_slice(), b":{*"].concat();
        let empty_key = [b"{".as_slice(), &escaped, b"}:*"].concat();
        let mut deleted = 0u64;
        for node in &nodes {
            for pattern in [&by_key, &empty_key] {
                deleted += self.delete_matching(pattern.clone(), node.clone()).await?;
            }
        }
        Ok(deleted)
    }

    /// The cluster's masters, from `CLUSTER SLOTS`: each slot range names its master first.
    async fn masters(&self) -> Result<Vec<(String, u16)>, StorageError> {
        let ranges: Vec<Vec<redis::Value>> = self
            .round_trip(|connection| async move {
                let mut cmd = redis::cmd("CLUSTER");
                cmd.arg("SLOTS");
                match connection {
                    Connection::Single(mut c) => cmd.query_async(&mut c).await,
                    Connection::Cluster(mut c) => cmd.query_async(&mut c).await,
                }
            })
            .await?;
        let mut masters = Vec::new();
        for range in ranges {
            let Some(master) = range.into_iter().nth(2) else {
                continue;
            };
            let node: Vec<redis::Value> =
                redis::from_redis_value(master).map_err(|e| StorageError::Redis(e.into()))?;
            let mut node = node.into_iter();
            let (Some(host), Some(port)) = (node.next(), node.next()) else {
                continue;
            };
            let host: String =
                redis::from_redis_value(host).map_err(|e| StorageError::Redis(e.into()))?;
            let port: u16 =
                redis::from_redis_value(port).map_err(|e| StorageError::Redis(e.into()))?;
            if !masters.contains(&(host.clone(), port)) {
                masters.push((host, port));
            }
        }
        Ok(masters)
    }

    /// SCANs for `pattern` (on a cluster, on the master `node`) and UNLINKs what it finds.
    async fn delete_matching(
        &self,
        pattern: Vec<u8>,
        node: Option<(String, u16)>,
    ) -> Result<u64, StorageError> {
        let mut deleted = 0u64;
        let mut cursor = 0u64;
        loop {
            let (pattern, node) = (pattern.clone(), node.clone());
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .round_trip(|connection| async move {
                    let mut cmd = redis::cmd("SCAN");
                    cmd.arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000);
                    match (connection, node) {
                        (Connection::Cluster(mut c), Some((host, port))) => {
                            let routing =
                                RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                                    host,
                                    port,
                                });
                            let value = c.route_command(cmd, routing).await?;
                            Ok(redis::from_redis_value(value)?)
                        }
                        (Connection::Single(mut c), _) => cmd.query_async(&mut c).await,
                        (Connection::Cluster(mut c), None) => cmd.query_async(&mut c).await,
                    }
                })
                .await?;
            if !keys.is_empty() {
                let removed: u64 = self
                    .round_trip(|connection| async move {
                        match connection {
                            Connection::Single(mut c) => {
                                redis::cmd("UNLINK").arg(keys).query_async(&mut c).await
                            }
                            // Keys of different slots cannot share one command on a cluster.
                            Connection::Cluster(mut c) => {
                                let mut removed = 0u64;
                                for key in keys {
                                    let n: u64 =
                                        redis::cmd("UNLINK").arg(key).query_async(&mut c).await?;
                                    removed += n;
                                }
                                Ok(removed)
                            }
                        }
                    })
                    .await?;
                deleted += removed;
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// Forgets `key`; whether it had any state.
    pub async fn reset(&self, key: &[u8]) -> Result<bool, StorageError> {
        self.forget_refusals(Some(key));
        let keys = self.keys(key);
        let removed: u64 = self
            .round_trip(|connection| async move {
                let mut cmd = redis::cmd("DEL");
                cmd.arg(keys);
                match connection {
                    Connection::Single(mut c) => cmd.query_async(&mut c).await,
                    Connection::Cluster(mut c) => cmd.query_async(&mut c).await,
                }
            })
            .await?;
        Ok(removed > 0)
    }
}

/// Nanoseconds since `began` (a round trip's latency: the wall clock, not the limiter's,
/// which may be a test's manual clock).
fn elapsed_ns(began: std::time::Instant) -> u64 {
    u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
