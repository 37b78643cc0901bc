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
    record_events(db, std::slice::from_ref(e)).await
}

fn step_name(step: Step) -> &'static str {
    match step {
        Step::Validate => "validate",
        Step::Refresh => "refresh",
        Step::Subscribe => "subscribe",
    }
}

/// Every row in one statement, on a pool or inside the caller's transaction.
pub async fn record_events(db: impl sqlx::PgExecutor<'_>, events: &[Event<'_>]) -> Result<(), sqlx::Error> {
    if events.is_empty() {
        return Ok(());
    }
    let channel: Vec<i32> = events.iter().map(|e| clamp_i32(e.channel_id)).collect();
    let job: Vec<Uuid> = events.iter().map(|e| e.job_id).collect();
    let reason: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    let step: Vec<&str> = events.iter().map(|e| step_name(e.step)).collect();
    let outcome: Vec<&str> = events.iter().map(|e| e.outcome).collect();
    let latency: Vec<Option<i32>> = events.iter().map(|e| e.graph_latency_ms.map(clamp_i32)).collect();
    let code: Vec<Option<i32>> = events.iter().map(|e| e.error.and_then(|x| x.code).map(clamp_i32)).collect();
    let subcode: Vec<Option<i32>> = events.iter().map(|e| e.error.and_then(|x| x.subcode).map(clamp_i32)).collect();
    let message: Vec<Option<&str>> = events.iter().map(|e| e.error.map(|x| x.message.as_str())).collect();
    // The arrays of `&str` and of nullable values are not among the macros' parameter types
    // (`&[String]`, `&[i32]`, ...): their casts name the type bound instead.
    sqlx::query!(
        "INSERT INTO fb_token_events
           (channel_id, job_id, reason, step, outcome, graph_latency_ms, error_code, error_subcode, error_message)
         SELECT * FROM UNNEST($1::int[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::int[], $7::int[],
                              $8::int[], $9::text[])",
        &channel,
        &job,
        &reason as &[&str],
        &step as &[&str],
        &outcome as &[&str],
        &latency as &[Option<i32>],
        &code as &[Option<i32>],
        &subcode as &[Option<i32>],
        &message as &[Option<&str>],
    )
    .execute(db)
    .await?;
    Ok(())
}

pub fn clamp_i32(v: i64) -> i32 {
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}
