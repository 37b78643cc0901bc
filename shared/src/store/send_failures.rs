//! The send failures reported to the intake, with what it decided about each.

use sqlx::PgPool;
use uuid::Uuid;

use super::events::clamp_i32;
use crate::graph::GraphError;

pub async fn record_send_failure(
    db: &PgPool,
    channel_id: i64,
    error: &GraphError,
    decision: &str,
    job_id: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO fb_send_failures (channel_id, error_kind, error_code, error_subcode, error_message, decision, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        clamp_i32(channel_id),
        error.kind.as_str(),
        error.code.map(clamp_i32),
        error.subcode.map(clamp_i32),
        error.message.as_str(),
        decision,
        job_id,
    )
    .execute(db)
    .await?;
    Ok(())
}
