//! TLS to Postgres and Redis (H2), against throwaway servers with a private CA.

use std::time::Duration;

use redis::AsyncCommands;
use shared::{
    config::Config,
    queue::{self, Waited},
    secret::Secret,
    store,
};
use sqlx::PgPool;
use tests::tls::{TlsPostgres, TlsRedis};

async fn ssl_in_use(pool: &PgPool) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(pool)
        .await
        .expect("pg_stat_ssl")
}

async fn migrations_applied(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(pool).await.expect("migrations")
}

#[tokio::test]
async fn postgres_over_tls_verify_full_require_and_the_default() {
    let pg = TlsPostgres::start().await;
    let ca = pg.tls.ca.display().to_string();

    // verify-full against our CA: the database is created, migrated, and the session encrypted.
    let url = pg.url("fbtr_tls", &format!("sslmode=verify-full&sslrootcert={ca}"));
    let pool = store::connect_and_migrate(&Secret::new(url), shared::config::DEFAULT_DATABASE_SCHEMA, 2)
        .await
        .expect("verify-full connects");
    assert!(ssl_in_use(&pool).await);
    assert!(migrations_applied(&pool).await > 0);
    pool.close().await;

    // require encrypts without checking the certificate.
    let pool = store::connect_and_migrate(
        &Secret::new(pg.url("fbtr_tls", "sslmode=require")),
        shared::config::DEFAULT_DATABASE_SCHEMA,
        2,
    )
    .await
    .expect("require");
    assert!(ssl_in_use(&pool).await);
    pool.close().await;

    // The default (prefer) now takes TLS when the server offers it; it used to stay in cleartext.
    let pool =
        store::connect_and_migrate(&Secret::new(pg.url("fbtr_tls", "")), shared::config::DEFAULT_DATABASE_SCHEMA, 2)
            .await
            .expect("default");
    assert!(ssl_in_use(&pool).await);
    pool.close().await;

    // verify-full really verifies: the system roots do not know our CA.
    let unverified = store::connect_and_migrate(
        &Secret::new(pg.url("fbtr_tls", "sslmode=verify-full")),
        shared::config::DEFAULT_DATABASE_SCHEMA,
        2,
    )
    .await;
    assert!(unverified.is_err(), "a certificate from an unknown CA must be refused");
}

fn tls_config(redis: &TlsRedis, ca: bool) -> Config {
    Config {
        redis_url: Secret::new(format!("rediss://127.0.0.1:{}", redis.port)),
        redis_tls_ca_file: ca.then(|| redis.tls.ca.clone()),
        redis_key_prefix: "tls-test:".into(),
        ..Config::default()
    }
}

#[tokio::test]
async fn redis_over_tls_with_a_private_ca() {
    let redis = TlsRedis::start().await;
    let config = tls_config(&redis, true);
    let mut conn = tokio::time::timeout(Duration::from_secs(10), queue::connect(&config))
        .await
        .expect("connects in time")
        .expect("rediss:// connects");
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.expect("PING");
    assert_eq!(pong, "PONG");
    let () = conn.set("tls-test:k", "v").await.expect("SET");
    let v: String = conn.get("tls-test:k").await.expect("GET");
    assert_eq!(v, "v");
    // The waiting caller's pub/sub path goes through TLS too.
    let waited = queue::wait_for_report(&config, uuid::Uuid::new_v4(), Duration::from_millis(200)).await;
    assert_eq!(waited.expect("wait over TLS"), Waited::NoWorker);

    // Without the CA, the system roots do not trust the server. (One connection, not the
    // connection manager, which would retry a refused handshake for seconds.)
    let untrusted = tokio::time::timeout(Duration::from_secs(10), async {
        queue::client(&tls_config(&redis, false))?.get_multiplexed_async_connection().await
    })
    .await;
    let untrusted = untrusted.expect("refused in time").map(|_| ()).expect_err("an unknown CA must be refused");
    assert!(
        untrusted.to_string().contains("certificate") || untrusted.to_string().contains("UnknownIssuer"),
        "{untrusted}"
    );

    // Cleartext to the TLS port does not get through.
    let plain = Config { redis_url: Secret::new(format!("redis://127.0.0.1:{}", redis.port)), ..Config::default() };
    let cleartext = tokio::time::timeout(Duration::from_secs(10), async {
        let mut c = queue::client(&plain)?.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut c).await
    })
    .await;
    assert!(!matches!(cleartext, Ok(Ok(_))), "{cleartext:?}");
}

#[test]
fn a_ca_file_needs_a_rediss_url() {
    let get = |url: &'static str| {
        move |k: &str| match k {
            "REDIS_URL" => Some(url.to_owned()),
            "REDIS_TLS_CA_FILE" => Some("/etc/ca.pem".to_owned()),
            _ => None,
        }
    };
    let c = Config::from_lookup(get("rediss://cache.internal:6380")).expect("rediss with a CA is valid");
    assert_eq!(c.redis_tls_ca_file.as_deref(), Some(std::path::Path::new("/etc/ca.pem")));
    let e = Config::from_lookup(get("redis://cache.internal:6379")).expect_err("a CA without TLS");
    assert_eq!(e.var, "REDIS_TLS_CA_FILE");
}
