//! The dead-letter record in Postgres.

use serde_json::Value;
use sqlx::PgPool;

use super::events::clamp_i32;
use crate::{graph::GraphError, job::RefreshJob};

/// A job that used its last attempt.
pub async fn record_dead_job(
    db: impl sqlx::PgExecutor<'_>,
    job: &RefreshJob,
    error: &GraphError,
) -> Result<(), sqlx::Error> {
    let v = job.v1();
    sqlx::query!(
        "INSERT INTO fb_dead_jobs (job_id, channel_id, reason, attempts, error_kind, error_code, error_subcode, error_message, payload)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        v.job_id,
        clamp_i32(v.channel_id),
        v.reason.as_str(),
        clamp_i32(i64::from(v.attempt)),
        error.kind.as_str(),
        error.code.map(clamp_i32),
        error.subcode.map(clamp_i32),
        error.message.as_str(),
        serde_json::to_value(job).ok(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// What a dead-letter row keeps of a payload: all of it up to 64 KiB, else a 300-character excerpt,
/// so a huge poison payload does not become a huge row.
pub fn kept_payload(payload: &Value) -> Value {
    let text = payload.to_string();
    if text.len() > 65_536 { Value::String(text.chars().take(300).collect()) } else { payload.clone() }
}

/// A payload that could not be decoded.
pub async fn record_poison(db: &PgPool, payload: &Value, why: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO fb_dead_jobs (error_kind, error_message, payload) VALUES ('poison', $1, $2)",
        why,
        payload
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A job whose run panicked. `job` is what the payload decoded to (a batch, or nothing, records no
/// channel); `retry-dead` re-drives the single ones once the cause is fixed.
pub async fn record_panic(
    db: &PgPool,
    job: Option<&RefreshJob>,
    payload: &Value,
    message: &str,
) -> Result<(), sqlx::Error> {
    let v = job.map(RefreshJob::v1);
    sqlx::query!(
        "INSERT INTO fb_dead_jobs (job_id, channel_id, reason, attempts, error_kind, error_message, payload)
         VALUES ($1, $2, $3, $4, 'panic', $5, $6)",
        v.map(|v| v.job_id),
        v.map(|v| clamp_i32(v.channel_id)),
        v.map(|v| v.reason.as_str()),
        v.map(|v| clamp_i32(i64::from(v.attempt))),
        message,
        payload,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Dead jobs not yet re-driven, optionally for one channel: (dead row id, channel id, reason).
pub async fn open_dead_jobs(db: &PgPool, channel: Option<i64>) -> Result<Vec<(i64, i64, String)>, sqlx::Error> {
    // `channel_id IS NOT NULL` is in the WHERE clause, which the macros cannot see: `!` says so.
    let rows = sqlx::query!(
        r#"SELECT id, channel_id AS "channel_id!", coalesce(reason, 'manual') AS "reason!" FROM fb_dead_jobs
         WHERE redriven_at IS NULL AND channel_id IS NOT NULL AND ($1::int4 IS NULL OR channel_id = $1)
         ORDER BY id"#,
        channel.map(clamp_i32),
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, i64::from(r.channel_id), r.reason)).collect())
}

pub async fn mark_redriven(db: &PgPool, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE fb_dead_jobs SET redriven_at = now() WHERE id = ANY($1)", ids).execute(db).await?;
    Ok(())
}

pub async fn open_dead_count(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "count!" FROM fb_dead_jobs WHERE redriven_at IS NULL"#)
        .fetch_one(db)
        .await
}
