//! Operations: the Postgres connection budget and session timeouts (M7).

use std::time::{Duration, Instant};

use sqlx::Connection;
use tests::TestEnv;

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
    let mut observer = sqlx::PgConnection::connect(env.config.database_url.expose()).await.expect("observer");
    let db = state.pipeline.db.clone();
    let others = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    // The sessions that created and migrated the database end as connect returns; wait until only
    // the pool's first one is left.
    let started = Instant::now();
    while sqlx::query_scalar::<_, i64>(others).fetch_one(&mut observer).await.expect("count") > 1 {
        assert!(started.elapsed() < Duration::from_secs(5), "setup sessions did not end");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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
