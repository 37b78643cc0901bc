//! Send-failure intake: the messaging service reports a send that failed with a Graph error. Only
//! auth-class errors start a refresh; a storm of reports for one channel coalesces into one job; a
//! report about a token already replaced is answered without another Graph call; a deep queue
//! defers the refresh instead of blocking the caller or dropping the report.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::{
    config::Config,
    graph::{ErrorKind, GraphError, from_error_object},
    job::{Capability, Reason, RefreshJob},
    keys::RedisKeys,
    pending,
    queue::{self, JobStorage},
    store,
};

/// Removes each given entry once from a list whose head holds them: exactly what was pushed, even
/// when another drainer removed some of them first.
const REMOVE_HEAD_ENTRIES: &str = r#"
for _, body in ipairs(ARGV) do
  redis.call('LREM', KEYS[1], 1, body)
end
return 0
"#;

/// A report without a time is taken to be about a send this long before it arrived: a token
/// written after that was not the one the send failed with.
const REPORT_SLACK: ChronoDuration = ChronoDuration::seconds(30);

/// What the intake did with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Decision {
    /// A refresh job was enqueued.
    Enqueued { job_id: Uuid },
    /// A refresh is already queued or running for the channel; this report joined it.
    Coalesced { job_id: Uuid },
    /// The channel's token was replaced after the failed send; nothing to do.
    AlreadyReplaced,
    /// Not an auth-class error: recorded, no refresh.
    NotAuth,
    /// The queue is at its bound: the refresh is recorded and enqueued when there is room.
    Deferred { job_id: Uuid },
}

impl Decision {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Enqueued { .. } => "enqueued",
            Self::Coalesced { .. } => "coalesced",
            Self::AlreadyReplaced => "already_replaced",
            Self::NotAuth => "not_auth",
            Self::Deferred { .. } => "deferred",
        }
    }

    fn job_id(&self) -> Option<Uuid> {
        match self {
            Self::Enqueued { job_id } | Self::Coalesced { job_id } | Self::Deferred { job_id } => Some(*job_id),
            Self::AlreadyReplaced | Self::NotAuth => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error("the body is not a Graph error: {0}")]
    BadReport(String),
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Enqueue(#[from] queue::EnqueueError),
}

/// What the intake needs; cheap to clone.
#[derive(Clone)]
pub struct Intake {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub storage: JobStorage,
    pub config: std::sync::Arc<Config>,
}

fn is_reconnecting(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout()
}

/// Parses `{"error": {...}}` (or the bare error object) into a classified Graph error, token-shaped
/// words in its message masked (`Intake::report` also removes the channel's own tokens).
pub fn parse_report(body: &Value) -> Result<GraphError, IntakeError> {
    let error = body.get("error").unwrap_or(body);
    if !error.is_object() {
        return Err(IntakeError::BadReport("expected {\"error\": {<Graph error object>}}".into()));
    }
    // Graph's codes are integers; anything else is not a Graph error object, and guessing would
    // classify it wrong.
    if !error.get("code").is_some_and(serde_json::Value::is_i64) {
        return Err(IntakeError::BadReport("the Graph error object has no integer code".into()));
    }
    Ok(from_error_object(error, None, &reqwest::header::HeaderMap::new()))
}

impl Intake {
    /// Reports check the backlog and then push, as separate steps, so concurrent callers can all
    /// pass the check at once: they stop short of the bound by a headroom (a tenth of it, at most
    /// 500), so up to that many callers at once still keep the queue within QUEUE_BACKLOG_MAX.
    fn limit(&self) -> u64 {
        let max = self.config.queue_backlog_max;
        max - (max / 10).min(500)
    }

    fn deferred_key(&self) -> String {
        RedisKeys::of(&self.config).deferred()
    }

    /// Handles one report about `channel_id` (known to exist). `failed_at` is when the send failed,
    /// if the reporter said.
    pub async fn report(
        &self,
        channel_id: i64,
        error: &GraphError,
        failed_at: Option<DateTime<Utc>>,
    ) -> Result<Decision, IntakeError> {
        self.report_as(&RefreshJob::new(channel_id, Reason::SendFailure), error, failed_at).await
    }

    /// `report` with the refresh job it starts, if it starts one. Trying again with the same job
    /// after an error is safe: a try that claimed the channel and then lost its connection left a
    /// marker naming this job, and the next try finishes what it began instead of joining it.
    pub async fn report_as(
        &self,
        job: &RefreshJob,
        error: &GraphError,
        failed_at: Option<DateTime<Utc>>,
    ) -> Result<Decision, IntakeError> {
        let channel_id = job.channel_id();
        let error = &self.scrubbed(channel_id, error).await?;
        // The page validation passes without the permission the send lacked; the job must look.
        let job = &match error.kind {
            ErrorKind::Permission => job.needing(Capability::Messaging),
            _ => job.clone(),
        };
        // Commands on a connection Redis dropped (a restart, a failover) fail until the manager
        // has reconnected in the background; a report should not fail with them.
        let mut pause = std::time::Duration::from_millis(50);
        let decision = loop {
            match self.decide(job, error, failed_at).await {
                Err(IntakeError::Redis(e)) if is_reconnecting(&e) && pause < std::time::Duration::from_secs(2) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                other => break other?,
            }
        };
        store::record_send_failure(&self.db, channel_id, error, decision.name(), decision.job_id()).await?;
        Ok(decision)
    }

    /// The reporter's error object is Graph's text too, and may quote this channel's tokens in any
    /// shape (`parse_report`'s backstop only knows token-shaped ones).
    async fn scrubbed(&self, channel_id: i64, error: &GraphError) -> Result<GraphError, IntakeError> {
        let mut error = error.clone();
        // An undecryptable row's tokens are unknown here; the token-shaped backstop still applies.
        let Some(Ok(channel)) = crate::store::load_channel(&self.db, &self.config.codec(), channel_id).await? else {
            return Ok(error);
        };
        let app_token = match (&self.config.fb_app_id, &self.config.fb_app_secret) {
            (Some(id), Some(secret)) => Some(format!("{id}|{}", secret.expose())),
            _ => None,
        };
        let mut secrets = vec![channel.page_token.expose(), channel.user_token.expose()];
        secrets.extend(self.config.fb_app_secret.as_ref().map(crate::secret::Secret::expose));
        secrets.extend(app_token.as_deref());
        error.message = crate::graph::scrub(&error.message, &secrets);
        Ok(error)
    }

    async fn decide(
        &self,
        job: &RefreshJob,
        error: &GraphError,
        failed_at: Option<DateTime<Utc>>,
    ) -> Result<Decision, IntakeError> {
        if !error.kind.is_confirmed_failure() {
            return Ok(Decision::NotAuth);
        }
        let (channel_id, job_id) = (job.channel_id(), job.job_id());
        let mut redis = self.redis.clone();
        let keys = RedisKeys::of(&self.config);
        match pending::marker(&mut redis, &keys, channel_id).await? {
            // An earlier try of this report claimed the channel; whether it also pushed the job is
            // known only to the queue.
            Some(pending::Marker::Job(id)) if id == job_id => return self.resume_claimed(job).await,
            Some(pending::Marker::Job(job_id) | pending::Marker::Batch(job_id)) => {
                return Ok(Decision::Coalesced { job_id });
            }
            None => {}
        }
        // On the database's clock: a producer whose clock is off would otherwise take fresh tokens
        // for old ones, or old for fresh.
        if store::refreshed_since(&self.db, channel_id, failed_at, REPORT_SLACK).await? {
            return Ok(Decision::AlreadyReplaced);
        }
        let claimed = match pending::claim_many(&mut redis, &keys, &[(channel_id, job_id)]).await {
            Ok(won) => won.first().copied().unwrap_or(false),
            Err(e) => return Err(self.unclaim(job, e.into()).await),
        };
        if !claimed {
            return Ok(match pending::owner(&mut redis, &keys, channel_id).await? {
                Some(job_id) => Decision::Coalesced { job_id },
                None => Decision::Coalesced { job_id },
            });
        }
        match self.push_claimed(job).await {
            Ok(decision) => Ok(decision),
            Err(e) => Err(self.unclaim(job, e).await),
        }
    }

    /// The channel is claimed for `job`: push it, to the head of the queue, or to the deferred
    /// list when the queue is at its bound.
    async fn push_claimed(&self, job: &RefreshJob) -> Result<Decision, IntakeError> {
        let mut redis = self.redis.clone();
        let job_id = job.job_id();
        if queue::backlog(&mut redis, &self.config).await? >= self.limit() {
            let body = serde_json::to_string(job).map_err(|e| IntakeError::BadReport(e.to_string()))?;
            let _: () = redis.rpush(self.deferred_key(), body).await?;
            return Ok(Decision::Deferred { job_id });
        }
        // An inbox is failing to send now: this refresh goes ahead of a cycle's backlog.
        queue::enqueue_front(&mut self.storage.clone(), &mut redis, &self.config, job.clone()).await?;
        Ok(Decision::Enqueued { job_id })
    }

    /// A retry found the channel claimed for this very job: answer what the earlier try did, or
    /// finish what it could not.
    async fn resume_claimed(&self, job: &RefreshJob) -> Result<Decision, IntakeError> {
        let mut redis = self.redis.clone();
        let job_id = job.job_id();
        if queue::pushed_front(&mut redis, &self.config, job_id).await? {
            return Ok(Decision::Enqueued { job_id });
        }
        let body = serde_json::to_string(job).map_err(|e| IntakeError::BadReport(e.to_string()))?;
        let at: Option<i64> = redis::cmd("LPOS").arg(self.deferred_key()).arg(body).query_async(&mut redis).await?;
        if at.is_some() {
            return Ok(Decision::Deferred { job_id });
        }
        match self.push_claimed(job).await {
            Ok(decision) => Ok(decision),
            Err(e) => Err(self.unclaim(job, e).await),
        }
    }

    /// A try failed after (perhaps) claiming the channel: free it, so that later reports do not
    /// coalesce into a job that was never pushed. If Redis is unreachable for this too, the
    /// report's own retry recognises the marker as its own.
    async fn unclaim(&self, job: &RefreshJob, error: IntakeError) -> IntakeError {
        let keys = RedisKeys::of(&self.config);
        let _ = pending::release(&mut self.redis.clone(), &keys, job.channel_id(), job.job_id()).await;
        error
    }

    /// Moves deferred refreshes to the head of the queue while it has room, oldest first; returns
    /// how many moved. An entry leaves the deferred list only after its job was pushed, so a crash
    /// or a failed push loses none; one pushed twice (a crash between push and removal, two
    /// drainers at once) is the same job under the same task id and is not queued again.
    pub async fn drain_deferred(&self) -> Result<usize, IntakeError> {
        let mut redis = self.redis.clone();
        let mut moved = 0;
        loop {
            let room = self.limit().saturating_sub(queue::backlog(&mut redis, &self.config).await?);
            if room == 0 {
                return Ok(moved);
            }
            let take = room.min(500) as isize;
            let bodies: Vec<String> = redis.lrange(self.deferred_key(), 0, take - 1).await?;
            if bodies.is_empty() {
                return Ok(moved);
            }
            let jobs: Vec<RefreshJob> = bodies
                .iter()
                .filter_map(|b| match serde_json::from_str(b) {
                    Ok(job) => Some(job),
                    Err(e) => {
                        warn!(error = %e, "undecodable deferred refresh dropped");
                        None
                    }
                })
                .collect();
            let n = jobs.len();
            queue::enqueue_front_many(&mut self.storage.clone(), &mut redis, &self.config, jobs).await?;
            let _: i64 = redis::Script::new(REMOVE_HEAD_ENTRIES)
                .key(self.deferred_key())
                .arg(&bodies)
                .invoke_async(&mut redis)
                .await?;
            moved += n;
        }
    }

    /// Drains the deferred refreshes every half second until `shutdown`. Producers and workers
    /// both run it: draining is safe from any number of processes at once, and a deployment
    /// without `producer serve` still gets its deferred refreshes done.
    pub async fn run_drainer(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
            }
            match self.drain_deferred().await {
                Ok(0) => {}
                Ok(n) => info!(moved = n, "deferred refreshes enqueued"),
                Err(e) => warn!(error = %e, "cannot drain deferred refreshes; retrying"),
            }
        }
    }

    pub async fn deferred_len(&self) -> Result<u64, IntakeError> {
        Ok(self.redis.clone().llen(self.deferred_key()).await?)
    }
}
