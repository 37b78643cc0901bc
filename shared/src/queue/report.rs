//! What a run of a job reported, kept for an hour and announced over pub/sub, so a caller (the API,
//! `refresh-channel`) can wait on a job it did not run.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::client;
use crate::{
    config::Config,
    graph::{ErrorKind, GraphError},
    job::JobOutcome,
};

/// Reports of a job are kept this long for a caller that waits on them.
const REPORT_TTL_SECS: u64 = 3_600;

/// What a run of a job reported, for a caller waiting on it (`refresh-channel`, the API).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub job_id: Uuid,
    pub channel_id: i64,
    pub attempt: u32,
    pub outcome: JobOutcome,
    pub settled: bool,
    pub token_valid: Option<bool>,
    pub authorization_error_count: Option<i64>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub error: Option<ReportError>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportError {
    pub kind: ReportErrorKind,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub message: String,
}

/// Why a job's report carries an error: what Graph's answer meant, or that the job panicked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReportErrorKind {
    Graph(ErrorKind),
    Job(JobFault),
}

/// A job's own fault, beside Graph's error kinds in a report (`panic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobFault {
    Panic,
}

impl ReportErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Graph(kind) => kind.as_str(),
            Self::Job(JobFault::Panic) => "panic",
        }
    }
}

/// The wire name compares equal, as a caller holding the JSON reads it.
impl PartialEq<&str> for ReportErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&GraphError> for ReportError {
    fn from(e: &GraphError) -> Self {
        Self { kind: ReportErrorKind::Graph(e.kind), code: e.code, subcode: e.subcode, message: e.message.clone() }
    }
}

fn report_key(config: &Config, job_id: Uuid) -> String {
    crate::keys::RedisKeys::of(config).report(job_id)
}

/// Stores the job's latest report and wakes whoever waits on it. Reading does not consume it, so
/// any number of callers can follow one job (a refresh joined by several requests).
pub async fn publish_report(
    redis: &mut ConnectionManager,
    config: &Config,
    report: &JobReport,
) -> redis::RedisResult<()> {
    let key = report_key(config, report.job_id);
    let body = serde_json::to_string(report).unwrap_or_default();
    let _: () = redis::pipe()
        .set_ex(&key, body, REPORT_TTL_SECS)
        .ignore()
        .publish(&key, "1")
        .ignore()
        .query_async(redis)
        .await?;
    Ok(())
}

/// The job's latest report, if it reported yet.
pub async fn latest_report(
    redis: &mut ConnectionManager,
    config: &Config,
    job_id: Uuid,
) -> redis::RedisResult<Option<JobReport>> {
    let body: Option<String> = redis.get(report_key(config, job_id)).await?;
    Ok(body.and_then(|b| serde_json::from_str(&b).ok()))
}

/// The latest reports of many jobs in one round trip (`None` where a job has not reported, or
/// its report expired).
pub async fn latest_reports(
    redis: &mut ConnectionManager,
    config: &Config,
    job_ids: &[Uuid],
) -> redis::RedisResult<Vec<Option<JobReport>>> {
    if job_ids.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<String> = job_ids.iter().map(|id| report_key(config, *id)).collect();
    let bodies: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(redis).await?;
    Ok(bodies.into_iter().map(|b| b.and_then(|b| serde_json::from_str(&b).ok())).collect())
}

/// How waiting for a job ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Waited {
    Settled(JobReport),
    /// Time ran out after the job reported it will run again.
    RetryScheduled(JobReport),
    /// Time ran out and no worker reported anything.
    NoWorker,
}

/// Waits up to `timeout` for a settled report of `job_id`: subscribes first, then reads, so a
/// report published in between is not missed. Two connections of its own per call: for one-off
/// callers (tests, benchmarks); a server shares one `reports::ReportWaiter`.
pub async fn wait_for_report(config: &Config, job_id: Uuid, timeout: Duration) -> redis::RedisResult<Waited> {
    use futures::StreamExt;
    let client = client(config)?;
    let key = report_key(config, job_id);
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&key).await?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut messages = pubsub.on_message();
    let mut last: Option<JobReport> = None;
    loop {
        let body: Option<String> = conn.get(&key).await?;
        if let Some(report) = body.and_then(|b| serde_json::from_str::<JobReport>(&b).ok()) {
            if report.settled {
                return Ok(Waited::Settled(report));
            }
            last = Some(report);
        }
        match tokio::time::timeout_at(deadline, messages.next()).await {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => break,
        }
    }
    Ok(match last {
        Some(r) => Waited::RetryScheduled(r),
        None => Waited::NoWorker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds keep the wire names reports always had, both ways.
    #[test]
    fn error_kinds_are_their_old_names_on_the_wire() {
        for (kind, name) in [
            (ReportErrorKind::Graph(ErrorKind::Auth), "\"auth\""),
            (ReportErrorKind::Graph(ErrorKind::RateLimited), "\"rate_limited\""),
            (ReportErrorKind::Job(JobFault::Panic), "\"panic\""),
        ] {
            assert_eq!(serde_json::to_string(&kind).expect("serialize"), name);
            assert_eq!(serde_json::from_str::<ReportErrorKind>(name).expect("deserialize"), kind);
            assert_eq!(kind, name.trim_matches('"'));
        }
        assert!(serde_json::from_str::<ReportErrorKind>("\"bogus\"").is_err());
    }
}
