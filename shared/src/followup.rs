//! What happens after a job ran: the next attempt or a re-check is pushed (our backoff, since
//! apalis-redis ignores its own retry settings), and a report goes to whoever waits on the job.

use std::time::Duration;

use tracing::{error, warn};

use crate::{
    config::Config,
    job::RefreshJob,
    keys::RedisKeys,
    pending,
    pipeline::Outcome,
    queue::{self, EnqueueError, JobReport, JobStorage},
};

/// Schedules what the outcome calls for and publishes the report. An error means the follow-up
/// could not be pushed: the caller must not ack the job, so that it is not lost.
pub async fn settle(
    storage: &mut JobStorage,
    redis: &mut redis::aio::ConnectionManager,
    config: &Config,
    job: &RefreshJob,
    outcome: &Outcome,
) -> Result<JobReport, EnqueueError> {
    let pending = RedisKeys::of(config);
    let (channel, id) = (job.channel_id(), job.job_id());
    // The channel stays claimed while this job (or its re-check) has more to do, so reports and
    // cycles meanwhile coalesce into it; it is released when the job settles.
    let claim = match outcome {
        Outcome::Retry { after, next_attempt, .. } => {
            let mut next = job.clone();
            let crate::job::RefreshJob::V1(v) = &mut next;
            v.attempt = *next_attempt;
            queue::enqueue(storage, next, Some(*after)).await?;
            pending::hand_over(redis, &pending, channel, id, id, *after).await
        }
        Outcome::ConfirmedFailure { recheck_after: Some(after), .. } => {
            let recheck = job.follow_up();
            let to = recheck.job_id();
            queue::enqueue(storage, recheck, Some(*after)).await?;
            pending::hand_over(redis, &pending, channel, id, to, *after).await
        }
        // Same job again (same id, same attempt) so a waiting caller sees the re-check.
        Outcome::Superseded => {
            queue::enqueue(storage, job.clone(), None).await?;
            pending::hand_over(redis, &pending, channel, id, id, Duration::ZERO).await
        }
        Outcome::GaveUp { error: e } => {
            error!(channel.id = channel, job.id = %id, error = %e, "refresh job dead after its last attempt");
            pending::release(redis, &pending, channel, id).await
        }
        Outcome::Healthy
        | Outcome::Refreshed
        | Outcome::ConfirmedFailure { .. }
        | Outcome::ChannelMissing
        | Outcome::Undecryptable { .. } => pending::release(redis, &pending, channel, id).await,
    };
    if let Err(e) = claim {
        // A stale marker expires on its own (MARKER_TTL); a missing one only costs a duplicate job.
        warn!(job.id = %id, error = %e, "could not update the channel's pending marker");
    }
    let report = outcome.report(job);
    if let Err(e) = queue::publish_report(redis, config, &report).await {
        // The outcome is stored in Postgres; only a waiting caller misses it.
        warn!(job.id = %job.job_id(), error = %e, "could not publish the job report");
    }
    Ok(report)
}
