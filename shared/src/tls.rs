//! TLS to Postgres and Redis: the crypto provider, the Redis client (optionally trusting a private
//! CA), and the warning for a Postgres connection that may cross a network in cleartext.

use std::{net::IpAddr, path::Path};

use redis::{Client, RedisError, TlsCertificates};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::secret::Secret;

/// Makes aws-lc-rs rustls's process-wide crypto provider. rustls picks one by itself only while
/// exactly one provider feature is enabled across the whole dependency tree; ring is in the tree
/// too (through webpki users), so one more crate enabling rustls's `ring` feature would turn the
/// first `rediss://` connection (the redis crate calls `ClientConfig::builder()`) into a panic.
/// Idempotent and cheap: every connect calls it.
pub fn install_crypto_provider() {
    // Err only says a provider is installed already (by an earlier call, or by the embedding
    // program): any installed provider serves.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The Redis client for `url`. With `ca_file` (`REDIS_TLS_CA_FILE`), a `rediss://` server is
/// verified against that CA alone instead of the system roots.
pub fn redis_client(url: &Secret, ca_file: Option<&Path>) -> Result<Client, RedisError> {
    install_crypto_provider();
    let Some(path) = ca_file else { return Client::open(url.expose()) };
    let pem = std::fs::read(path).map_err(|e| {
        RedisError::from(std::io::Error::new(
            e.kind(),
            format!("cannot read REDIS_TLS_CA_FILE={}: {e}", path.display()),
        ))
    })?;
    Client::build_with_tls(url.expose(), TlsCertificates { client_tls: None, root_cert: Some(pem) })
}

/// Whether Postgres traffic to `options` may go over a network in cleartext: a host other than this
/// machine with an sslmode that falls back to (or stays on) plaintext.
pub fn postgres_may_be_cleartext(options: &PgConnectOptions) -> bool {
    let via_socket = options.get_socket().is_some();
    cleartext_risk(options.get_host(), via_socket, options.get_ssl_mode())
}

/// The decision of `postgres_may_be_cleartext`, on plain values.
pub fn cleartext_risk(host: &str, via_socket: bool, mode: PgSslMode) -> bool {
    let weak = matches!(mode, PgSslMode::Disable | PgSslMode::Allow | PgSslMode::Prefer);
    weak && !via_socket && !is_local_host(host)
}

/// This machine: a unix socket directory, `localhost`, 127.0.0.0/8 or ::1 (also IPv4-mapped).
fn is_local_host(host: &str) -> bool {
    if host.starts_with('/') {
        return true;
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.eq_ignore_ascii_case("localhost.") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    fn risky(url: &str) -> bool {
        postgres_may_be_cleartext(&PgConnectOptions::from_str(url).expect("url"))
    }

    #[test]
    fn remote_hosts_without_required_tls_are_flagged() {
        for url in [
            "postgres://u@db.internal:5432/x",
            "postgres://u@10.0.0.5/x?sslmode=prefer",
            "postgres://u@db.example.com/x?sslmode=disable",
            "postgres://u@db.example.com/x?sslmode=allow",
            "postgres://u@[2001:db8::1]/x",
            "postgres://u@128.0.0.1/x",
        ] {
            assert!(risky(url), "{url}");
        }
    }

    #[test]
    fn local_hosts_and_required_tls_are_not() {
        for url in [
            "postgres://u@127.0.0.1/x",
            "postgres://u@127.8.9.10/x?sslmode=disable",
            "postgres://u@localhost/x",
            "postgres://u@LOCALHOST/x",
            "postgres://u@[::1]/x",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/x",
            "postgres:///x?host=/var/run/postgresql",
            "postgres://u@db.example.com/x?sslmode=require",
            "postgres://u@db.example.com/x?sslmode=verify-ca",
            "postgres://u@db.example.com/x?sslmode=verify-full",
        ] {
            assert!(!risky(url), "{url}");
        }
        assert!(!cleartext_risk("::ffff:127.0.0.1", false, PgSslMode::Prefer));
        assert!(cleartext_risk("db", false, PgSslMode::Prefer));
        assert!(!cleartext_risk("db", true, PgSslMode::Prefer), "a socket never leaves the machine");
    }
}
