//! Due retries: each worker process claims them from Postgres (never two workers one row), checks
//! the page with the channel's current token, and records the verdict, which schedules the next
//! retry or ends them.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Checked, LEASE, Target, Trigger, rows};
use crate::{
    pauses,
    pipeline::{InfraError, Pipeline, undecryptable_error},
    retry::at_after,
    store,
};

/// Retries one round claims at most; also the most one Graph batch request reads.
pub const BATCH: i64 = 50;

/// How often [`run_retries`] looks for due rows when the last round found no full batch.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

impl Pipeline {
    /// Claims up to `limit` due retries and runs them; returns how many were claimed (`limit`
    /// means more may be due). An error is a store failing: claimed rows come back when their lease
    /// ends.
    pub async fn retry_due_subscriptions(&self, limit: i64) -> Result<usize, InfraError> {
        let due = rows::claim_due(&self.db, limit, LEASE).await?;
        if due.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = due.iter().map(|d| d.channel_id).collect();
        let loaded = store::load_channels(&self.db, &self.codec, &ids).await?;
        let mut redis = self.redis.clone();
        let mut targets = Vec::with_capacity(due.len());
        for d in &due {
            let Some(found) = loaded.iter().find(|l| l.as_ref().map_or_else(|u| u.id, |c| c.id) == d.channel_id) else {
                rows::forget(&self.db, d.channel_id).await?;
                continue;
            };
            let channel = match found {
                Ok(channel) => channel,
                Err(unreadable) => {
                    // No token to ask with until the keys are set; its jobs report that loudly.
                    let target = Target {
                        channel_id: d.channel_id,
                        page_id: unreadable.page_id.clone(),
                        token: crate::secret::Secret::new(""),
                        job_id: d.job_id,
                        reason: d.reason,
                        attempts: d.attempts,
                    };
                    let verdict = Checked::CheckFailed(undecryptable_error(unreadable));
                    self.save_verdict(&target, &verdict, (d.attempts, None), Duration::ZERO).await?;
                    continue;
                }
            };
            if let Some(wait) = pauses::remaining(&mut redis, &self.keys, &channel.page_id).await? {
                // Calling a limited page extends its limit; the wait uses no attempt.
                rows::postpone(&self.db, channel.id, at_after(wait)).await?;
                continue;
            }
            targets.push(Target {
                channel_id: channel.id,
                page_id: channel.page_id.clone(),
                token: channel.page_token.clone(),
                job_id: d.job_id,
                reason: d.reason,
                attempts: d.attempts,
            });
        }
        if !targets.is_empty() {
            self.check_and_record(&targets, Trigger::Retry).await;
        }
        Ok(due.len())
    }
}

/// Runs due subscription retries until `shutdown`: one task per worker process.
pub async fn run_retries(pipeline: Pipeline, shutdown: CancellationToken) {
    loop {
        let wait = match pipeline.retry_due_subscriptions(BATCH).await {
            Ok(n) if n as i64 >= BATCH => Duration::ZERO,
            Ok(_) => POLL_INTERVAL,
            Err(e) => {
                warn!(error = %e, "subscription retries could not run against the stores");
                POLL_INTERVAL * 5
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
