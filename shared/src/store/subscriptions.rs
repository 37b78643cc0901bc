//! `fb_page_subscriptions`: one row per channel with the last check's verdict, and the retry it is
//! owed. Due retries are claimed with `FOR UPDATE SKIP LOCKED` and leased in the same statement, as
//! the webhook outbox does, so several workers never retry one page at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::events::clamp_i32;
use crate::{graph::GraphError, job::Reason};

/// A channel's subscription as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// FB_APP_ID's app receives the page's messages.
    Subscribed,
    /// It did not; we subscribed it again with Chatwoot's fields.
    Resubscribed,
    /// It does not, and subscribing it failed (a retry is due, or the daily check will try).
    Missing,
    /// Reading the page's subscriptions failed: not known.
    Failed,
    /// Never checked, or FB_APP_ID is not known so "this app" cannot be told.
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribed => "subscribed",
            Self::Resubscribed => "resubscribed",
            Self::Missing => "missing",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// A retry whose lease ran out, claimed by one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Due {
    pub channel_id: i64,
    /// Failed attempts so far.
    pub attempts: u32,
    pub job_id: Uuid,
    pub reason: Reason,
}

/// What one check settled for one channel.
pub(crate) struct Verdict<'a> {
    pub state: State,
    /// Graph answered the check (the subscriptions are known), whatever came after.
    pub checked: bool,
    pub resubscribed: bool,
    /// `None` clears the last error.
    pub error: Option<&'a GraphError>,
    /// Failed attempts in a row (0 after a success).
    pub attempts: u32,
    /// When the next attempt is due; `None`: none (it worked, or no attempt is left).
    pub retry_at: Option<DateTime<Utc>>,
    pub job_id: Uuid,
    pub reason: Reason,
}

pub(crate) async fn save(db: &PgPool, channel_id: i64, v: &Verdict<'_>) -> Result<(), sqlx::Error> {
    let (kind, code, subcode, message) = match v.error {
        None => (None, None, None, None),
        Some(e) => (Some(e.kind.as_str()), e.code.map(clamp_i32), e.subcode.map(clamp_i32), Some(e.message.as_str())),
    };
    let attempts = i32::try_from(v.attempts).unwrap_or(i32::MAX);
    sqlx::query!(
        "INSERT INTO fb_page_subscriptions AS s
           (channel_id, state, checked_at, resubscribed_at, last_error_kind, last_error_code, last_error_subcode,
            last_error_message, retry_at, retry_attempts, job_id, reason, updated_at)
         VALUES ($1, $2, CASE WHEN $3 THEN now() END, CASE WHEN $4 THEN now() END, $5, $6, $7, $8, $9, $10, $11,
                 $12, now())
         ON CONFLICT (channel_id) DO UPDATE SET
           state = EXCLUDED.state,
           checked_at = CASE WHEN $3 THEN now() ELSE s.checked_at END,
           resubscribed_at = CASE WHEN $4 THEN now() ELSE s.resubscribed_at END,
           last_error_kind = $5, last_error_code = $6, last_error_subcode = $7, last_error_message = $8,
           retry_at = $9, retry_attempts = $10, job_id = $11, reason = $12, updated_at = now()",
        clamp_i32(channel_id),
        v.state.as_str(),
        v.checked,
        v.resubscribed,
        kind,
        code,
        subcode,
        message,
        v.retry_at,
        attempts,
        v.job_id,
        v.reason.as_str(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The common verdict, for many channels in one statement: subscribed, checked now, nothing owed.
pub(crate) async fn save_subscribed(db: &PgPool, rows: &[(i64, Uuid, Reason)]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (ids, jobs, reasons) = columns(rows);
    sqlx::query!(
        "INSERT INTO fb_page_subscriptions AS s (channel_id, state, checked_at, job_id, reason, updated_at)
         SELECT id, 'subscribed', now(), job, reason, now() FROM unnest($1::int[], $2::uuid[], $3::text[]) AS t(id, job, reason)
         ON CONFLICT (channel_id) DO UPDATE SET
           state = 'subscribed', checked_at = now(), last_error_kind = NULL, last_error_code = NULL,
           last_error_subcode = NULL, last_error_message = NULL, retry_at = NULL, retry_attempts = 0,
           job_id = EXCLUDED.job_id, reason = EXCLUDED.reason, updated_at = now()",
        &ids,
        &jobs,
        &reasons as &[&str],
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a check as under way for `lease`: were this process to die before it settles, the row
/// comes due when the lease ends and a worker retries it. The state is left as it was.
pub(crate) async fn lease(db: &PgPool, rows: &[(i64, Uuid, Reason)], lease: Duration) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let (ids, jobs, reasons) = columns(rows);
    sqlx::query!(
        "INSERT INTO fb_page_subscriptions AS s (channel_id, retry_at, retry_attempts, job_id, reason, updated_at)
         SELECT id, now() + make_interval(secs => $4), 0, job, reason, now()
         FROM unnest($1::int[], $2::uuid[], $3::text[]) AS t(id, job, reason)
         ON CONFLICT (channel_id) DO UPDATE SET
           retry_at = EXCLUDED.retry_at, retry_attempts = 0, job_id = EXCLUDED.job_id, reason = EXCLUDED.reason",
        &ids,
        &jobs,
        &reasons as &[&str],
        lease.as_secs_f64(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Claims up to `limit` due retries, oldest first, leasing each for `lease` in the same statement:
/// another worker skips the locked rows while this runs and finds them not due afterwards.
pub(crate) async fn claim_due(db: &PgPool, limit: i64, lease: Duration) -> Result<Vec<Due>, sqlx::Error> {
    let rows = sqlx::query!(
        "UPDATE fb_page_subscriptions s SET retry_at = now() + make_interval(secs => $2)
         FROM (SELECT channel_id FROM fb_page_subscriptions
               WHERE retry_at <= now()
               ORDER BY retry_at, channel_id
               LIMIT $1
               FOR UPDATE SKIP LOCKED) due
         WHERE s.channel_id = due.channel_id
         RETURNING s.channel_id, s.retry_attempts, s.job_id, s.reason",
        limit,
        lease.as_secs_f64(),
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Due {
            channel_id: i64::from(r.channel_id),
            attempts: u32::try_from(r.retry_attempts).unwrap_or(0),
            job_id: r.job_id.unwrap_or_else(Uuid::now_v7),
            reason: r.reason.and_then(|r| r.parse().ok()).unwrap_or(Reason::Cron),
        })
        .collect())
}

/// A retry that must wait (a rate-limit pause) without using an attempt.
pub(crate) async fn postpone(db: &PgPool, channel_id: i64, until: DateTime<Utc>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE fb_page_subscriptions SET retry_at = $2, updated_at = now() WHERE channel_id = $1",
        clamp_i32(channel_id),
        until,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The channel is gone: nothing is owed to it.
pub(crate) async fn forget(db: &PgPool, channel_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!("DELETE FROM fb_page_subscriptions WHERE channel_id = $1", clamp_i32(channel_id)).execute(db).await?;
    Ok(())
}

/// `rows` as the three arrays an `unnest` takes.
fn columns(rows: &[(i64, Uuid, Reason)]) -> (Vec<i32>, Vec<Uuid>, Vec<&'static str>) {
    (
        rows.iter().map(|r| clamp_i32(r.0)).collect(),
        rows.iter().map(|r| r.1).collect(),
        rows.iter().map(|r| r.2.as_str()).collect(),
    )
}
