//! Clients for `redis://` and `rediss://` URLs: TLS through rustls (ring provider), trusting
//! the system's roots, or only the authorities of an `ssl_ca_certs` file.

use std::sync::Once;

use redis::{Client, IntoConnectionInfo, RedisResult, TlsCertificates};

/// rustls needs one process-wide crypto provider; another library may have installed one
/// already, which is as good.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The trusted authorities as `redis` wants them, when an `ssl_ca_certs` file was given.
pub fn certificates(ca_pem: Option<&[u8]>) -> Option<TlsCertificates> {
    ca_pem.map(|pem| TlsCertificates {
        client_tls: None,
        root_cert: Some(pem.to_vec()),
    })
}

/// A client for one node's URL.
pub fn open(url: &str, ca_pem: Option<&[u8]>) -> RedisResult<Client> {
    if url.starts_with("rediss://") {
        install_crypto_provider();
    }
    // No CLIENT SETINFO when connecting: without a password or a database to select, a new
    // connection then needs no reply before its first command. A server that accepts
    // connections but does not answer (stopped, overloaded) would otherwise hold a sync call
    // that has to reconnect for twice the `timeout`: the redis crate reads the handshake's
    // reply again after a timed-out read (measured with strace on a SIGSTOPped server: 0.53 s
    // at timeout=0.25, now 0.25 s).
    let info = url.into_connection_info()?;
    let handshake = info.redis_settings().clone().set_skip_set_lib_name();
    let info = info.set_redis_settings(handshake);
    match certificates(ca_pem) {
        Some(certs) => Client::build_with_tls(info, certs),
        None => Client::open(info),
    }
}

/// For a cluster's TLS nodes.
pub fn prepare_cluster() {
    install_crypto_provider();
}
