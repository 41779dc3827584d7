//! `storage=` URLs: which store a limiter uses, and how to reach it.
//!
//! - `memory://` (the default): in process.
//! - `redis://[[user]:password@]host[:port][/db][?options]`, and `valkey://` alike.
//! - `redis+cluster://[[user]:password@]host:port[,host:port...][?options]`: a Redis Cluster,
//!   found from any of the listed nodes.
//!
//! Options, as redis-py users write them: `socket_timeout` and `socket_connect_timeout`
//! (seconds). Anything else is refused, so a typo does not pass unnoticed.

use std::time::Duration;

/// Where a limiter keeps its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    Memory,
    Redis(RedisTarget),
}

/// How to reach Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisTarget {
    /// One `redis://` URL per node (one for a single server), without our options.
    pub nodes: Vec<String>,
    pub cluster: bool,
    /// `socket_timeout`: how long one command may take.
    pub response_timeout: Option<Duration>,
    /// `socket_connect_timeout`: how long connecting may take.
    pub connect_timeout: Option<Duration>,
    /// `rediss://`: TLS, checked against the system's roots or `ssl_ca_certs`.
    pub tls: bool,
    /// `ssl_ca_certs`: a PEM file of the certificate authorities to trust instead.
    pub ca_certs: Option<std::path::PathBuf>,
}

/// Why a `storage=` URL is refused; the message quotes the URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageUrlError(pub String);

impl std::fmt::Display for StorageUrlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const SCHEMES: &str = "memory://, shm://NAME, redis://, rediss://, valkey:// or redis+cluster://";

/// `url` with its password replaced by `***`, for error messages, `repr()` and `.storage`
/// (which end up in logs). The authority is found as the parser finds it: up to the first `/`
/// or `?`, the user information before its last `@`.
pub fn redacted(url: &str) -> String {
    without_query_password(&without_userinfo_password(url))
}

fn without_userinfo_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, hosts)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let Some((user, password)) = userinfo.split_once(':') else {
        return url.to_string();
    };
    if password.is_empty() {
        return url.to_string();
    }
    format!("{scheme}://{user}:***@{hosts}{tail}")
}

/// `url` with the value of a `password=` option replaced by `***` (redis-py reads one there;
/// the parser here refuses it, quoting the URL).
fn without_query_password(url: &str) -> String {
    let Some((head, query)) = url.split_once('?') else {
        return url.to_string();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) if name.eq_ignore_ascii_case("password") && !value.is_empty() => {
                format!("{name}=***")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{head}?{}", pairs.join("&"))
}

/// A refused URL as its error quotes it: [`redacted`], and when no `@` ends the authority
/// where the parser looks for it but one comes later (a password with a `/` or a `?` not
/// percent-encoded), everything from the scheme to the last `@` hidden, and true. The URL is
/// refused: hiding too much of it costs nothing, showing a password does.
fn redacted_refused(url: &str) -> (String, bool) {
    let shown = redacted(url);
    let Some((scheme, rest)) = shown.split_once("://") else {
        return (shown, false);
    };
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    match rest.rsplit_once('@') {
        Some((_, after)) if !authority.contains('@') => (format!("{scheme}://***@{after}"), true),
        _ => (shown, false),
    }
}

fn refuse(url: &str, why: impl std::fmt::Display) -> StorageUrlError {
    let (shown, hidden) = redacted_refused(url);
    if hidden {
        // What the parser read as a host or an option was a piece of the password.
        return StorageUrlError(format!(
            "invalid storage URL {shown:?}: an '@' follows the host; a password with '/', '?' \
             or '@' in it must be percent-encoded (%2F, %3F, %40)"
        ));
    }
    StorageUrlError(format!("invalid storage URL {shown:?}: {why}"))
}

fn seconds(url: &str, name: &str, value: &str) -> Result<Duration, StorageUrlError> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s < 1e9 => Ok(Duration::from_secs_f64(s)),
        _ => Err(refuse(
            url,
            format!("{name} must be a number of seconds > 0, got {value:?}"),
        )),
    }
}

/// A host and port as a URL authority wants them, checked.
fn check_host_port(url: &str, hostport: &str) -> Result<(), StorageUrlError> {
    let (host, port) = match hostport.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (host, Some(port)),
        _ => (hostport, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty()
        || host
            .chars()
            .any(|c| c.is_whitespace() || "/?#@,".contains(c))
    {
        return Err(refuse(url, format!("{hostport:?} is not a host[:port]")));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => {
                return Err(refuse(
                    url,
                    format!("port {port:?} is not a number in 1..=65535"),
                ))
            }
        }
    }
    Ok(())
}

/// Parses a `storage=` URL.
pub fn parse_storage(url: &str) -> Result<Storage, StorageUrlError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(refuse(url, format!("expected a URL such as {SCHEMES}")));
    };
    let scheme = scheme.to_ascii_lowercase();
    let cluster = match scheme.as_str() {
        "memory" => {
            return if rest.is_empty() {
                Ok(Storage::Memory)
            } else {
                Err(refuse(url, "memory:// takes nothing after the scheme"))
            };
        }
        "redis" | "valkey" => false,
        "redis+cluster" | "valkey+cluster" => true,
        "rediss" | "valkeys" => false,
        "rediss+cluster" | "valkeys+cluster" => true,
        other => {
            return Err(refuse(
                url,
                format!("unknown scheme {other:?}; use {SCHEMES}"),
            ))
        }
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, authority),
    };
    if hosts.is_empty() {
        return Err(refuse(url, "no host"));
    }
    let hosts: Vec<&str> = hosts.split(',').collect();
    if !cluster && hosts.len() > 1 {
        return Err(refuse(url, "several hosts need redis+cluster://"));
    }
    for host in &hosts {
        check_host_port(url, host)?;
    }
    let db = match path {
        "" => None,
        db if cluster => {
            return Err(refuse(
                url,
                format!("a cluster has no database number, got /{db}"),
            ));
        }
        db => match db.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => return Err(refuse(url, format!("database {db:?} is not a number"))),
        },
    };
    let mut target = RedisTarget {
        nodes: Vec::new(),
        cluster,
        response_timeout: None,
        connect_timeout: None,
        tls: scheme.starts_with("rediss") || scheme.starts_with("valkeys"),
        ca_certs: None,
    };
    let mut verify = true;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "socket_timeout" => target.response_timeout = Some(seconds(url, name, value)?),
            "socket_connect_timeout" => target.connect_timeout = Some(seconds(url, name, value)?),
            "ssl_ca_certs" if target.tls && !value.is_empty() => {
                target.ca_certs = Some(value.into());
            }
            "ssl_cert_reqs" if target.tls => match value {
                "required" => verify = true,
                "none" => verify = false,
                _ => {
                    return Err(refuse(
                        url,
                        format!("ssl_cert_reqs must be \"required\" or \"none\", got {value:?}"),
                    ))
                }
            },
            "ssl_ca_certs" | "ssl_cert_reqs" if !target.tls => {
                return Err(refuse(url, format!("{name} needs a rediss:// (TLS) URL")));
            }
            _ => {
                return Err(refuse(
                    url,
                    format!(
                        "unknown option {name:?} (known: socket_timeout, socket_connect_timeout, \
                         ssl_ca_certs, ssl_cert_reqs)"
                    ),
                ))
            }
        }
    }
    let credentials = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    let db = db.map(|n| format!("/{n}")).unwrap_or_default();
    let scheme = if target.tls { "rediss" } else { "redis" };
    // redis-rs spells "do not verify the certificate" as the URL fragment #insecure.
    let insecure = if verify { "" } else { "#insecure" };
    target.nodes = hosts
        .iter()
        .map(|host| format!("{scheme}://{credentials}{host}{db}{insecure}"))
        .collect();
    Ok(Storage::Redis(target))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis(url: &str) -> RedisTarget {
        match parse_storage(url).unwrap() {
            Storage::Redis(target) => target,
            Storage::Memory => panic!("{url} is not memory"),
        }
    }

    #[test]
    fn memory_and_single_servers() {
        assert_eq!(parse_storage("memory://"), Ok(Storage::Memory));
        let t = redis("redis://127.0.0.1:6379/2");
        assert_eq!(t.nodes, ["redis://127.0.0.1:6379/2"]);
        assert!(!t.cluster);
        let t = redis("valkey://:secret@cache.internal?socket_timeout=0.05");
        assert_eq!(t.nodes, ["redis://:secret@cache.internal"]);
        assert_eq!(t.response_timeout, Some(Duration::from_millis(50)));
        let t = redis("redis://user:pw@[::1]:7000/0?socket_connect_timeout=2");
        assert_eq!(t.nodes, ["redis://user:pw@[::1]:7000/0"]);
        assert_eq!(t.connect_timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn tls_urls_and_their_options() {
        let t = redis("rediss://:pw@cache:6380/1?ssl_ca_certs=/etc/ca.pem");
        assert!(t.tls);
        assert_eq!(t.nodes, ["rediss://:pw@cache:6380/1"]);
        assert_eq!(
            t.ca_certs.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        let t = redis("valkeys://cache?ssl_cert_reqs=none");
        assert_eq!(t.nodes, ["rediss://cache#insecure"]);
        let t = redis("rediss+cluster://a:1,b:2");
        assert!(t.tls && t.cluster);
        assert_eq!(t.nodes, ["rediss://a:1", "rediss://b:2"]);
    }

    #[test]
    fn clusters_list_their_nodes() {
        let t = redis("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001");
        assert!(t.cluster);
        assert_eq!(
            t.nodes,
            ["redis://:pw@10.0.0.1:7000", "redis://:pw@10.0.0.2:7001"]
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redacted("redis://user:secret@h:1/0?socket_timeout=1"),
            "redis://user:***@h:1/0?socket_timeout=1"
        );
        assert_eq!(redacted("redis://:p@ss@h"), "redis://:***@h");
        assert_eq!(
            redacted("redis+cluster://:pw@a:1,b:2"),
            "redis+cluster://:***@a:1,b:2"
        );
        for url in [
            "redis://h:1/0",
            "redis://user@h",
            "redis://:@h",
            "memory://",
        ] {
            assert_eq!(redacted(url), url);
        }
        let err = parse_storage("redis://:secret@h:0").unwrap_err().0;
        assert!(
            !err.contains("secret") && err.contains("redis://:***@h:0"),
            "{err}"
        );
    }

    #[test]
    fn passwords_written_otherwise_are_hidden_too() {
        assert_eq!(
            redacted("redis://h/0?socket_timeout=1&password=s3cret&PASSWORD=x&password="),
            "redis://h/0?socket_timeout=1&password=***&PASSWORD=***&password="
        );
        for (url, quoted) in [
            ("redis://h?password=s3cret", "redis://h?password=***"),
            ("redis://:s3/cret@h:1/0", "redis://***@h:1/0"),
            ("rediss://u:s3?cret@h:6380", "rediss://***@h:6380"),
            (
                "redis+cluster://:s3/c@cret@x:1,y:2",
                "redis+cluster://***@x:1,y:2",
            ),
        ] {
            let err = parse_storage(url).unwrap_err().0;
            assert!(err.contains(&format!("{quoted:?}")), "{url}: {err}");
            assert!(!err.contains("s3") && !err.contains("cret"), "{url}: {err}");
        }
        let ca = "rediss://h:6380?ssl_ca_certs=/etc/a@b/ca.pem";
        assert_eq!(redacted(ca), ca, "a valid URL is shown as it is");
    }

    #[test]
    fn bad_urls_are_refused_with_the_url_quoted() {
        for (url, why) in [
            ("localhost:6379", "expected a URL"),
            ("http://localhost", "unknown scheme \"http\""),
            ("redis://h?ssl_ca_certs=/x", "needs a rediss://"),
            ("rediss://h?ssl_cert_reqs=maybe", "ssl_cert_reqs"),
            ("memory://x", "nothing after"),
            ("redis://", "no host"),
            ("redis://a:1,b:2", "redis+cluster"),
            ("redis://host:99999", "port \"99999\""),
            ("redis://host:0", "port \"0\""),
            ("redis://host/abc", "database \"abc\""),
            ("redis+cluster://a:1/0", "no database"),
            ("redis://host?timeout=1", "unknown option \"timeout\""),
            ("redis://host?socket_timeout=0", "socket_timeout"),
            ("redis://host?socket_timeout=soon", "socket_timeout"),
            ("redis://ho st", "host[:port]"),
        ] {
            let err = parse_storage(url).unwrap_err().0;
            assert!(err.contains(&format!("{url:?}")), "{err}");
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}
