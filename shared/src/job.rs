//! The one job type. Serde-tagged and versioned so that payloads already in Redis still decode after a
//! deploy, and so a dashboard can read them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a refresh was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Cron,
    SendFailure,
    Manual,
    Proactive,
}

impl std::str::FromStr for Reason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cron" => Ok(Self::Cron),
            "send_failure" => Ok(Self::SendFailure),
            "manual" => Ok(Self::Manual),
            "proactive" => Ok(Self::Proactive),
            other => Err(format!("unknown reason {other:?}")),
        }
    }
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cron => "cron",
            Self::SendFailure => "send_failure",
            Self::Manual => "manual",
            Self::Proactive => "proactive",
        }
    }
}

/// What a job came to, as its report and its metrics name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobOutcome {
    Healthy,
    Refreshed,
    /// Counted once, below the threshold: a re-check follows.
    ConfirmedFailure,
    /// Counted, at the threshold: the flag is up.
    ReauthorizationRequired,
    Retrying,
    /// Dead-lettered: out of attempts, or the job panicked.
    Dead,
    Superseded,
    ChannelMissing,
    Undecryptable,
}

impl JobOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Refreshed => "refreshed",
            Self::ConfirmedFailure => "confirmed_failure",
            Self::ReauthorizationRequired => "reauthorization_required",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Superseded => "superseded",
            Self::ChannelMissing => "channel_missing",
            Self::Undecryptable => "undecryptable",
        }
    }
}

impl std::fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wire name compares equal: callers and tests read reports as JSON does.
impl PartialEq<&str> for JobOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// What a job's validation must show beyond a token that answers: a send can fail for a permission
/// the token lacks while the token itself works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    /// The page token can send messages (`pages_messaging`).
    Messaging,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RefreshJob {
    #[serde(rename = "refresh.v1")]
    V1(RefreshJobV1),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshJobV1 {
    /// Ours, not apalis's: it survives our own re-scheduling, so a waiter can follow one request
    /// through its retries.
    pub job_id: Uuid,
    pub channel_id: i64,
    pub reason: Reason,
    pub enqueued_at: DateTime<Utc>,
    /// 1 for the first run; re-scheduled copies carry the next number.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// Runs in a row that Postgres or Redis failed under; they do not use attempts.
    #[serde(default)]
    pub store_failures: u32,
    /// Left out when `None`, so jobs without it keep the payload older workers know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs: Option<Capability>,
}

fn first_attempt() -> u32 {
    1
}

impl RefreshJob {
    pub fn new(channel_id: i64, reason: Reason) -> Self {
        Self::V1(RefreshJobV1 {
            job_id: Uuid::now_v7(),
            channel_id,
            reason,
            enqueued_at: Utc::now(),
            attempt: 1,
            store_failures: 0,
            needs: None,
        })
    }

    /// The same job, its validation also holding the token to `needs`.
    pub fn needing(&self, needs: Capability) -> Self {
        Self::V1(RefreshJobV1 { needs: Some(needs), ..self.v1().clone() })
    }

    pub fn v1(&self) -> &RefreshJobV1 {
        match self {
            Self::V1(v) => v,
        }
    }

    pub fn job_id(&self) -> Uuid {
        self.v1().job_id
    }

    pub fn channel_id(&self) -> i64 {
        self.v1().channel_id
    }

    /// The copy that runs next time: same job, next attempt.
    pub fn next_attempt(&self) -> Self {
        let mut v = self.v1().clone();
        v.attempt += 1;
        Self::V1(v)
    }

    /// A new job for the same channel and reason, with an id of its own so that it counts on its
    /// own. The id is derived from this job's, so a run repeated after a crash (follow-up pushed,
    /// ack lost) pushes the same follow-up, which counts once however often it is pushed.
    pub fn follow_up(&self) -> Self {
        let v = self.v1();
        Self::V1(RefreshJobV1 {
            job_id: Uuid::new_v5(&v.job_id, b"follow-up"),
            attempt: 1,
            store_failures: 0,
            enqueued_at: Utc::now(),
            ..v.clone()
        })
    }

    /// Decodes a payload from the queue, with an error that says what is wrong with it.
    pub fn decode(value: &serde_json::Value) -> Result<Self, String> {
        let job: Self = serde_json::from_value(value.clone()).map_err(|e| format!("undecodable refresh job: {e}"))?;
        let v = job.v1();
        if v.channel_id <= 0 || v.channel_id > i64::from(i32::MAX) {
            return Err(format!("refresh job with an impossible channel id {}", v.channel_id));
        }
        if v.attempt == 0 {
            return Err("refresh job with attempt 0".into());
        }
        Ok(job)
    }
}

/// A cycle's validation of up to 50 channels in one Graph batch call; the channels that fail go
/// on to refresh, one `/me/accounts` sweep per user token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BatchJob {
    #[serde(rename = "validate_batch.v1")]
    V1(BatchJobV1),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchJobV1 {
    pub job_id: Uuid,
    pub channel_ids: Vec<i64>,
    pub reason: Reason,
    pub enqueued_at: DateTime<Utc>,
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    #[serde(default)]
    pub store_failures: u32,
}

impl BatchJob {
    pub fn new(channel_ids: Vec<i64>, reason: Reason) -> Self {
        Self::V1(BatchJobV1 {
            job_id: Uuid::now_v7(),
            channel_ids,
            reason,
            enqueued_at: Utc::now(),
            attempt: 1,
            store_failures: 0,
        })
    }

    pub fn v1(&self) -> &BatchJobV1 {
        match self {
            Self::V1(v) => v,
        }
    }

    /// The single-channel job a batch hands one of its channels to, and the id the batch counts
    /// that channel's failure under. Derived from the batch's id, so a batch that runs again (a
    /// crash, a worker loop restart, a retried store error) counts each channel once, as the
    /// contract wants of every job.
    pub fn single(&self, channel_id: i64) -> RefreshJob {
        let v = self.v1();
        RefreshJob::V1(RefreshJobV1 {
            job_id: Uuid::new_v5(&v.job_id, channel_id.to_string().as_bytes()),
            channel_id,
            reason: v.reason,
            enqueued_at: v.enqueued_at,
            attempt: 1,
            store_failures: 0,
            needs: None,
        })
    }
}

/// Anything a worker may find in the queue.
#[derive(Debug, Clone, PartialEq)]
pub enum QueueJob {
    Refresh(RefreshJob),
    Batch(BatchJob),
}

impl QueueJob {
    /// Decodes a payload by its `type`, with an error that says what is wrong with it.
    pub fn decode(value: &serde_json::Value) -> Result<Self, String> {
        if value.get("type").and_then(serde_json::Value::as_str) == Some("validate_batch.v1") {
            let job: BatchJob =
                serde_json::from_value(value.clone()).map_err(|e| format!("undecodable batch job: {e}"))?;
            let v = job.v1();
            if v.channel_ids.is_empty()
                || v.channel_ids.len() > 50
                || v.channel_ids.iter().any(|&c| c <= 0 || c > i64::from(i32::MAX))
                // One channel twice would be settled twice in one statement, which Postgres refuses.
                || v.channel_ids.iter().collect::<std::collections::HashSet<_>>().len() != v.channel_ids.len()
            {
                return Err("batch job with an impossible channel list".into());
            }
            return Ok(Self::Batch(job));
        }
        RefreshJob::decode(value).map(Self::Refresh)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wire_format_is_tagged_and_stable() {
        let job = RefreshJob::new(42, Reason::SendFailure);
        let v = serde_json::to_value(&job).expect("serializes");
        assert_eq!(v["type"], "refresh.v1");
        assert_eq!(v["channel_id"], 42);
        assert_eq!(v["reason"], "send_failure");
        assert_eq!(RefreshJob::decode(&v).expect("decodes"), job);
    }

    #[test]
    fn old_payload_without_attempt_decodes() {
        let v = json!({"type": "refresh.v1", "job_id": "0190b0f0-0000-7000-8000-000000000000", "channel_id": 7,
                       "reason": "cron", "enqueued_at": "2026-11-29T00:00:00Z"});
        assert_eq!(RefreshJob::decode(&v).expect("decodes").v1().attempt, 1);
    }

    #[test]
    fn old_payload_without_needs_decodes_and_new_ones_keep_it() {
        let v = json!({"type": "refresh.v1", "job_id": "0190b0f0-0000-7000-8000-000000000000", "channel_id": 7,
                       "reason": "send_failure", "enqueued_at": "2026-11-29T00:00:00Z", "attempt": 2, "store_failures": 0});
        assert_eq!(RefreshJob::decode(&v).expect("decodes").v1().needs, None);
        let plain = RefreshJob::new(7, Reason::SendFailure);
        assert!(serde_json::to_value(&plain).expect("serializes").get("needs").is_none(), "payload unchanged");
        let job = plain.needing(Capability::Messaging);
        let v = serde_json::to_value(&job).expect("serializes");
        assert_eq!(v["needs"], "messaging");
        let back = RefreshJob::decode(&v).expect("decodes");
        assert_eq!(back.v1().needs, Some(Capability::Messaging));
        assert_eq!(back.job_id(), plain.job_id(), "the same job");
        assert_eq!(back.next_attempt().v1().needs, Some(Capability::Messaging));
        assert_eq!(back.follow_up().v1().needs, Some(Capability::Messaging), "a re-check checks the same");
    }

    #[test]
    fn poison_payloads_are_refused_with_a_reason() {
        for bad in [
            json!(null),
            json!("x"),
            json!({"type": "refresh.v9", "channel_id": 1}),
            json!({"type": "refresh.v1", "channel_id": "one"}),
            json!({"type": "refresh.v1", "job_id": "0190b0f0-0000-7000-8000-000000000000", "channel_id": -1, "reason": "cron", "enqueued_at": "2026-11-29T00:00:00Z"}),
            json!({"type": "refresh.v1", "job_id": "0190b0f0-0000-7000-8000-000000000000", "channel_id": 1, "reason": "whim", "enqueued_at": "2026-11-29T00:00:00Z"}),
        ] {
            assert!(RefreshJob::decode(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn batch_jobs_decode_by_type_and_are_checked() {
        let job = BatchJob::new(vec![1, 2, 3], Reason::Cron);
        let v = serde_json::to_value(&job).expect("serializes");
        assert_eq!(v["type"], "validate_batch.v1");
        assert_eq!(QueueJob::decode(&v).expect("decodes"), QueueJob::Batch(job));
        let single = serde_json::to_value(RefreshJob::new(4, Reason::Manual)).expect("serializes");
        assert!(matches!(QueueJob::decode(&single), Ok(QueueJob::Refresh(_))));
        for bad in [
            json!({"type": "validate_batch.v1", "job_id": "0190b0f0-0000-7000-8000-000000000000", "channel_ids": [], "reason": "cron", "enqueued_at": "2026-11-29T00:00:00Z"}),
            json!({"type": "validate_batch.v1", "channel_ids": "x"}),
            json!({"type": "validate_batch.v1", "job_id": "0190b0f0-0000-7000-8000-000000000000", "channel_ids": [5, 5], "reason": "cron", "enqueued_at": "2026-11-29T00:00:00Z"}),
        ] {
            assert!(QueueJob::decode(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn next_attempt_keeps_the_id_follow_up_does_not() {
        let job = RefreshJob::new(1, Reason::Cron);
        assert_eq!(job.next_attempt().job_id(), job.job_id());
        assert_eq!(job.next_attempt().v1().attempt, 2);
        assert_ne!(job.follow_up().job_id(), job.job_id());
        assert_eq!(job.follow_up().job_id(), job.follow_up().job_id(), "a repeated run pushes the same follow-up");
        assert_ne!(job.follow_up().follow_up().job_id(), job.follow_up().job_id());
    }

    #[test]
    fn a_batch_names_each_channel_the_same_way_every_run() {
        let batch = BatchJob::new(vec![1, 2], Reason::Cron);
        assert_eq!(batch.single(1), batch.single(1));
        assert_ne!(batch.single(1).job_id(), batch.single(2).job_id());
        let other = BatchJob::new(vec![1, 2], Reason::Cron);
        assert_ne!(batch.single(1).job_id(), other.single(1).job_id());
    }
}
