//! The jobs in the queue by state, for the queue page: what apalis-redis 1.0 keeps, read in a few
//! round trips and never changed. Each state shows its first `limit` jobs and its full count.
//!
//! - waiting: `{q}:active` in fetch order, then the jobs of `{q}:scheduled` already due (apalis
//!   pushes every job there, due now or later, and a fetch moves the due ones to `active`);
//! - scheduled and retrying: the rest of `{q}:scheduled` by due time; a job whose payload says
//!   attempt 2 or later is a retry we re-scheduled (apalis's own retries are off), the rest are
//!   first runs pushed for later (rate-limit waits, deferred re-checks). Only the first `SCAN` of
//!   the set is read to split them, so a huge set shows the earliest ones and says so;
//! - running: each registered worker's in-flight set;
//! - dead: apalis's own dead set (ours, the dead letters, are in Postgres).
//!
//! Payloads carry ids, never tokens; a payload someone else pushed might, so every one shown goes
//! through `mask_token_shapes` first.

use chrono::{DateTime, TimeZone, Utc};
use redis::{AsyncCommands, aio::ConnectionManager};
use serde_json::Value;
use uuid::Uuid;

use super::report::{ReportError, latest_reports};
use crate::{config::Config, graph::mask_token_shapes, keys::RedisKeys};

/// How many scheduled jobs are read to split "scheduled" from "retrying".
pub const SCAN: usize = 2_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Waiting,
    Scheduled,
    Retrying,
    Running,
    Dead,
}

/// One job as the page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedJob {
    pub task_id: String,
    pub state: JobState,
    /// `refresh.v1`, `validate_batch.v1`, or `None` when the payload has no type we know.
    pub kind: Option<String>,
    pub job_id: Option<Uuid>,
    pub channels: Vec<i64>,
    pub reason: Option<String>,
    pub attempt: Option<u64>,
    /// When a scheduled or retrying job is due.
    pub due_at: Option<DateTime<Utc>>,
    /// The worker running it.
    pub worker: Option<String>,
    /// What the attempt before this one reported (retrying jobs; reports live an hour).
    pub last_error: Option<ReportError>,
    /// The payload as JSON text, token shapes masked; `None` when its data is gone.
    pub payload: Option<String>,
}

/// One state's jobs: the first `limit` of them and how many there are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateJobs {
    pub jobs: Vec<QueuedJob>,
    pub total: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueListing {
    pub waiting: StateJobs,
    pub scheduled: StateJobs,
    pub retrying: StateJobs,
    pub running: StateJobs,
    pub dead: StateJobs,
    /// `{q}:scheduled` held more than `SCAN` jobs: scheduled and retrying count the first `SCAN`.
    pub scheduled_truncated: bool,
}

pub async fn browse(redis: &mut ConnectionManager, config: &Config, limit: usize) -> redis::RedisResult<QueueListing> {
    let q = RedisKeys::of(config);
    let workers: Vec<String> = redis.zrange(q.workers(), 0, -1).await?;
    let last = isize::try_from(limit.max(1)).unwrap_or(isize::MAX) - 1;
    let scan_last = isize::try_from(SCAN).unwrap_or(isize::MAX) - 1;
    let mut pipe = redis::pipe();
    pipe.lrange(q.active(), 0, last)
        .llen(q.active())
        .zrange_withscores(q.scheduled(), 0, scan_last)
        .zcard(q.scheduled())
        .zcount(q.scheduled(), "-inf", Utc::now().timestamp())
        .smembers(q.dead())
        .scard(q.dead());
    for w in &workers {
        pipe.smembers(q.inflight(w));
    }
    let values: Vec<redis::Value> = pipe.query_async(redis).await?;
    let mut it = values.into_iter();
    let mut next = || it.next().unwrap_or(redis::Value::Nil);
    let parsed: Parsed = (
        redis::from_redis_value(next())?,
        redis::from_redis_value(next())?,
        redis::from_redis_value(next())?,
        redis::from_redis_value(next())?,
        redis::from_redis_value(next())?,
        redis::from_redis_value(next())?,
        redis::from_redis_value(next())?,
    );
    let mut running = Vec::new();
    for w in &workers {
        let ids: Vec<String> = redis::from_redis_value(next())?;
        running.extend(ids.into_iter().map(|id| (id, w.clone())));
    }
    running.sort();
    finish(redis, config, limit, parsed, running).await
}

/// What the first pipeline read: waiting ids and count, the scanned scheduled ids with their due
/// times, the set's size and how many of it are due, apalis's dead ids and count.
type Parsed = (Vec<String>, u64, Vec<(String, f64)>, u64, u64, Vec<String>, u64);

async fn finish(
    redis: &mut ConnectionManager,
    config: &Config,
    limit: usize,
    (waiting_ids, active_total, scheduled, scheduled_total, due_total, mut dead_ids, dead_total): Parsed,
    running: Vec<(String, String)>,
) -> redis::RedisResult<QueueListing> {
    let q = RedisKeys::of(config);
    dead_ids.sort();
    dead_ids.truncate(limit);
    let running_total = running.len() as u64;

    // Every scanned scheduled payload is read: the split needs their attempt numbers.
    let mut ids: Vec<&str> = waiting_ids.iter().map(String::as_str).collect();
    ids.extend(scheduled.iter().map(|(id, _)| id.as_str()));
    ids.extend(running.iter().take(limit).map(|(id, _)| id.as_str()));
    ids.extend(dead_ids.iter().map(String::as_str));
    let data: Vec<Option<Vec<u8>>> = if ids.is_empty() {
        Vec::new()
    } else {
        redis::cmd("HMGET").arg(q.data()).arg(&ids).query_async(redis).await?
    };
    let mut data = data.into_iter();
    let mut take = |task_id: &str, state: JobState| job(task_id, state, data.next().flatten().as_deref());

    let mut waiting = StateJobs {
        jobs: waiting_ids.iter().map(|id| take(id, JobState::Waiting)).collect(),
        total: active_total + due_total,
    };
    let mut first = StateJobs::default();
    let mut retrying = StateJobs::default();
    let now = Utc::now().timestamp();
    let mut due_scanned = 0u64;
    for (id, score) in &scheduled {
        let mut j = take(id, JobState::Scheduled);
        j.due_at = Utc.timestamp_opt(*score as i64, 0).single();
        if *score as i64 <= now {
            due_scanned += 1;
            j.state = JobState::Waiting;
            if waiting.jobs.len() < limit {
                waiting.jobs.push(j);
            }
            continue;
        }
        let list = if j.attempt.is_some_and(|a| a > 1) {
            j.state = JobState::Retrying;
            &mut retrying
        } else {
            &mut first
        };
        list.total += 1;
        if list.jobs.len() < limit {
            list.jobs.push(j);
        }
    }
    let scheduled_truncated = scheduled_total > scheduled.len() as u64;
    // Exact when the whole set was read; otherwise the unread rest (due later than all it read)
    // counts as first runs. A job that came due between the two reads is not counted twice.
    let later = scheduled_total.saturating_sub(due_total.max(due_scanned));
    first.total = later.saturating_sub(retrying.total);
    let running_jobs = running
        .iter()
        .take(limit)
        .map(|(id, worker)| QueuedJob { worker: Some(worker.clone()), ..take(id, JobState::Running) })
        .collect();
    let dead = dead_ids.iter().map(|id| take(id, JobState::Dead)).collect();

    let ids: Vec<Uuid> = retrying.jobs.iter().filter_map(|j| j.job_id).collect();
    let mut reports = latest_reports(redis, config, &ids).await?.into_iter();
    for j in retrying.jobs.iter_mut().filter(|j| j.job_id.is_some()) {
        j.last_error = reports.next().flatten().and_then(|r| r.error);
    }
    Ok(QueueListing {
        waiting,
        scheduled: first,
        retrying,
        running: StateJobs { jobs: running_jobs, total: running_total },
        dead: StateJobs { jobs: dead, total: dead_total },
        scheduled_truncated,
    })
}

/// Reads what the page shows of a payload without trusting its shape.
fn job(task_id: &str, state: JobState, data: Option<&[u8]>) -> QueuedJob {
    let value: Option<Value> = data.and_then(|d| serde_json::from_slice(d).ok());
    let field = |name: &str| value.as_ref().and_then(|v| v.get(name));
    let channels = match (field("channel_ids"), field("channel_id")) {
        (Some(Value::Array(ids)), _) => ids.iter().filter_map(Value::as_i64).collect(),
        (_, Some(id)) => id.as_i64().into_iter().collect(),
        _ => Vec::new(),
    };
    QueuedJob {
        task_id: task_id.to_owned(),
        state,
        kind: field("type").and_then(Value::as_str).map(str::to_owned),
        job_id: field("job_id").and_then(Value::as_str).and_then(|s| Uuid::parse_str(s).ok()),
        channels,
        reason: field("reason").and_then(Value::as_str).map(str::to_owned),
        attempt: field("attempt").and_then(Value::as_u64),
        due_at: None,
        worker: None,
        last_error: None,
        payload: data.map(|d| mask_token_shapes(&String::from_utf8_lossy(d))),
    }
}
