//! What happens after a job ran: the next attempt or a re-check is pushed (our backoff, since
//! apalis-redis ignores its own retry settings), and a report goes to whoever waits on the job.

use tracing::{error, warn};

use crate::{
    config::Config,
    job::RefreshJob,
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
    match outcome {
        Outcome::Retry { after, next_attempt, .. } => {
            let mut next = job.next_attempt();
            let crate::job::RefreshJob::V1(v) = &mut next;
            v.attempt = *next_attempt;
            queue::enqueue(storage, next, Some(*after)).await?;
        }
        Outcome::ConfirmedFailure { recheck_after: Some(after), .. } => {
            queue::enqueue(storage, job.follow_up(), Some(*after)).await?;
        }
        // Same job again (same id, same attempt) so a waiting caller sees the re-check.
        Outcome::Superseded => queue::enqueue(storage, job.clone(), None).await?,
        Outcome::GaveUp { error: e } => {
            error!(channel.id = job.channel_id(), job.id = %job.job_id(), error = %e, "refresh job dead after its last attempt");
        }
        Outcome::Healthy | Outcome::Refreshed | Outcome::ConfirmedFailure { .. } | Outcome::ChannelMissing => {}
    }
    let report = JobReport::from_outcome(job, outcome);
    if let Err(e) = queue::publish_report(redis, config, &report).await {
        // The outcome is stored in Postgres; only a waiting caller misses it.
        warn!(job.id = %job.job_id(), error = %e, "could not publish the job report");
    }
    Ok(report)
}
