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

/// Dead jobs still open (neither re-driven nor discarded), all of them, one channel's or the
/// rows `ids` names: (dead row id, channel id, reason). Rows without a channel (undecodable
/// payloads) cannot be re-driven and are left out.
pub async fn open_dead_jobs(
    db: &PgPool,
    channel: Option<i64>,
    ids: Option<&[i64]>,
) -> Result<Vec<(i64, i64, String)>, sqlx::Error> {
    // `channel_id IS NOT NULL` is in the WHERE clause, which the macros cannot see: `!` says so.
    let rows = sqlx::query!(
        r#"SELECT id, channel_id AS "channel_id!", coalesce(reason, 'manual') AS "reason!" FROM fb_dead_jobs
         WHERE redriven_at IS NULL AND discarded_at IS NULL AND channel_id IS NOT NULL
           AND ($1::int4 IS NULL OR channel_id = $1) AND ($2::int8[] IS NULL OR id = ANY($2))
         ORDER BY id"#,
        channel.map(clamp_i32),
        ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, i64::from(r.channel_id), r.reason)).collect())
}

pub async fn mark_redriven(db: &PgPool, ids: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query!("UPDATE fb_dead_jobs SET redriven_at = now() WHERE id = ANY($1)", ids).execute(db).await?;
    Ok(())
}

/// Closes open dead letters without a new job: the rows `ids` names, or every open one. Returns
/// how many it closed (a row already closed is not counted again).
pub async fn discard_dead(db: &PgPool, ids: Option<&[i64]>) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE fb_dead_jobs SET discarded_at = now()
         WHERE redriven_at IS NULL AND discarded_at IS NULL AND ($1::int8[] IS NULL OR id = ANY($1))",
        ids,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

pub async fn open_dead_count(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "count!" FROM fb_dead_jobs WHERE redriven_at IS NULL AND discarded_at IS NULL"#
    )
    .fetch_one(db)
    .await
}

/// An open dead letter, as the queue page lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    pub job_id: Option<uuid::Uuid>,
    pub channel_id: Option<i64>,
    pub reason: Option<String>,
    pub attempts: Option<i32>,
    pub error_kind: String,
    pub error_code: Option<i32>,
    pub error_subcode: Option<i32>,
    pub error_message: Option<String>,
    pub payload: Option<Value>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The newest `limit` open dead letters.
pub async fn open_dead_letters(db: &PgPool, limit: i64) -> Result<Vec<DeadLetter>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT id, job_id, channel_id, reason, attempts, error_kind, error_code, error_subcode, error_message,
                payload, created_at
         FROM fb_dead_jobs WHERE redriven_at IS NULL AND discarded_at IS NULL ORDER BY id DESC LIMIT $1",
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| DeadLetter {
            id: r.id,
            job_id: r.job_id,
            channel_id: r.channel_id.map(i64::from),
            reason: r.reason,
            attempts: r.attempts,
            error_kind: r.error_kind,
            error_code: r.error_code,
            error_subcode: r.error_subcode,
            error_message: r.error_message,
            payload: r.payload,
            created_at: r.created_at,
        })
        .collect())
}
