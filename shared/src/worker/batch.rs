//! The apalis side of a batch job: runs it through the pipeline, then hands each channel on:
//! healthy and missing ones release their marker, the rest pass it to their single-channel job.

use crate::{
    followup,
    job::BatchJob,
    keys::RedisKeys,
    pending::{self, batch_marker},
    queue,
};
use apalis::prelude::BoxDynError;
use tracing::warn;

use super::WorkerState;

pub async fn handle_batch(state: &WorkerState, job: &BatchJob) -> Result<(), BoxDynError> {
    let v = job.v1();
    let marker = batch_marker(v.job_id);
    let keys = RedisKeys::of(&state.config);
    let mut redis = state.redis.clone();
    let mut storage = state.storage.clone();
    let mut batches = queue::batch_storage(state.redis.clone(), &state.config, &state.timings);
    // `run_batch`, not `process_batch`: the subscription checks come after the reports (below).
    let out = match state.pipeline.run_batch(job).await {
        Ok(out) => out,
        Err(infra) => {
            // The stores failed under us: nothing was decided; the batch runs again later without
            // using an attempt.
            let mut next = job.clone();
            let BatchJob::V1(n) = &mut next;
            n.store_failures = n.store_failures.saturating_add(1);
            let after = state.config.retry.backoff(n.store_failures);
            warn!(error = %infra, retry_in_secs = after.as_secs(), "batch could not complete against the stores; retrying");
            queue::enqueue_batch(&mut batches, next, Some(after)).await?;
            for &c in &v.channel_ids {
                let _ = pending::hand_over(&mut redis, &keys, c, &marker, &marker, after).await;
            }
            return Ok(());
        }
    };
    if let Some((after, attempt)) = out.retry_batch {
        let mut next = job.clone();
        let BatchJob::V1(n) = &mut next;
        n.attempt = attempt;
        queue::enqueue_batch(&mut batches, next, Some(after)).await?;
        for &c in &v.channel_ids {
            let _ = pending::hand_over(&mut redis, &keys, c, &marker, &marker, after).await;
        }
        return Ok(());
    }
    let done: Vec<(i64, &str)> = out.healthy.iter().chain(&out.missing).map(|&c| (c, marker.as_str())).collect();
    if let Err(e) = pending::release_many(&mut redis, &keys, &done).await {
        // They lapse on their own.
        warn!(error = %e, channels = done.len(), "could not release the channels' markers");
    }
    for (single, after) in &out.later {
        queue::enqueue(&mut storage, single.clone(), Some(*after)).await?;
        let _ = pending::hand_over(&mut redis, &keys, single.channel_id(), &marker, single.job_id(), *after).await;
    }
    for (single, outcome) in &out.settled {
        let _ = pending::hand_over(
            &mut redis,
            &keys,
            single.channel_id(),
            &marker,
            single.job_id(),
            std::time::Duration::ZERO,
        )
        .await;
        followup::settle(&mut storage, &mut redis, &state.config, single, outcome).await?;
    }
    // Last: the settled channels' reports and the hand-overs wait for no subscription check.
    state.pipeline.after_batch_refreshes(&out).await;
    let healthy: Vec<_> = out.healthy.iter().map(|&c| job.single(c)).collect();
    super::proactive::after_healthy_many(state, &healthy, &out.healthy_channels).await;
    Ok(())
}
