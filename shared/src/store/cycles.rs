//! The refresh cycles, for the queue page: each cycle's own row (who started it, what it
//! enqueued) and its results, counted from the history it left behind. A cycle's jobs carry no
//! cycle id, so its results are the `cron` events and batch rows recorded from its start until the
//! next cycle started: two cycles at once (a "Run cycle now" during a cron tick's) share theirs.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::events::clamp_i32;

/// What started a cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A `REFRESH_CRON` tick.
    Cron,
    /// `producer run-job`.
    Command,
    /// "Run cycle now" on the queue page.
    Dashboard,
    /// `producer demo`'s first cycle.
    Demo,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cron => "cron",
            Self::Command => "run-job",
            Self::Dashboard => "dashboard",
            Self::Demo => "demo",
        }
    }
}

/// Records that a cycle starts; returns its id for [`finish_cycle`].
pub async fn start_cycle(db: &PgPool, trigger: Origin, started_by: Option<&str>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "INSERT INTO fb_cycles (trigger, started_by) VALUES ($1, $2) RETURNING id",
        trigger.as_str(),
        started_by,
    )
    .fetch_one(db)
    .await
}

/// Records what the cycle enqueued, or why it stopped.
pub async fn finish_cycle(
    db: &PgPool,
    id: i64,
    enqueued: u64,
    skipped: u64,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    let count = |n: u64| clamp_i32(i64::try_from(n).unwrap_or(i64::MAX));
    sqlx::query!(
        "UPDATE fb_cycles SET enqueued_at = now(), enqueued = $2, skipped = $3, error = $4 WHERE id = $1",
        id,
        count(enqueued),
        count(skipped),
        error,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A cycle and what came of it so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CycleRow {
    pub id: i64,
    pub trigger: String,
    pub started_by: Option<String>,
    pub started_at: DateTime<Utc>,
    /// When its last job was pushed; `None` while it is still enqueueing (or its producer died).
    pub enqueued_at: Option<DateTime<Utc>>,
    pub enqueued: Option<i32>,
    pub skipped: Option<i32>,
    pub error: Option<String>,
    pub healthy: i64,
    pub refreshed: i64,
    pub failed: i64,
    pub retrying: i64,
    /// The last result recorded in its window: where the cycle's work ended, so far.
    pub last_result_at: Option<DateTime<Utc>>,
}

/// The newest `limit` cycles, newest first.
pub async fn recent_cycles(db: &PgPool, limit: i64) -> Result<Vec<CycleRow>, sqlx::Error> {
    // The outcome names are the chart's (`hourly_outcomes`).
    let rows = sqlx::query!(
        r#"WITH c AS (
             SELECT id, trigger, started_by, started_at, enqueued_at, enqueued, skipped, error,
                    coalesce(lead(started_at) OVER (ORDER BY started_at, id), 'infinity') AS until
             FROM fb_cycles ORDER BY started_at DESC, id DESC LIMIT $1)
           SELECT c.id, c.trigger, c.started_by, c.started_at, c.enqueued_at, c.enqueued, c.skipped, c.error,
                  coalesce(e.healthy, 0) + coalesce(b.healthy, 0) AS "healthy!",
                  coalesce(e.refreshed, 0) AS "refreshed!", coalesce(e.failed, 0) AS "failed!",
                  coalesce(e.retrying, 0) AS "retrying!",
                  greatest(e.last_at, b.last_at) AS last_result_at
           FROM c
           LEFT JOIN LATERAL (
             SELECT count(*) FILTER (WHERE step = 'validate' AND outcome = 'ok') AS healthy,
                    count(*) FILTER (WHERE outcome = 'refreshed') AS refreshed,
                    count(*) FILTER (WHERE step = 'refresh' AND outcome IN ('auth', 'permission', 'not_found')) AS failed,
                    count(*) FILTER (WHERE step <> 'subscribe' AND outcome IN ('transient', 'rate_limited', 'invalid')) AS retrying,
                    max(created_at) AS last_at
             FROM fb_token_events
             WHERE reason = 'cron' AND created_at >= c.started_at AND created_at < c.until) e ON true
           LEFT JOIN LATERAL (
             SELECT sum(unchanged + first_checks)::int8 AS healthy, max(created_at) AS last_at
             FROM fb_validation_batches
             WHERE reason = 'cron' AND created_at >= c.started_at AND created_at < c.until) b ON true
           ORDER BY c.started_at DESC, c.id DESC"#,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CycleRow {
            id: r.id,
            trigger: r.trigger,
            started_by: r.started_by,
            started_at: r.started_at,
            enqueued_at: r.enqueued_at,
            enqueued: r.enqueued,
            skipped: r.skipped,
            error: r.error,
            healthy: r.healthy,
            refreshed: r.refreshed,
            failed: r.failed,
            retrying: r.retrying,
            last_result_at: r.last_result_at,
        })
        .collect())
}
