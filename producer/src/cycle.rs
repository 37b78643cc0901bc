//! A refresh cycle: one job per Facebook channel, pushed in chunks and paced by the queue's backlog,
//! because apalis-redis 1.0 workers fail every fetch once ~8,000 jobs are due at once. A channel that
//! already has a job queued or running (its pending marker is set) is skipped, not queued twice.

use std::time::Duration;

use apalis::prelude::TaskSink;
use redis::{AsyncCommands, aio::ConnectionManager};
use shared::{
    config::Config,
    graph::MAX_BATCH,
    job::{BatchJob, Reason},
    keys::RedisKeys,
    pending::{self, batch_marker},
    queue::{self, Timings},
    store::{self, cycles::Origin},
};
use sqlx::PgPool;
use tracing::{info, warn};

const CHUNK: i64 = 500;

/// What a cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleCount {
    pub enqueued: u64,
    /// Channels whose refresh was already queued or running.
    pub skipped: u64,
}

pub async fn run_job(config: &Config) -> anyhow::Result<()> {
    let db = store::connect_and_migrate(&config.database_url, &config.database_schema, 4).await?;
    let redis = queue::connect(config).await?;
    let row = cycle_started(&db, Origin::Command, None).await;
    let count = enqueue_cycle(&db, redis, config, Reason::Cron).await;
    cycle_finished(&db, row, &count).await;
    let count = count?;
    println!("enqueued {} channels", count.enqueued);
    if count.skipped > 0 {
        println!("skipped {} channels already queued or running", count.skipped);
    }
    Ok(())
}

/// Records that a cycle starts (`fb_cycles`, for the queue page). Best effort: a cycle is not
/// skipped because its row could not be written; the id is `None` then.
pub async fn cycle_started(db: &PgPool, origin: Origin, by: Option<&str>) -> Option<i64> {
    store::cycles::start_cycle(db, origin, by)
        .await
        .inspect_err(|e| warn!(error = %e, "cannot record the refresh cycle's start (Postgres)"))
        .ok()
}

/// Records what a cycle `cycle_started` recorded enqueued, or why it stopped.
pub async fn cycle_finished(db: &PgPool, row: Option<i64>, result: &anyhow::Result<CycleCount>) {
    let Some(id) = row else { return };
    let (count, error) = match result {
        Ok(c) => (*c, None),
        Err(e) => (CycleCount::default(), Some(format!("{e:#}"))),
    };
    if let Err(e) = store::cycles::finish_cycle(db, id, count.enqueued, count.skipped, error.as_deref()).await {
        warn!(error = %e, "cannot record the refresh cycle's end (Postgres)");
    }
}

/// Enqueues every Facebook channel not already pending, 50 to a batch job (one Graph batch call
/// validates them); waits while the backlog is at its bound.
pub async fn enqueue_cycle(
    db: &PgPool,
    redis: ConnectionManager,
    config: &Config,
    reason: Reason,
) -> anyhow::Result<CycleCount> {
    run_cycle(db, redis, config, reason, None).await
}

/// `enqueue_cycle` that records its progress under `progress_key` (the last channel id enqueued,
/// then `done`) and starts from there: a cycle that a store error stopped carries on where it
/// stopped when run again with the same key, and enqueues no channel twice. A finished cycle does
/// nothing when run again.
pub async fn resume_cycle(
    db: &PgPool,
    redis: ConnectionManager,
    config: &Config,
    reason: Reason,
    progress_key: &str,
) -> anyhow::Result<CycleCount> {
    run_cycle(db, redis, config, reason, Some(progress_key)).await
}

/// The progress keys live as long as the tick keys they belong to.
const PROGRESS_TTL_SECS: u64 = 24 * 3600;
/// A progress key's value once its cycle has enqueued every channel.
pub const PROGRESS_DONE: &str = "done";

async fn run_cycle(
    db: &PgPool,
    mut redis: ConnectionManager,
    config: &Config,
    reason: Reason,
    progress_key: Option<&str>,
) -> anyhow::Result<CycleCount> {
    let keys = RedisKeys::of(config);
    let mut batches = queue::batch_storage(redis.clone(), config, &Timings::default());
    let mut after = 0i64;
    if let Some(key) = progress_key {
        // Set at once, so that a producer stopped before its first chunk is seen as unfinished.
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(0)
            .arg("NX")
            .arg("EX")
            .arg(PROGRESS_TTL_SECS)
            .query_async(&mut redis)
            .await?;
        let seen: Option<String> = redis.get(key).await?;
        match seen.as_deref() {
            Some(PROGRESS_DONE) => return Ok(CycleCount::default()),
            Some(last) => after = last.parse().unwrap_or(0),
            None => {}
        }
    }
    let mut count = CycleCount::default();
    loop {
        let ids = store::facebook_channel_ids(db, after, CHUNK).await?;
        let Some(&last) = ids.last() else { break };
        let groups: Vec<(BatchJob, Vec<i64>)> =
            ids.chunks(MAX_BATCH).map(|g| (BatchJob::new(g.to_vec(), reason), g.to_vec())).collect();
        let claims: Vec<(i64, String)> =
            groups.iter().flat_map(|(b, g)| g.iter().map(|&c| (c, batch_marker(b.v1().job_id)))).collect();
        wait_for_room(&mut redis, config, groups.len() as u64).await?;
        let won = pending::claim_many(&mut redis, &keys, &claims).await?;
        let won: std::collections::HashSet<i64> =
            claims.iter().zip(won).filter_map(|((c, _), w)| w.then_some(*c)).collect();
        let mut jobs = Vec::with_capacity(groups.len());
        let mut chunk = CycleCount::default();
        for (batch, group) in groups {
            let mine: Vec<i64> = group.into_iter().filter(|c| won.contains(c)).collect();
            chunk.skipped += (batch.v1().channel_ids.len() - mine.len()) as u64;
            if mine.is_empty() {
                continue;
            }
            chunk.enqueued += mine.len() as u64;
            let BatchJob::V1(mut v) = batch;
            v.channel_ids = mine;
            jobs.push(BatchJob::V1(v));
        }
        if !jobs.is_empty()
            && let Err(e) = batches.push_bulk(jobs.clone()).await
        {
            for job in &jobs {
                let marker = batch_marker(job.v1().job_id);
                for &c in &job.v1().channel_ids {
                    let _ = pending::release(&mut redis, &keys, c, &marker).await;
                }
            }
            anyhow::bail!("cannot enqueue: {e}");
        }
        count.enqueued += chunk.enqueued;
        count.skipped += chunk.skipped;
        after = last;
        if let Some(key) = progress_key {
            // Should this fail, a resumed cycle meets this chunk again and skips the channels
            // whose batches have not run yet (their markers are set).
            let _: () = redis.set_ex(key, last, PROGRESS_TTL_SECS).await?;
        }
    }
    if let Some(key) = progress_key {
        let _: () = redis.set_ex(key, PROGRESS_DONE, PROGRESS_TTL_SECS).await?;
    }
    info!(enqueued = count.enqueued, skipped = count.skipped, reason = reason.as_str(), "refresh cycle enqueued");
    Ok(count)
}

async fn wait_for_room(redis: &mut ConnectionManager, config: &Config, want: u64) -> anyhow::Result<()> {
    let mut pause = Duration::from_millis(20);
    while queue::backlog(redis, config).await? + want > config.queue_backlog_max {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
    Ok(())
}
