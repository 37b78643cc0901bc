//! The append-only history of validations, refreshes and webhook re-subscriptions.

use sqlx::PgPool;
use uuid::Uuid;

use crate::{graph::GraphError, job::Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Validate,
    Refresh,
    /// The page's webhook subscription (`shared::subscriptions`): re-subscribed, or why not.
    Subscribe,
}

#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub channel_id: i64,
    pub job_id: Uuid,
    pub reason: Reason,
    pub step: Step,
    /// `ok`, `refreshed`, or an error kind (`auth`, `transient`, ...).
    pub outcome: &'a str,
    pub graph_latency_ms: Option<i64>,
    pub error: Option<&'a GraphError>,
}

pub async fn record_event(db: &PgPool, e: &Event<'_>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO fb_token_events
           (channel_id, job_id, reason, step, outcome, graph_latency_ms, error_code, error_subcode, error_message)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(clamp_i32(e.channel_id))
    .bind(e.job_id)
    .bind(e.reason.as_str())
    .bind(match e.step {
        Step::Validate => "validate",
        Step::Refresh => "refresh",
        Step::Subscribe => "subscribe",
    })
    .bind(e.outcome)
    .bind(e.graph_latency_ms.map(clamp_i32))
    .bind(e.error.and_then(|x| x.code).map(clamp_i32))
    .bind(e.error.and_then(|x| x.subcode).map(clamp_i32))
    .bind(e.error.map(|x| x.message.as_str()))
    .execute(db)
    .await?;
    Ok(())
}

pub fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}
