//! A batch's healthy channels, written in one transaction: their states with one multi-row
//! statement, event rows only for the channels whose status changed, one summary row for the
//! rest, and the webhook outbox rows of those changes.

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use super::{TokenStatus, events::clamp_i32};
use crate::{config::Config, job::Reason, webhooks};

/// The channels of one batch that Graph found healthy.
#[derive(Debug, Clone)]
pub struct HealthyBatch<'a> {
    pub batch_id: Uuid,
    pub reason: Reason,
    /// `(channel id, account id, the channel's own job id, page id)`.
    pub channels: &'a [(i64, i64, Uuid, &'a str)],
    pub graph_latency_ms: i64,
}

/// What the write found: the channels whose status changed, with the status they had (`none`:
/// never checked before).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthyWritten {
    pub changed: Vec<(i64, String)>,
}

pub async fn save_healthy_many(
    db: &PgPool,
    config: &Config,
    batch: &HealthyBatch<'_>,
) -> Result<HealthyWritten, sqlx::Error> {
    if batch.channels.is_empty() {
        return Ok(HealthyWritten::default());
    }
    let mut ids: Vec<i32> = batch.channels.iter().map(|(c, _, _, _)| clamp_i32(*c)).collect();
    // One order for every writer, so two transactions never wait on each other's rows in turn.
    ids.sort_unstable();
    let latency = clamp_i32(batch.graph_latency_ms);
    let mut tx = db.begin().await?;
    // As `save_state` with a success: healthy, valid, checked now, errors and failures cleared.
    let before: Vec<(i32, Option<String>)> = sqlx::query_as(
        "WITH ids AS (SELECT unnest($1::int[]) AS channel_id),
         old AS (SELECT s.channel_id, s.status FROM fb_token_states s JOIN ids USING (channel_id)),
         up AS (
           INSERT INTO fb_token_states AS s
             (channel_id, status, token_valid, consecutive_failures, last_checked_at, updated_at)
           SELECT channel_id, 'healthy', true, 0, now(), now() FROM ids
           ON CONFLICT (channel_id) DO UPDATE SET
             status = 'healthy', token_valid = true, consecutive_failures = 0, last_checked_at = now(),
             last_error_kind = NULL, last_error_code = NULL, last_error_subcode = NULL,
             last_error_message = NULL, next_attempt_at = NULL, updated_at = now()
           RETURNING s.channel_id)
         SELECT up.channel_id, old.status FROM up LEFT JOIN old USING (channel_id)",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let changed: Vec<(i64, String)> = before
        .into_iter()
        .filter(|(_, s)| s.as_deref() != Some(TokenStatus::Healthy.as_str()))
        .map(|(c, s)| (i64::from(c), s.unwrap_or_else(|| "none".to_owned())))
        .collect();
    if !changed.is_empty() {
        let job_of = |c: i64| batch.channels.iter().find(|(id, _, _, _)| *id == c);
        let (cs, jobs): (Vec<i32>, Vec<Uuid>) =
            changed.iter().filter_map(|(c, _)| job_of(*c)).map(|(c, _, j, _)| (clamp_i32(*c), *j)).unzip();
        sqlx::query(
            "INSERT INTO fb_token_events (channel_id, job_id, reason, step, outcome, graph_latency_ms)
             SELECT c, j, $3, 'validate', 'ok', $4 FROM unnest($1::int[], $2::uuid[]) AS t(c, j)",
        )
        .bind(&cs)
        .bind(&jobs)
        .bind(batch.reason.as_str())
        .bind(latency)
        .execute(&mut *tx)
        .await?;
        for (channel_id, from) in &changed {
            let Some((_, _, _, page_id)) = job_of(*channel_id) else { continue };
            let change = webhooks::StatusChange {
                channel_id: *channel_id,
                page_id: (*page_id).to_owned(),
                from: from.clone(),
                to: TokenStatus::Healthy.as_str().to_owned(),
                error: None,
                at: Utc::now(),
            };
            webhooks::enqueue_in(&mut tx, config, &change).await?;
        }
    }
    // Per account: (channels found healthy, of which healthy before).
    let changed_ids: std::collections::HashSet<i64> = changed.iter().map(|(c, _)| *c).collect();
    let mut per_account: std::collections::BTreeMap<i32, (i32, i32)> = std::collections::BTreeMap::new();
    for (c, account, _, _) in batch.channels {
        let entry = per_account.entry(clamp_i32(*account)).or_default();
        entry.0 += 1;
        entry.1 += i32::from(!changed_ids.contains(c));
    }
    let accounts: Vec<i32> = per_account.keys().copied().collect();
    let healthy: Vec<i32> = per_account.values().map(|v| v.0).collect();
    let unchanged: Vec<i32> = per_account.values().map(|v| v.1).collect();
    sqlx::query(
        "INSERT INTO fb_validation_batches (job_id, account_id, reason, healthy, unchanged, graph_latency_ms)
         SELECT $1, a, $2, h, u, $6 FROM unnest($3::int[], $4::int[], $5::int[]) AS t(a, h, u)
         ON CONFLICT (job_id, account_id) DO UPDATE SET
           healthy = fb_validation_batches.healthy + EXCLUDED.healthy,
           unchanged = fb_validation_batches.unchanged + EXCLUDED.unchanged",
    )
    .bind(batch.batch_id)
    .bind(batch.reason.as_str())
    .bind(&accounts)
    .bind(&healthy)
    .bind(&unchanged)
    .bind(latency)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(HealthyWritten { changed })
}
