//! A panic inside one job must not end the worker. apalis drives every handler inside the worker's
//! own future, so an unwinding job would take the loop, and the process, down with it; a payload
//! that panics deterministically would then crash-loop every worker. Each job therefore runs under
//! `catch_unwind`: a panic becomes a dead letter with its cause, the channel is freed for the next
//! refresh, and whoever waits on the job is told it is dead.

// Catching relies on unwinding: built with `panic = "abort"`, one bad job would end the process.
#[cfg(panic = "abort")]
compile_error!("the worker relies on panics unwinding (see worker/src/guard.rs); do not set panic = \"abort\"");

use std::{any::Any, future::Future, panic::AssertUnwindSafe};

use crate::{
    job::{QueueJob, RefreshJob},
    keys::RedisKeys,
    locks,
    metrics::Metrics,
    pending::{self, batch_marker},
    queue::{self, JobFault, JobReport, ReportError, ReportErrorKind},
    store,
};
use apalis::prelude::BoxDynError;
use futures::FutureExt as _;
use tracing::{error, warn};

use super::WorkerState;

/// The most of a panic message kept in logs, the dead letter and the report.
pub const MAX_PANIC_MESSAGE: usize = 500;

/// Runs one job's `work`; a panic in it is settled here and answered `Ok`, so apalis acks the job
/// instead of retrying something that would most likely panic again (`retry-dead` re-drives it once
/// the cause is fixed).
pub async fn run_guarded<F>(state: &WorkerState, payload: &serde_json::Value, work: F) -> Result<(), BoxDynError>
where
    F: Future<Output = Result<(), BoxDynError>>,
{
    // Unwind safety: what a job shares (pools, connection managers, metrics) is updated one whole
    // command at a time, so a job cut short cannot leave it half-changed; the job's own state is
    // dropped with it.
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => {
            settle_panic(state, payload, &panic_message(panic.as_ref())).await;
            Ok(())
        }
    }
}

/// The panic's text, cut to `MAX_PANIC_MESSAGE` characters, with anything shaped like a token or a
/// secret masked: our own panics carry neither, but a message may quote input.
pub fn panic_message(panic: &(dyn Any + Send)) -> String {
    let raw = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a text payload".to_owned());
    let masked = mask_long_words(&raw);
    match masked.char_indices().nth(MAX_PANIC_MESSAGE) {
        Some((cut, _)) => format!("{}…", &masked[..cut]),
        None => masked,
    }
}

/// Replaces every run of 32 or more letters and digits (tokens, app secrets, proofs) by
/// `[redacted]`; words, ids and UUID groups are shorter.
fn mask_long_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.chars().count() >= 32 {
            out.push_str("[redacted]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

async fn settle_panic(state: &WorkerState, payload: &serde_json::Value, message: &str) {
    Metrics::count(&state.pipeline.metrics.jobs, "panicked");
    let mut redis = state.redis.clone();
    let job = QueueJob::decode(payload).ok();
    let single = match &job {
        Some(QueueJob::Refresh(job)) => Some(job),
        _ => None,
    };
    // Recorded before anyone is told: a waiter that hears "dead" finds the dead letter.
    if let Err(e) = store::record_panic(&state.pipeline.db, single, &store::kept_payload(payload), message).await {
        warn!(error = %e, "could not record the panicked job in fb_dead_jobs");
    }
    match &job {
        Some(QueueJob::Refresh(job)) => {
            let v = job.v1();
            error!(job.id = %v.job_id, channel.id = v.channel_id, attempt = v.attempt, panic = message,
                "refresh job panicked; recorded in fb_dead_jobs, the worker carries on");
            // Its lock would otherwise hold the channel for the rest of its expiry.
            let _ = locks::release(&mut redis, &RedisKeys::of(&state.config), v.channel_id, v.job_id).await;
            if let Err(e) = pending::release(&mut redis, &RedisKeys::of(&state.config), v.channel_id, v.job_id).await {
                warn!(job.id = %v.job_id, error = %e, "could not release the panicked job's pending marker");
            }
            let report = dead_report(job, message);
            if let Err(e) = queue::publish_report(&mut redis, &state.config, &report).await {
                warn!(job.id = %v.job_id, error = %e, "could not publish the panicked job's report");
            }
        }
        Some(QueueJob::Batch(batch)) => {
            let v = batch.v1();
            error!(job.id = %v.job_id, channels = v.channel_ids.len(), attempt = v.attempt, panic = message,
                "batch job panicked; recorded in fb_dead_jobs, its channels wait for the next cycle");
            let (keys, marker) = (RedisKeys::of(&state.config), batch_marker(v.job_id));
            for &c in &v.channel_ids {
                let _ = pending::release(&mut redis, &keys, c, &marker).await;
            }
        }
        None => error!(panic = message, "job panicked; recorded in fb_dead_jobs, the worker carries on"),
    }
}

/// A settled report, so a caller waiting on the job stops waiting.
pub fn dead_report(job: &RefreshJob, message: &str) -> JobReport {
    let v = job.v1();
    JobReport {
        job_id: v.job_id,
        channel_id: v.channel_id,
        attempt: v.attempt,
        outcome: crate::job::JobOutcome::Dead,
        settled: true,
        token_valid: None,
        authorization_error_count: None,
        next_attempt_at: None,
        error: Some(ReportError {
            kind: ReportErrorKind::Job(JobFault::Panic),
            code: None,
            subcode: None,
            message: format!("the job panicked: {message}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_and_masked() {
        let long: Box<dyn Any + Send> = Box::new("x ".repeat(2_000));
        let m = panic_message(long.as_ref());
        assert_eq!(m.chars().count(), MAX_PANIC_MESSAGE + 1, "{m}");
        let token = format!("bad token EAAG{} in {}", "a1".repeat(40), uuid::Uuid::nil());
        let quoted: Box<dyn Any + Send> = Box::new(token);
        let m = panic_message(quoted.as_ref());
        assert!(!m.contains("EAAG") && m.contains("[redacted]"), "{m}");
        assert!(m.contains("00000000-0000-0000-0000-000000000000"), "ids stay readable: {m}");
        let opaque: Box<dyn Any + Send> = Box::new(42u8);
        assert_eq!(panic_message(opaque.as_ref()), "a panic without a text payload");
    }
}
