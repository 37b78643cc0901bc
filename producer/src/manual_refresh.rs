//! A person asks for a refresh now (the API's refresh endpoint, the dashboard's button): the job
//! goes ahead of the cron backlog, or joins the one already there, and the caller waits a while.

use std::time::Duration;

use shared::{
    job::{JobOutcome, Reason, RefreshJob},
    pending,
    queue::Waited,
    quota::{self, Quota},
    reports::WaitError,
};
use uuid::Uuid;

use crate::{errors::ApiError, state::AppState};

/// How a refresh request ended within its wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshAnswer {
    Settled { refreshed: bool },
    Pending { job_id: Uuid },
}

/// Runs the refresh job through the queue ahead of the backlog (or joins the one already queued
/// or running for the channel) and waits up to `wait` for it to settle.
///
/// A push to the head counts against the account's `API_REFRESH_PER_MINUTE` (429 above it);
/// joining a job that is already there pushes nothing and does not. With `API_MAX_WAITERS`
/// requests already waiting, the job still runs and the answer is `Pending` at once.
pub async fn refresh_and_wait(
    state: &AppState,
    account_id: i64,
    channel_id: i64,
    wait: Duration,
) -> Result<RefreshAnswer, ApiError> {
    let job = RefreshJob::new(channel_id, Reason::Manual);
    let mut redis = state.redis.clone();
    let keys = shared::keys::RedisKeys::of(&state.config);
    if pending::owner(&mut redis, &keys, channel_id).await.map_err(ApiError::internal)?.is_none()
        && let Quota::Exhausted { retry_after } =
            quota::take_front_refresh(&mut redis, &state.config, account_id).await.map_err(ApiError::internal)?
    {
        return Err(ApiError::rate_limited(retry_after));
    }
    let claimed = pending::enqueue_or_join(&mut state.storage.clone(), &mut redis, &state.config, job, true)
        .await
        .map_err(ApiError::internal)?;
    let job_id = claimed.job_id();
    match state.reports.wait(job_id, wait).await {
        Ok(Waited::Settled(report)) => {
            Ok(RefreshAnswer::Settled { refreshed: report.outcome == JobOutcome::Refreshed })
        }
        Ok(Waited::RetryScheduled(_) | Waited::NoWorker) | Err(WaitError::Busy) => {
            Ok(RefreshAnswer::Pending { job_id })
        }
        Err(WaitError::Redis(e)) => Err(ApiError::internal(e)),
    }
}
