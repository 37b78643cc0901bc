//! Retention: `HISTORY_RETENTION_DAYS` bounds the history tables, in bounded batches, on one
//! replica at a time.

use std::time::Duration;

use shared::{
    metrics::{self, Metrics},
    store::retention::{self, BATCH, Deleted, LOCK_KEY, MAX_BATCHES_PER_TABLE},
};
use sqlx::{Connection as _, PgConnection, PgPool};
use tests::TestEnv;
use uuid::Uuid;

/// Inserts `n` token events `age_days` old, for channel `channel`.
async fn events(db: &PgPool, channel: i32, n: i32, age_days: f64) {
    sqlx::query(
        "INSERT INTO fb_token_events (channel_id, job_id, reason, step, outcome, created_at)
         SELECT $1, gen_random_uuid(), 'cron', 'validate', 'valid', now() - make_interval(secs => $3::float8 * 86400)
         FROM generate_series(1, $2)",
    )
    .bind(channel)
    .bind(n)
    .bind(age_days)
    .execute(db)
    .await
    .expect("events");
}

async fn send_failure(db: &PgPool, channel: i32, age_days: f64) {
    sqlx::query(
        "INSERT INTO fb_send_failures (channel_id, error_kind, decision, received_at)
         VALUES ($1, 'auth', 'enqueued', now() - make_interval(secs => $2::float8 * 86400))",
    )
    .bind(channel)
    .bind(age_days)
    .execute(db)
    .await
    .expect("send failure");
}

/// A webhook row `age_days` old in state `state` (`delivered`, `given_up` or `pending`); the
/// channel id goes into the URL so the test can tell rows apart.
async fn webhook(db: &PgPool, channel: i32, age_days: f64, state: &str) {
    sqlx::query(
        "INSERT INTO fb_webhook_deliveries (event_id, url, body, created_at, delivered_at, given_up_at)
         VALUES ($1, 'http://127.0.0.1:9/' || $2, '{}'::jsonb, now() - make_interval(secs => $3::float8 * 86400),
                 CASE WHEN $4 = 'delivered' THEN now() - make_interval(secs => $3::float8 * 86400) END,
                 CASE WHEN $4 = 'given_up' THEN now() - make_interval(secs => $3::float8 * 86400) END)",
    )
    .bind(Uuid::now_v7())
    .bind(channel.to_string())
    .bind(age_days)
    .bind(state)
    .execute(db)
    .await
    .expect("webhook row");
}

async fn ids(db: &PgPool, sql: &'static str) -> Vec<i32> {
    let mut v: Vec<i32> = sqlx::query_scalar(sql).fetch_all(db).await.expect("select");
    v.sort_unstable();
    v
}

async fn count(db: &PgPool, table: &'static str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}"))).fetch_one(db).await.expect("count")
}

#[tokio::test]
async fn retention_deletes_old_history_and_keeps_new_and_undelivered_rows() {
    let env = TestEnv::new().await;
    let db = &env.db;
    // Channel ids say what each row is: 1 old, 2 just inside the period, 3 new.
    events(db, 1, 3, 31.0).await;
    events(db, 2, 2, 29.9).await;
    events(db, 3, 1, 0.0).await;
    send_failure(db, 1, 45.0).await;
    send_failure(db, 2, 29.9).await;
    send_failure(db, 3, 0.0).await;
    webhook(db, 1, 31.0, "delivered").await;
    webhook(db, 1, 40.0, "given_up").await;
    // Undelivered for a year (deliverers were down): still owed to its endpoint.
    webhook(db, 4, 365.0, "pending").await;
    webhook(db, 2, 29.9, "delivered").await;
    webhook(db, 3, 0.0, "pending").await;
    // A cycle batch's summary rows: account ids say their age as above.
    for (account, days) in [(1, 31.0), (2, 29.9), (3, 0.0)] {
        sqlx::query(
            "INSERT INTO fb_validation_batches (job_id, account_id, reason, healthy, unchanged, created_at)
             VALUES ($1, $2, 'cron', 50, 50, now() - make_interval(secs => $3 * 86400))",
        )
        .bind(uuid::Uuid::new_v4())
        .bind(account)
        .bind(days)
        .execute(db)
        .await
        .expect("insert");
    }

    let deleted = retention::run_once(db, 30).await.expect("run").expect("not locked");
    assert_eq!((deleted.token_events, deleted.send_failures, deleted.webhook_deliveries), (3, 1, 2), "{deleted:?}");
    assert_eq!(deleted.validation_batches, 1, "{deleted:?}");
    assert_eq!(ids(db, "SELECT account_id FROM fb_validation_batches").await, vec![2, 3]);
    assert_eq!(ids(db, "SELECT channel_id FROM fb_token_events").await, vec![2, 2, 3]);
    assert_eq!(ids(db, "SELECT channel_id FROM fb_send_failures").await, vec![2, 3]);
    let urls: Vec<i32> = ids(db, "SELECT substring(url from '[0-9]+$')::int FROM fb_webhook_deliveries").await;
    assert_eq!(urls, vec![2, 3, 4]);

    // Nothing else is old now; a second run deletes nothing, in one statement per table.
    let again = retention::run_once(db, 30).await.expect("run").expect("not locked");
    assert_eq!(again, Deleted { statements: 4, ..Deleted::default() });
    // A shorter period reaches the rows that were inside the first one.
    let shorter = retention::run_once(db, 7).await.expect("run").expect("not locked");
    assert_eq!((shorter.token_events, shorter.send_failures, shorter.webhook_deliveries), (2, 1, 1), "{shorter:?}");
}

#[tokio::test]
async fn retention_deletes_in_bounded_batches_and_counts_them() {
    let env = TestEnv::new().await;
    let db = &env.db;
    let batch = i32::try_from(BATCH).expect("batch");
    events(db, 1, 2 * batch + 500, 60.0).await;
    events(db, 2, 10, 1.0).await;
    // A statement-level trigger records how many rows each DELETE statement removed, seen from
    // inside Postgres rather than from the code under test.
    for sql in [
        "CREATE TABLE delete_log (id serial, n bigint)",
        "CREATE FUNCTION log_delete() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO delete_log (n) SELECT count(*) FROM old_rows; RETURN NULL; END $$",
        "CREATE TRIGGER log_delete AFTER DELETE ON fb_token_events REFERENCING OLD TABLE AS old_rows
         FOR EACH STATEMENT EXECUTE FUNCTION log_delete()",
    ] {
        sqlx::query(sql).execute(db).await.expect("trigger setup");
    }
    let metrics = Metrics::default();
    let deleted = retention::run_once_with(db, 30, BATCH, Some(&metrics)).await.expect("run").expect("not locked");
    assert_eq!(deleted.token_events, u64::try_from(2 * batch + 500).expect("n"));
    let per_statement: Vec<i64> =
        sqlx::query_scalar("SELECT n FROM delete_log ORDER BY id").fetch_all(db).await.expect("log");
    assert_eq!(per_statement, vec![BATCH, BATCH, 500], "each DELETE takes at most {BATCH} rows");
    assert_eq!(count(db, "fb_token_events").await, 10);
    let text = metrics::render(&metrics);
    let line = format!("fb_token_retention_deleted_rows_total{{table=\"fb_token_events\"}} {}", 2 * batch + 500);
    assert!(text.contains(&line), "{text}");
}

#[tokio::test]
async fn one_run_deletes_at_most_its_cap_and_the_next_run_goes_on() {
    let env = TestEnv::new().await;
    let cap = i32::try_from(MAX_BATCHES_PER_TABLE).expect("cap");
    // With 10-row batches the cap is reached after 10 × cap rows.
    events(&env.db, 1, 10 * cap + 7, 60.0).await;
    let first = retention::run_once_with(&env.db, 30, 10, None).await.expect("run").expect("not locked");
    assert_eq!(first.token_events, 10 * MAX_BATCHES_PER_TABLE);
    assert_eq!(count(&env.db, "fb_token_events").await, 7);
    let second = retention::run_once_with(&env.db, 30, 10, None).await.expect("run").expect("not locked");
    assert_eq!(second.token_events, 7);
    assert_eq!(count(&env.db, "fb_token_events").await, 0);
}

/// Waits (bounded) until some session holds the retention lock on this test's database.
async fn wait_for_lock_holder(db: &PgPool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let held: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND objsubid = 1
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND ((classid::bigint << 32) | objid::bigint) = $1)",
        )
        .bind(LOCK_KEY)
        .fetch_one(db)
        .await
        .expect("pg_locks");
        if held {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "no run took the retention lock within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_runs_on_one_replica_at_a_time() {
    let env = TestEnv::new().await;
    let db = env.db.clone();
    events(&db, 1, 50, 60.0).await;

    // Another replica holds the lock: this run skips and deletes nothing.
    let mut other = PgConnection::connect(env.config.database_url.expose()).await.expect("connect");
    let took: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LOCK_KEY).fetch_one(&mut other).await.expect("lock");
    assert!(took);
    assert_eq!(retention::run_once(&db, 30).await.expect("run"), None);
    assert_eq!(count(&db, "fb_token_events").await, 50);
    let released: bool =
        sqlx::query_scalar("SELECT pg_advisory_unlock($1)").bind(LOCK_KEY).fetch_one(&mut other).await.expect("unlock");
    assert!(released);

    // Two runs at once: the first is made to wait inside its DELETE (a table lock held by this
    // test) while it holds the retention lock; the second must skip at once instead of deleting
    // too or queueing behind it.
    let mut blocker = PgConnection::connect(env.config.database_url.expose()).await.expect("connect");
    let mut tx = blocker.begin().await.expect("begin");
    shared::store::schema::set_search_path(&mut tx, &env.config.database_schema).await.expect("our schema");
    sqlx::query("LOCK TABLE fb_token_events IN SHARE MODE").execute(&mut *tx).await.expect("table lock");
    let first = tokio::spawn({
        let db = db.clone();
        async move { retention::run_once(&db, 30).await }
    });
    wait_for_lock_holder(&db).await;
    let second = tokio::time::timeout(Duration::from_secs(5), retention::run_once(&db, 30))
        .await
        .expect("the second run does not wait for the first")
        .expect("run");
    assert_eq!(second, None, "the second run skipped");
    assert!(!first.is_finished(), "the first run is still waiting on the table lock");
    tx.commit().await.expect("release the table");
    let first = tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .expect("first run finishes")
        .expect("join")
        .expect("run")
        .expect("first run had the lock");
    assert_eq!(first.token_events, 50);
    assert_eq!(count(&db, "fb_token_events").await, 0);

    // The first run let go of the lock: a later run is not locked out.
    assert!(retention::run_once(&db, 30).await.expect("run").is_some());
}

#[tokio::test]
async fn the_worker_runs_retention_in_the_background() {
    let env = TestEnv::with(|c| c.history_retention_days = 10).await;
    events(&env.db, 1, 5, 11.0).await;
    events(&env.db, 2, 1, 9.0).await;
    let worker = env.spawn_worker();
    tests::wait::until(Duration::from_secs(15), "the worker deleting old history", || async {
        count(&env.db, "fb_token_events").await <= 1
    })
    .await;
    assert_eq!(ids(&env.db, "SELECT channel_id FROM fb_token_events").await, vec![2]);
    worker.stop().await.expect("worker stops");
}

/// Rows per second on this machine: `cargo test -p tests --test it retention_throughput -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check"]
async fn retention_throughput() {
    let env = TestEnv::new().await;
    let n = 200_000;
    events(&env.db, 1, n, 60.0).await;
    events(&env.db, 2, n, 1.0).await;
    let started = std::time::Instant::now();
    let deleted = retention::run_once(&env.db, 30).await.expect("run").expect("not locked");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(deleted.token_events, u64::try_from(n).expect("n"));
    println!(
        "deleted {} rows in {} statements in {secs:.2} s: {:.0} rows/s",
        deleted.token_events,
        deleted.statements,
        f64::from(n) / secs
    );
}
