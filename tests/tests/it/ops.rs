//! Operations: the Postgres connection budget and session timeouts (M7), and `/readyz` on the
//! worker and the producer (L6).

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::Value;
use shared::{config::Config, secret::Secret};
use sqlx::Connection;
use tests::{
    TestEnv,
    outage::{TcpProxy, ThrowawayRedis, free_port},
};

/// The pool follows DATABASE_POOL_SIZE, not WORKER_CONCURRENCY: 20 queries at once on a worker's
/// pool never open more than 3 sessions; each session has the statement and lock timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_pool_follows_database_pool_size_and_sets_timeouts() {
    let env = TestEnv::with(|c| {
        c.database_pool_size = Some(3);
        c.worker_concurrency = 32;
    })
    .await;
    // Only the worker's sessions and our observer remain on the test database.
    env.db.close().await;
    let state = env.worker_state().await;
    let observer = sqlx::PgConnection::connect(env.config.database_url.expose()).await.expect("observer");
    let db = state.pipeline.db.clone();
    let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    // The sessions that created and migrated the database end as connect returns; wait until only
    // the pool's first one is left. (The one observer session is lent to each check in turn.)
    let observer = tokio::sync::Mutex::new(observer);
    tests::wait::until(Duration::from_secs(5), "setup sessions ended (only the pool's first left)", || async {
        let mut observer = observer.lock().await;
        sqlx::query_scalar::<_, i64>(others).fetch_one(&mut *observer).await.expect("count") <= 1
    })
    .await;
    let mut observer = observer.into_inner();
    let sleepers: Vec<_> = (0..20)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { sqlx::query("SELECT pg_sleep(0.15)").execute(&db).await })
        })
        .collect();
    let mut peak = 0i64;
    while !sleepers.iter().all(|s| s.is_finished()) {
        let n: i64 = sqlx::query_scalar(others).fetch_one(&mut observer).await.expect("pg_stat_activity");
        peak = peak.max(n);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for s in sleepers {
        s.await.expect("task").expect("query within the pool's acquire timeout");
    }
    assert_eq!(peak, 3, "20 concurrent queries use exactly the 3 connections allowed");
    let statement: String = sqlx::query_scalar("SHOW statement_timeout").fetch_one(&db).await.expect("show");
    let lock: String = sqlx::query_scalar("SHOW lock_timeout").fetch_one(&db).await.expect("show");
    assert_eq!((statement.as_str(), lock.as_str()), (shared::store::STATEMENT_TIMEOUT, shared::store::LOCK_TIMEOUT));
    // The timeout really stops a runaway statement.
    let mut conn = db.acquire().await.expect("conn");
    sqlx::query("SET statement_timeout = '100ms'").execute(&mut *conn).await.expect("set");
    let cancelled = sqlx::query("SELECT pg_sleep(5)").execute(&mut *conn).await.expect_err("cancelled");
    assert_eq!(cancelled.as_database_error().and_then(|d| d.code()).as_deref(), Some("57014"), "{cancelled}");
}

async fn get(url: &str) -> Result<(StatusCode, Value), reqwest::Error> {
    let resp = reqwest::Client::new().get(url).timeout(Duration::from_secs(10)).send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
}

/// Polls `url` until `want` holds for an answer, for at most `limit`; returns that answer. A
/// refused connection (the server not listening yet) counts as no answer.
async fn until(url: &str, limit: Duration, want: impl Fn(StatusCode, &Value) -> bool) -> (StatusCode, Value) {
    let started = Instant::now();
    loop {
        let last = match get(url).await {
            Ok((code, body)) if want(code, &body) => return (code, body),
            Ok((code, body)) => format!("{code} {body}"),
            Err(e) => e.to_string(),
        };
        assert!(started.elapsed() < limit, "last answer of {url}: {last}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn with_metrics_port(port: u16) -> impl FnOnce(&mut Config) {
    move |c| c.worker_metrics_bind = format!("127.0.0.1:{port}").parse().expect("addr")
}

#[tokio::test]
async fn worker_readyz_is_200_when_its_loop_runs() {
    let port = free_port();
    let env = TestEnv::with(with_metrics_port(port)).await;
    let worker = env.spawn_worker();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let (_, body) = until(&url, Duration::from_secs(20), |code, _| code == StatusCode::OK).await;
    assert_eq!(body["status"], "ready");
    worker.stop().await.expect("stop");
}

/// A queue key of the wrong type fails every apalis fetch, so the loop restarts again and again:
/// the worker is alive (/healthz) but not ready, and says why in the API's error body.
#[tokio::test]
async fn worker_readyz_is_503_while_its_loop_keeps_failing() {
    let port = free_port();
    let env = TestEnv::with(with_metrics_port(port)).await;
    let q = shared::keys::RedisKeys::of(&env.config).queue();
    let () = env.redis.clone().set(format!("{q}:scheduled"), "not a sorted set").await.expect("corrupt");
    let worker = env.spawn_worker();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let (_, body) = until(&url, Duration::from_secs(20), |code, _| code == StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(body["error"], "unavailable", "{body}");
    // From the first failure on it stays unready, through restart after restart.
    let (_, body) = until(&url, Duration::from_secs(30), |code, body| {
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        body["message"].as_str().is_some_and(|m| m.contains("after 3 failed runs") || m.contains("failed 3 times"))
    })
    .await;
    assert!(body["message"].as_str().is_some_and(|m| m.contains("worker loop")), "{body}");
    let (health, _) = get(&format!("http://127.0.0.1:{port}/healthz")).await.expect("healthz");
    assert_eq!(health, StatusCode::OK, "liveness is not readiness");
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_readyz_follows_redis() {
    let redis = ThrowawayRedis::start().await;
    let url = redis.url();
    let env = TestEnv::with(|c| c.redis_url = Secret::new(url)).await;
    let server = env.serve_api().await;
    let readyz = format!("{}/readyz", server.base);
    let (_, body) = until(&readyz, Duration::from_secs(20), |code, _| code == StatusCode::OK).await;
    assert_eq!(body["status"], "ready");
    let (_, body) = tokio::join!(
        redis.freeze_for(Duration::from_secs(4)),
        until(&readyz, Duration::from_secs(4), |code, _| code == StatusCode::SERVICE_UNAVAILABLE)
    )
    .1;
    assert_eq!(body["error"], "unavailable", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("Redis")), "{body}");
    until(&readyz, Duration::from_secs(20), |code, _| code == StatusCode::OK).await;
    server.shutdown().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_readyz_follows_postgres() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let port = proxy.addr.port();
    let env = TestEnv::with(|c| {
        let url = c.database_url.expose().replace(":5432/", &format!(":{port}/"));
        c.database_url = Secret::new(url);
    })
    .await;
    let server = env.serve_api().await;
    let readyz = format!("{}/readyz", server.base);
    until(&readyz, Duration::from_secs(20), |code, _| code == StatusCode::OK).await;
    proxy.cut();
    let (_, body) = until(&readyz, Duration::from_secs(10), |code, _| code == StatusCode::SERVICE_UNAVAILABLE).await;
    assert!(body["message"].as_str().is_some_and(|m| m.contains("Postgres")), "{body}");
    proxy.restore();
    until(&readyz, Duration::from_secs(20), |code, _| code == StatusCode::OK).await;
    server.shutdown().await.expect("stop");
}
