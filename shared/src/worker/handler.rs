//! The apalis handler: a thin adapter that decodes the payload, runs the pipeline and settles the
//! outcome. Graph failures never become job errors (apalis would retry them its own way).

use std::time::Duration;

use crate::{
    followup,
    job::{QueueJob, RefreshJob},
    pipeline::Outcome,
    queue::JobReport,
    store,
};
use apalis::prelude::{BoxDynError, Data};
use tracing::{Instrument, error, info_span, warn};

use super::WorkerState;

/// The apalis entry point; a panicking job is settled as dead instead of ending the worker.
pub async fn handle(payload: serde_json::Value, state: Data<WorkerState>) -> Result<(), BoxDynError> {
    super::guard::run_guarded(&state, &payload, handle_payload(&state, payload.clone())).await
}

/// One payload from the queue, start to finish.
pub async fn handle_payload(state: &WorkerState, payload: serde_json::Value) -> Result<(), BoxDynError> {
    let job = match QueueJob::decode(&payload) {
        Ok(QueueJob::Refresh(job)) => job,
        Ok(QueueJob::Batch(batch)) => {
            let v = batch.v1();
            let span = info_span!("batch_job", job.id = %v.job_id, channels = v.channel_ids.len(), attempt = v.attempt);
            return super::batch::handle_batch(state, &batch).instrument(span).await;
        }
        Err(why) => {
            // Retrying cannot fix a payload; keep a trace of it and move on. The log gets its size
            // and shape only: the payload is arbitrary, and the full text goes to fb_dead_jobs.
            error!(payload = %poison_summary(&payload), "{why}; job dropped and recorded in fb_dead_jobs");
            if let Err(e) = store::record_poison(&state.pipeline.db, &store::kept_payload(&payload), &why).await {
                warn!(error = %e, "could not record the poison payload");
            }
            return Ok(());
        }
    };
    let v = job.v1();
    tracing::debug!(job.id = %v.job_id, channel.id = v.channel_id, "refresh job fetched");
    let span = info_span!("refresh_job", job.id = %v.job_id, channel.id = v.channel_id, attempt = v.attempt, reason = v.reason.as_str());
    handle_job(state, &job).instrument(span).await.map(|_| ())
}

/// What a log line may say about an arbitrary payload: its size, and its top-level keys (or type)
/// cut to 80 chars.
pub fn poison_summary(payload: &serde_json::Value) -> String {
    let bytes = payload.to_string().len();
    let shape = match payload {
        serde_json::Value::Object(map) => {
            format!("keys {}", map.keys().map(String::as_str).collect::<Vec<_>>().join(","))
        }
        serde_json::Value::Array(a) => format!("array of {}", a.len()),
        serde_json::Value::String(_) => "string".to_owned(),
        other => format!("{other}"),
    };
    let cut: String = shape.chars().take(80).collect();
    let more = if cut.len() < shape.len() { "…" } else { "" };
    format!("{bytes} bytes, {cut}{more}")
}

/// Runs the pipeline and settles the outcome; returns the report it published.
pub async fn handle_job(state: &WorkerState, job: &RefreshJob) -> Result<JobReport, BoxDynError> {
    // `run_job`, not `process`: the subscription check a new token calls for comes after the report.
    let (job, outcome) = match state.pipeline.run_job(job).await {
        Ok(outcome) => (job.clone(), outcome),
        Err(infra) => infra_retry(state, job, &infra.to_string()),
    };
    let mut storage = state.storage.clone();
    let mut redis = state.redis.clone();
    // If the follow-up cannot be pushed (Redis is down too), failing the job leaves it in apalis's
    // hands: its own retry, or orphan recovery once this worker restarts. Not lost either way.
    let report = followup::settle(&mut storage, &mut redis, &state.config, &job, &outcome).await?;
    if outcome == Outcome::Refreshed {
        state.pipeline.after_refreshes(&[&job]).await;
    }
    if matches!(outcome, Outcome::Healthy | Outcome::Refreshed) {
        super::proactive::after_healthy(state, &job).await;
    }
    Ok(report)
}

/// Postgres or Redis failed mid-job: nothing was decided, so the job runs again later. A store
/// outage is nobody's fault: it backs off (up to `RETRY_MAX_SECS`) without using attempts, so a long
/// outage loses no job.
fn infra_retry(state: &WorkerState, job: &RefreshJob, why: &str) -> (RefreshJob, Outcome) {
    let mut next = job.clone();
    let RefreshJob::V1(v) = &mut next;
    v.store_failures = v.store_failures.saturating_add(1);
    let after = state.config.retry.backoff(v.store_failures).max(Duration::from_secs(1));
    warn!(
        error = why,
        store_failures = v.store_failures,
        retry_in_secs = after.as_secs(),
        "job could not complete against the stores; retrying"
    );
    let outcome = Outcome::Retry {
        error: crate::graph::GraphError::transport(format!("store unavailable: {why}")),
        after,
        next_attempt: v.attempt,
    };
    (next, outcome)
}

#[cfg(test)]
mod tests {
    use super::poison_summary;

    #[test]
    fn a_poison_payload_is_summarised_not_printed() {
        let secretish = "EAAG".to_owned() + &"x".repeat(10_000);
        let payload = serde_json::json!({"type": "refresh.v9", "token": secretish});
        let line = poison_summary(&payload);
        assert!(line.starts_with(&format!("{} bytes, keys ", payload.to_string().len())), "{line}");
        assert!(line.contains("token") && !line.contains("EAAG"), "{line}");
        let wide =
            serde_json::Value::Object((0..100).map(|i| (format!("key{i:03}"), serde_json::Value::Null)).collect());
        let line = poison_summary(&wide);
        assert!(line.chars().count() <= 100 && line.ends_with('…'), "{line}");
        assert!(poison_summary(&serde_json::json!("EAAGsecret")).ends_with("string"));
    }
}
