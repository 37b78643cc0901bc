//! Retention: history older than `HISTORY_RETENTION_DAYS` is deleted, so the system's own tables
//! stop growing without bound (at 100k channels every 6 h, `fb_token_events` alone grew by about
//! 146 M rows a year).
//!
//! What goes, by age (`now() - HISTORY_RETENTION_DAYS`, on the database's clock):
//! - `fb_token_events` rows by `created_at`;
//! - `fb_send_failures` rows by `received_at`;
//! - `fb_validation_batches` rows (a cycle batch's count of channels that stayed healthy) by
//!   `created_at`;
//! - `fb_webhook_deliveries` rows by `created_at`, only once delivered or given up. A row still
//!   waiting for delivery stays whatever its age: deleting it would drop a notification silently.
//!
//! `fb_token_states` (one row per channel) and `fb_dead_jobs` (kept for `retry-dead`) are not
//! history and are not touched; neither is anything of Chatwoot's.
//!
//! # Cheap for the database that Chatwoot lives in
//! Every statement deletes at most [`BATCH`] rows (ids picked through an index on the age column)
//! and commits on its own, so no statement holds many row locks, bloats one transaction or stalls
//! replication. It runs off the refresh path, in a task of its own every [`INTERVAL`].
//!
//! # One replica at a time
//! A run first takes a Postgres session advisory lock ([`LOCK_KEY`], `pg_try_advisory_lock`) on a
//! connection of its own and skips the run when another process holds it. Postgres rather than a
//! Redis lease because the lock then has exactly the scope of the rows it protects (advisory locks
//! are per database, so deployments sharing a Redis but not a database do not block each other,
//! and ones sharing a database under different `REDIS_KEY_PREFIX`es do not both delete), and it
//! needs no expiry to tune: it lasts exactly as long as the session, so a run that takes longer
//! than any lease would still be alone, and a process that dies releases it with its connection.
//! The connection is closed, not returned to the pool, when the run ends or is dropped midway: a
//! pooled session would keep the lock and block every later run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Postgres, postgres::PgArguments, query::Query};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::metrics::Metrics;

/// Rows one DELETE statement removes at most.
pub const BATCH: i64 = 1_000;

/// Batches one run deletes from one table at most. A first run on a year of history (the review's
/// 146 M events) would otherwise delete for about 20 minutes flat out (about 120k rows/s measured
/// on a loaded 2-core machine) and write WAL for all of it at once; capped, each run does a couple
/// of seconds of work and the backlog goes in about three days of runs.
pub const MAX_BATCHES_PER_TABLE: u64 = 200;

/// Time between runs of [`run_retention`].
pub const INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The advisory lock a run holds (`pg_try_advisory_lock`): an arbitrary constant that no other
/// advisory lock of this system uses ("fbtrRETN" in ASCII).
pub const LOCK_KEY: i64 = 0x6662_7472_5245_544E;

/// Rows deleted in one run, by table, and the DELETE statements it took.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub token_events: u64,
    pub send_failures: u64,
    pub webhook_deliveries: u64,
    pub validation_batches: u64,
    pub statements: u64,
}

impl Deleted {
    pub fn total(&self) -> u64 {
        self.token_events + self.send_failures + self.webhook_deliveries + self.validation_batches
    }
}

/// One table's rule: the DELETE of one batch (`$1` the cutoff, `$2` the batch size), built by a
/// function since the query macros check their SQL where it is written.
struct Rule {
    table: &'static str,
    delete_batch: fn(DateTime<Utc>, i64) -> Query<'static, Postgres, PgArguments>,
    count: fn(&mut Deleted) -> &mut u64,
}

// `= ANY(ARRAY(…))` rather than `IN (…)`: the ids are collected first and then deleted through the
// primary key, whatever the planner thinks of the subquery.
const RULES: [Rule; 4] = [
    Rule {
        table: "fb_token_events",
        delete_batch: |cutoff, batch| {
            sqlx::query!(
                "DELETE FROM fb_token_events WHERE id = ANY(ARRAY(
                 SELECT id FROM fb_token_events WHERE created_at < $1 LIMIT $2))",
                cutoff,
                batch,
            )
        },
        count: |d| &mut d.token_events,
    },
    Rule {
        table: "fb_send_failures",
        delete_batch: |cutoff, batch| {
            sqlx::query!(
                "DELETE FROM fb_send_failures WHERE id = ANY(ARRAY(
                 SELECT id FROM fb_send_failures WHERE received_at < $1 LIMIT $2))",
                cutoff,
                batch,
            )
        },
        count: |d| &mut d.send_failures,
    },
    Rule {
        table: "fb_webhook_deliveries",
        delete_batch: |cutoff, batch| {
            sqlx::query!(
                "DELETE FROM fb_webhook_deliveries WHERE id = ANY(ARRAY(
                 SELECT id FROM fb_webhook_deliveries
                 WHERE created_at < $1 AND (delivered_at IS NOT NULL OR given_up_at IS NOT NULL) LIMIT $2))",
                cutoff,
                batch,
            )
        },
        count: |d| &mut d.webhook_deliveries,
    },
    Rule {
        table: "fb_validation_batches",
        delete_batch: |cutoff, batch| {
            sqlx::query!(
                "DELETE FROM fb_validation_batches WHERE (job_id, account_id) IN (
                 SELECT job_id, account_id FROM fb_validation_batches WHERE created_at < $1 LIMIT $2)",
                cutoff,
                batch,
            )
        },
        count: |d| &mut d.validation_batches,
    },
];

/// Deletes what is older than `days` days, [`BATCH`] rows per statement and at most
/// [`MAX_BATCHES_PER_TABLE`] statements per table, unless another process is running retention on
/// this database (then `Ok(None)` and nothing is deleted).
pub async fn run_once(db: &PgPool, days: u32) -> Result<Option<Deleted>, sqlx::Error> {
    run_once_with(db, days, BATCH, None).await
}

/// [`run_once`] with a batch size of `batch` rows (at least 1), counting deleted rows in
/// `metrics` as it goes.
pub async fn run_once_with(
    db: &PgPool,
    days: u32,
    batch: i64,
    metrics: Option<&Metrics>,
) -> Result<Option<Deleted>, sqlx::Error> {
    let batch = batch.max(1);
    let mut conn = db.acquire().await?;
    // Closing the session is what releases the lock, also when this future is dropped midway.
    conn.close_on_drop();
    let locked: bool =
        sqlx::query_scalar!(r#"SELECT pg_try_advisory_lock($1) AS "locked!""#, LOCK_KEY).fetch_one(&mut *conn).await?;
    if !locked {
        return Ok(None);
    }
    let deleted = delete_old(&mut conn, days, batch, metrics).await?;
    // Closing the connection would release it too, but only once Postgres notices; a run right
    // after this one must not find it still held.
    sqlx::query_scalar!("SELECT pg_advisory_unlock($1)", LOCK_KEY).fetch_one(&mut *conn).await?;
    Ok(Some(deleted))
}

async fn delete_old(
    conn: &mut PgConnection,
    days: u32,
    batch: i64,
    metrics: Option<&Metrics>,
) -> Result<Deleted, sqlx::Error> {
    // One cutoff for the whole run, so the last batch of a table is not chasing a moving edge.
    let cutoff: DateTime<Utc> = sqlx::query_scalar!(
        r#"SELECT now() - make_interval(days => $1) AS "cutoff!""#,
        i32::try_from(days).unwrap_or(i32::MAX),
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut deleted = Deleted::default();
    for rule in &RULES {
        for _ in 0..MAX_BATCHES_PER_TABLE {
            let n = (rule.delete_batch)(cutoff, batch).execute(&mut *conn).await?.rows_affected();
            deleted.statements += 1;
            *(rule.count)(&mut deleted) += n;
            if let Some(m) = metrics {
                m.retention_deleted(rule.table, n);
            }
            if n < u64::try_from(batch).unwrap_or(u64::MAX) {
                break;
            }
        }
    }
    Ok(deleted)
}

/// Runs [`run_once`] for `days` now and then every [`INTERVAL`] until `shutdown`. Errors are
/// logged and the next run comes at the next interval; it never returns early. A run in progress
/// at shutdown is dropped: its current statement's batch is rolled back or committed, both fine.
pub async fn run_retention(db: PgPool, days: u32, metrics: Option<Metrics>, shutdown: CancellationToken) {
    let mut next = Instant::now();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep_until(next) => {}
        }
        let started = Instant::now();
        let run = tokio::select! {
            () = shutdown.cancelled() => return,
            run = run_once_with(&db, days, BATCH, metrics.as_ref()) => run,
        };
        match run {
            Ok(Some(d)) if d.total() > 0 => info!(
                retention_days = days,
                token_events = d.token_events,
                send_failures = d.send_failures,
                webhook_deliveries = d.webhook_deliveries,
                validation_batches = d.validation_batches,
                statements = d.statements,
                elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                "deleted history older than the retention period"
            ),
            Ok(Some(_)) => debug!(retention_days = days, "no history older than the retention period"),
            Ok(None) => debug!("another process is running retention on this database"),
            Err(e) => warn!(error = %e, retry_in_secs = INTERVAL.as_secs(), "retention run failed"),
        }
        next = Instant::now() + INTERVAL;
    }
}
