//! One refresh per channel at a time: a marker per channel names the job that is queued or running
//! for it. Whoever sets it enqueues; everyone else (the same cycle, the next cycle, a storm of send
//! failures) coalesces into that job. The job's end releases it; a lost job's marker lapses. Markers
//! are leases (`crate::leases`): a cycle claims a chunk's channels with one `MGET` and one `MSET`.

use std::time::Duration;

use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::keys::RedisKeys;
use crate::leases;

/// How long a marker outlives its last renewal: longer than any queue wait, short enough that a
/// job lost with its marker blocks the channel only briefly.
pub const MARKER_TTL: Duration = Duration::from_secs(15 * 60);

/// Claims the channels for these jobs in one round trip; `true` where the job now owns its
/// channel and must be enqueued.
pub async fn claim_many(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    claims: &[(i64, impl std::fmt::Display)],
) -> redis::RedisResult<Vec<bool>> {
    leases::take(redis, &leases_of(keys, claims), MARKER_TTL).await
}

/// Releases the markers these jobs still own (a batch's healthy channels), in one round trip.
pub async fn release_many(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    claims: &[(i64, impl std::fmt::Display)],
) -> redis::RedisResult<()> {
    leases::drop(redis, &leases_of(keys, claims)).await.map(|_| ())
}

fn leases_of(keys: &RedisKeys, claims: &[(i64, impl std::fmt::Display)]) -> Vec<(String, String)> {
    claims.iter().map(|(channel, job)| (keys.pending(*channel), job.to_string())).collect()
}

/// The job that owns the channel now, if any.
pub async fn owner(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel_id: i64,
) -> redis::RedisResult<Option<Uuid>> {
    Ok(match marker(redis, keys, channel_id).await? {
        Some(Marker::Job(id)) => Some(id),
        _ => None,
    })
}

/// Who holds a channel's marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    /// A single refresh job; callers can wait on its reports.
    Job(Uuid),
    /// A cycle's batch validation (many channels in one job): no per-channel report to wait on.
    Batch(Uuid),
}

/// The marker value a batch job holds its channels with.
pub fn batch_marker(batch_id: Uuid) -> String {
    format!("batch:{batch_id}")
}

pub async fn marker(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel_id: i64,
) -> redis::RedisResult<Option<Marker>> {
    let v = leases::holder(redis, &keys.pending(channel_id)).await?;
    Ok(v.and_then(|s| match s.strip_prefix("batch:") {
        Some(b) => b.parse().ok().map(Marker::Batch),
        None => s.parse().ok().map(Marker::Job),
    }))
}

/// The job settled: the channel is free for the next refresh (only if this job still owns it).
pub async fn release(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel_id: i64,
    job: impl std::fmt::Display,
) -> redis::RedisResult<()> {
    release_many(redis, keys, &[(channel_id, job)]).await
}

/// The job continues as `to` (a re-check) or runs again after `for_at_least`: keep the channel
/// claimed until then.
pub async fn hand_over(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel_id: i64,
    from: impl std::fmt::Display,
    to: impl std::fmt::Display,
    for_at_least: Duration,
) -> redis::RedisResult<()> {
    leases::hand_over(redis, &keys.pending(channel_id), &from.to_string(), &to.to_string(), for_at_least + MARKER_TTL)
        .await?;
    Ok(())
}

/// Either this job now owns the channel and was enqueued, or another job already does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimed {
    Enqueued(Uuid),
    Joined(Uuid),
}

impl Claimed {
    /// The job whose reports tell how this request ends.
    pub fn job_id(self) -> Uuid {
        match self {
            Self::Enqueued(id) | Self::Joined(id) => id,
        }
    }
}

/// Enqueues `job` unless a job is already queued or running for its channel, in which case the
/// caller joins that one. `front` puts it ahead of the waiting backlog (a person waits on it).
pub async fn enqueue_or_join(
    storage: &mut crate::queue::JobStorage,
    redis: &mut ConnectionManager,
    config: &crate::config::Config,
    job: crate::job::RefreshJob,
    front: bool,
) -> Result<Claimed, crate::queue::EnqueueError> {
    let keys = RedisKeys::of(config);
    let (channel, id) = (job.channel_id(), job.job_id());
    let won = match claim_many(redis, &keys, &[(channel, id)]).await {
        Ok(won) => won,
        Err(e) => {
            // The SET may have landed with only its answer lost; a marker naming a job that was
            // never pushed would make every request for 15 minutes join nothing.
            let _ = release(redis, &keys, channel, id).await;
            return Err(crate::queue::EnqueueError::redis(e));
        }
    };
    if won.first() == Some(&true) {
        let pushed = if front {
            crate::queue::enqueue_front(storage, redis, config, job.clone()).await
        } else {
            crate::queue::enqueue(storage, job.clone(), None).await
        };
        if let Err(e) = pushed {
            // Do not leave the channel claimed by a job that does not exist.
            let _ = release(redis, &keys, channel, id).await;
            return Err(e);
        }
        return Ok(Claimed::Enqueued(id));
    }
    match marker(redis, &keys, channel).await.map_err(crate::queue::EnqueueError::redis)? {
        Some(Marker::Job(existing)) => Ok(Claimed::Joined(existing)),
        // A batch validation holds it: it reports on no single channel, so this request runs a job
        // of its own. The batch holds the channel's lock while it works, as single jobs do, so
        // whichever of the two comes second finds the channel busy and runs after the other.
        Some(Marker::Batch(_)) => {
            if front {
                crate::queue::enqueue_front(storage, redis, config, job).await?;
            } else {
                crate::queue::enqueue(storage, job, None).await?;
            }
            Ok(Claimed::Enqueued(id))
        }
        // The owner finished between our two calls: try once more.
        None => Box::pin(enqueue_or_join(storage, redis, config, job, front)).await,
    }
}
