//! The audit trail of what operators did by hand from the queue page: who, what, on what, and how
//! it ended. Never pruned by `HISTORY_RETENTION_DAYS` (a few rows a day at most).

use chrono::{DateTime, Utc};
use sqlx::PgPool;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    pub id: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub created_at: DateTime<Utc>,
}

pub async fn record_operator_action(
    db: &PgPool,
    actor: &str,
    action: &str,
    target: Option<&str>,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO fb_operator_actions (actor, action, target, outcome) VALUES ($1, $2, $3, $4)",
        actor,
        action,
        target,
        outcome,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The newest `limit` actions, newest first.
pub async fn recent_operator_actions(db: &PgPool, limit: i64) -> Result<Vec<OperatorAction>, sqlx::Error> {
    let rows = sqlx::query!(
        "SELECT id, actor, action, target, outcome, created_at FROM fb_operator_actions
         ORDER BY created_at DESC, id DESC LIMIT $1",
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| OperatorAction {
            id: r.id,
            actor: r.actor,
            action: r.action,
            target: r.target,
            outcome: r.outcome,
            created_at: r.created_at,
        })
        .collect())
}
