//! After a channel is found healthy: the proactive check of its user token (at most once a day per
//! user token), the proactive job for when its expiry enters the window, and the daily check of
//! its page's webhook subscription (at most once a day per channel, see `crate::subscriptions`).

use std::time::Duration;

use crate::{
    job::{Reason, RefreshJob},
    proactive::Proactive,
    queue,
    store::Channel,
};
use chrono::Utc;
use tracing::{debug, warn};

use super::WorkerState;

pub async fn after_healthy(state: &WorkerState, job: &RefreshJob) {
    let channel_id = job.channel_id();
    if proactive_enabled(state) {
        let checked = state.pipeline.proactive_check(channel_id, window(state), job.v1().reason == Reason::Proactive);
        settle_proactive(state, channel_id, checked.await).await;
    }
    state.pipeline.daily_subscription_check(std::slice::from_ref(job), &[]).await;
}

/// For the healthy channels of a batch, as read for it: one proactive check per user token (the
/// check is of the user token, and one batch holds many pages of one user), and one subscription
/// check for all (one Graph batch request for those due today, none for the others).
pub async fn after_healthy_many(state: &WorkerState, jobs: &[RefreshJob], channels: &[Channel]) {
    if proactive_enabled(state) {
        let mut seen = std::collections::HashSet::new();
        for channel in channels {
            if !seen.insert(crate::store::user_token_digest(&channel.user_token)) {
                continue;
            }
            let checked = state.pipeline.proactive_check_channel(channel, window(state), false).await;
            settle_proactive(state, channel.id, checked).await;
        }
    }
    state.pipeline.daily_subscription_check(jobs, channels).await;
}

fn proactive_enabled(state: &WorkerState) -> bool {
    state.config.fb_app_id.is_some() && state.config.fb_app_secret.is_some()
}

fn window(state: &WorkerState) -> Duration {
    Duration::from_secs(u64::from(state.config.proactive_refresh_days) * 86_400)
}

async fn settle_proactive(
    state: &WorkerState,
    channel_id: i64,
    checked: Result<Proactive, crate::pipeline::InfraError>,
) {
    match checked {
        Ok(Proactive::Checked { next_check: Some(at), .. }) => schedule(state, channel_id, at).await,
        Ok(Proactive::Failed(e)) => {
            debug!(channel.id = channel_id, error = %e, "proactive check could not read the token")
        }
        Ok(_) => {}
        Err(e) => warn!(channel.id = channel_id, error = %e, "proactive check failed against the stores"),
    }
}

/// One proactive job per channel for when its user token enters the window.
async fn schedule(state: &WorkerState, channel_id: i64, at: chrono::DateTime<Utc>) {
    let Ok(delay) = (at - Utc::now()).to_std() else { return };
    let key = crate::keys::RedisKeys::of(&state.config).proactive(channel_id);
    let mut redis = state.redis.clone();
    let ttl = delay.as_secs() + 3_600;
    let fresh: Result<Option<String>, _> =
        redis::cmd("SET").arg(&key).arg(at.timestamp()).arg("NX").arg("EX").arg(ttl).query_async(&mut redis).await;
    if let Ok(Some(_)) = fresh {
        let mut storage = state.storage.clone();
        if let Err(e) = queue::enqueue(&mut storage, RefreshJob::new(channel_id, Reason::Proactive), Some(delay)).await
        {
            warn!(channel.id = channel_id, error = %e, "could not schedule the proactive job");
            let _: Result<(), _> = redis::AsyncCommands::del(&mut redis, &key).await;
        }
    }
}
