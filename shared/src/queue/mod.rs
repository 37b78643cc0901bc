//! The Redis queue (apalis-redis 1.0); `report` holds the reports a waiting caller reads.
//!
//! Design notes, each answering a hazard of apalis-redis 1.0.0:
//! - The queue is named explicitly (`{prefix}fb_token_refresh`); `RedisStorage::new` would name it
//!   after the Rust type path.
//! - Producers push `RefreshJob`; workers consume raw JSON (`serde_json::Value`) and decode it
//!   themselves, so a poison payload is recorded and dropped instead of failing in the codec.
//! - apalis ignores `max_attempts` and `RetryAfter` and retries failures at +1 s, +2 s ...: we never
//!   return a job error for a Graph failure; we push the next attempt with `run_after` and ack.
//! - Completed jobs stay in Redis forever: `sweep_done` removes exactly those (never `vacuum`, which
//!   also deletes failed jobs awaiting retry).
//! - A fetch moves every due job of `{q}:scheduled` through one Lua `unpack`, which fails at about
//!   8,000: producers keep the backlog (`backlog`) at or below `QUEUE_BACKLOG_MAX` (5,000), waiting
//!   or deferring above it. Retries scheduled further out than `BACKLOG_HORIZON` are not counted;
//!   they come due spread by jitter.

use std::time::Duration;

use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::RedisStorage;
use chrono::Utc;
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::Serialize;
use uuid::Uuid;

use crate::{config::Config, job::RefreshJob, keys::RedisKeys};

pub mod browse;
mod report;
pub use report::{
    JobFault, JobReport, ReportError, ReportErrorKind, Waited, latest_report, latest_reports, publish_report,
    wait_for_report,
};

/// Scheduled jobs due within this horizon count toward the backlog bound: by the time a producer
/// pushes more, they will be due too.
pub const BACKLOG_HORIZON: Duration = Duration::from_secs(300);
pub type JobStorage = RedisStorage<RefreshJob>;
pub type RawStorage = RedisStorage<serde_json::Value>;
pub type BatchStorage = RedisStorage<crate::job::BatchJob>;

/// Heartbeat and polling timings. apalis's defaults find new jobs only at the 30 s heartbeat and
/// recover a dead worker's jobs after 5 minutes; ours recover within 15 s.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub poll_interval: Duration,
    pub heartbeat: Duration,
    pub missed_heartbeats: usize,
    /// Jobs one fetch takes. They wait in the worker's memory for a free slot, where a job pushed
    /// to the head of the queue cannot pass them: a small fetch keeps a refresh someone waits for
    /// from queueing behind a cycle's batches already taken.
    pub batch_size: usize,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(100),
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 3,
            batch_size: 4,
        }
    }
}

pub fn apalis_config(config: &Config, timings: &Timings) -> apalis_redis::Config {
    apalis_redis::Config::default()
        .queue(crate::keys::RedisKeys::of(config).queue())
        .heartbeat_interval(timings.heartbeat)
        .missed_heartbeats(timings.missed_heartbeats)
        .batch_size(timings.batch_size.max(1))
}

pub async fn connect(config: &Config) -> Result<ConnectionManager, redis::RedisError> {
    client(config)?.get_connection_manager().await
}

/// The Redis client for `REDIS_URL`, TLS included (`rediss://`, `REDIS_TLS_CA_FILE`).
pub fn client(config: &Config) -> Result<redis::Client, redis::RedisError> {
    crate::tls::redis_client(&config.redis_url, config.redis_tls_ca_file.as_deref())
}

pub fn job_storage(conn: ConnectionManager, config: &Config, timings: &Timings) -> JobStorage {
    RedisStorage::new(conn).with_config(apalis_config(config, timings))
}

pub fn batch_storage(conn: ConnectionManager, config: &Config, timings: &Timings) -> BatchStorage {
    RedisStorage::new(conn).with_config(apalis_config(config, timings))
}

/// Pushes a batch job, now or after `delay`.
pub async fn enqueue_batch(
    storage: &mut BatchStorage,
    job: crate::job::BatchJob,
    delay: Option<Duration>,
) -> Result<(), EnqueueError> {
    let mut task = TaskBuilder::new(job);
    if let Some(d) = delay {
        task = task.run_after(d);
    }
    storage.push_task(task.build()).await.map_err(|e| EnqueueError(e.to_string()))
}

pub fn raw_storage(conn: ConnectionManager, config: &Config, timings: &Timings) -> RawStorage {
    RedisStorage::new(conn).with_config(apalis_config(config, timings))
}

#[derive(Debug, thiserror::Error)]
#[error("cannot enqueue refresh job: {0}")]
pub struct EnqueueError(String);

impl EnqueueError {
    pub fn redis(e: redis::RedisError) -> Self {
        Self(e.to_string())
    }
}

/// Pushes a job, to run now or after `delay` (apalis has a 1 s resolution).
pub async fn enqueue(storage: &mut JobStorage, job: RefreshJob, delay: Option<Duration>) -> Result<(), EnqueueError> {
    let mut task = TaskBuilder::new(job);
    if let Some(d) = delay {
        task = task.run_after(d);
    }
    storage.push_task(task.build()).await.map_err(|e| EnqueueError(e.to_string()))
}

/// The apalis task id a job pushed to the front gets: derived from the job's id, so pushing the
/// same job again is a no-op (apalis stores task data with HSETNX) and whether it was pushed can
/// be checked (`pushed_front`).
pub fn front_task_id(job_id: Uuid) -> String {
    ulid::Ulid::from_bytes(job_id.into_bytes()).to_string()
}

/// Whether a job pushed with `enqueue_front` is in the queue (waiting, running, or done and not
/// yet swept).
pub async fn pushed_front(redis: &mut ConnectionManager, config: &Config, job_id: Uuid) -> redis::RedisResult<bool> {
    redis.hexists(RedisKeys::of(config).data(), front_task_id(job_id)).await
}

/// Pushes a job ahead of everything waiting (a person is waiting on it): apalis-redis has no
/// priorities, so the task is moved from `{q}:scheduled` to the head of `{q}:active`, which the
/// next fetch takes first.
pub async fn enqueue_front(
    storage: &mut JobStorage,
    redis: &mut ConnectionManager,
    config: &Config,
    job: RefreshJob,
) -> Result<(), EnqueueError> {
    enqueue_front_many(storage, redis, config, vec![job]).await
}

// A fetch between the push and this script moves a due task to the tail of the active list, behind
// the whole backlog (seconds during a cycle): such a task is taken out of the list and put first
// too. LREM scans the list, which the backlog bound keeps to a few thousand entries, and only for
// a task a fetch got to first. A task already fetched is in neither and stays where it is.
const MANY_TO_FRONT: &str = r#"
local moved = 0
for i = #ARGV, 1, -1 do
  if redis.call('ZREM', KEYS[1], ARGV[i]) == 1 or redis.call('LREM', KEYS[2], 1, ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i])
    moved = moved + 1
  end
end
if moved > 0 then redis.call('PUBLISH', KEYS[3], moved) end
return 0
"#;

/// The channel a worker listens on to fetch at once when a job was put at the head of the queue
/// (a person or a failed send is waiting on it), instead of at its next poll.
pub fn wake_channel(config: &Config) -> String {
    RedisKeys::of(config).wake()
}

/// `enqueue_front` for many jobs in two round trips; the first of `jobs` ends up first in the
/// queue. Jobs already pushed (the same ids) are not pushed again.
pub async fn enqueue_front_many(
    storage: &mut JobStorage,
    redis: &mut ConnectionManager,
    config: &Config,
    jobs: Vec<RefreshJob>,
) -> Result<(), EnqueueError> {
    if jobs.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = jobs.iter().map(|j| front_task_id(j.job_id())).collect();
    let tasks: Vec<_> = jobs
        .into_iter()
        .zip(&ids)
        .map(|(job, id)| TaskBuilder::new(job).task_id(apalis::prelude::TaskId::from(id.clone())).build())
        .collect();
    storage.push_all(futures::stream::iter(tasks)).await.map_err(|e| EnqueueError(e.to_string()))?;
    let q = RedisKeys::of(config);
    let _: i64 = redis::Script::new(MANY_TO_FRONT)
        .key(q.scheduled())
        .key(q.active())
        .key(wake_channel(config))
        .arg(&ids)
        .invoke_async(redis)
        .await
        .map_err(EnqueueError::redis)?;
    Ok(())
}

/// Jobs waiting to be fetched or due within `BACKLOG_HORIZON`: what the ~8,000 limit applies to.
pub async fn backlog(redis: &mut ConnectionManager, config: &Config) -> redis::RedisResult<u64> {
    let q = RedisKeys::of(config);
    let now = Utc::now().timestamp() + BACKLOG_HORIZON.as_secs() as i64;
    let (due, active): (u64, u64) =
        redis::pipe().zcount(q.scheduled(), 0, now).llen(q.active()).query_async(redis).await?;
    Ok(due + active)
}

const DEFUSE: &str = r#"
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ids))
  redis.call('ZREM', KEYS[1], unpack(ids))
end
return #ids
"#;

/// Moves due jobs from `{q}:scheduled` to `{q}:active` in chunks small enough for Lua's `unpack`.
/// apalis-redis 1.0's fetch moves them all at once and fails for good at ~8,000, which would keep
/// every worker in a restart loop; workers run this before each (re)start so a backlog that got
/// past the producers' bound (an old producer, a burst of retries) cannot wedge the queue. Returns
/// how many moved.
pub async fn defuse_due(redis: &mut ConnectionManager, config: &Config) -> redis::RedisResult<u64> {
    let q = RedisKeys::of(config);
    let now = Utc::now().timestamp();
    let script = redis::Script::new(DEFUSE);
    let mut moved = 0u64;
    loop {
        let n: u64 = script.key(q.scheduled()).key(q.active()).arg(now).arg(1_000).invoke_async(redis).await?;
        moved += n;
        if n < 1_000 {
            return Ok(moved);
        }
    }
}

/// Deletes up to `max` completed jobs (their id, data and metadata); returns how many.
pub async fn sweep_done(redis: &mut ConnectionManager, config: &Config, max: usize) -> redis::RedisResult<usize> {
    let q = RedisKeys::of(config);
    let ids: Vec<String> = redis::cmd("SPOP").arg(q.done()).arg(max).query_async(redis).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let mut pipe = redis::pipe();
    pipe.hdel(q.data(), &ids).ignore();
    for id in &ids {
        pipe.del(q.meta(id)).ignore();
    }
    let _: () = pipe.query_async(redis).await?;
    Ok(ids.len())
}

/// Queue depth for the API and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepth {
    /// Waiting to be fetched now.
    pub pending: u64,
    /// Scheduled for later (retries, re-checks, rate-limit waits).
    pub scheduled: u64,
    /// Fetched by a worker and not yet finished.
    pub running: u64,
    /// Finished and not yet swept.
    pub done: u64,
    /// Given up by apalis itself (store outages past their attempts).
    pub dead: u64,
    /// Send-failure refreshes waiting for room in the queue.
    pub deferred: u64,
}

pub async fn depth(redis: &mut ConnectionManager, config: &Config) -> redis::RedisResult<QueueDepth> {
    let q = RedisKeys::of(config);
    let workers: Vec<String> = redis.zrange(q.workers(), 0, -1).await?;
    let mut pipe = redis::pipe();
    pipe.llen(q.active()).zcard(q.scheduled()).scard(q.done()).scard(q.dead()).llen(q.deferred());
    for w in &workers {
        pipe.scard(q.inflight(w));
    }
    let counts: Vec<u64> = pipe.query_async(redis).await?;
    let get = |i: usize| counts.get(i).copied().unwrap_or(0);
    Ok(QueueDepth {
        pending: get(0),
        scheduled: get(1),
        done: get(2),
        dead: get(3),
        deferred: get(4),
        running: counts.iter().skip(5).sum(),
    })
}
