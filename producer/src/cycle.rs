//! A refresh cycle: one job per Facebook channel, pushed in chunks and paced by the queue's backlog,
//! because apalis-redis 1.0 workers fail every fetch once ~8,000 jobs are due at once. A channel that
//! already has a job queued or running (its pending marker is set) is skipped, not queued twice.

use std::time::Duration;

use apalis::prelude::TaskSink;
use redis::aio::ConnectionManager;
use shared::{
    config::Config,
    job::{Reason, RefreshJob},
    pending::{self, PendingKeys},
    queue::{self, JobStorage, Timings},
    store,
};
use sqlx::PgPool;
use tracing::info;

const CHUNK: i64 = 500;

/// What a cycle did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CycleCount {
    pub enqueued: u64,
    /// Channels whose refresh was already queued or running.
    pub skipped: u64,
}

pub async fn run_job(config: &Config) -> anyhow::Result<()> {
    let db = store::connect_and_migrate(&config.database_url, 4).await?;
    let redis = queue::connect(config).await?;
    let mut storage = queue::job_storage(redis.clone(), config, &Timings::default());
    let count = enqueue_cycle(&db, redis, &mut storage, config, Reason::Cron).await?;
    println!("enqueued {} channels", count.enqueued);
    if count.skipped > 0 {
        println!("skipped {} channels already queued or running", count.skipped);
    }
    Ok(())
}

/// Enqueues every Facebook channel not already pending; waits while the backlog is at its bound.
pub async fn enqueue_cycle(
    db: &PgPool,
    mut redis: ConnectionManager,
    storage: &mut JobStorage,
    config: &Config,
    reason: Reason,
) -> anyhow::Result<CycleCount> {
    let keys = PendingKeys::new(config.redis_key_prefix.clone());
    let chunk = CHUNK.min(i64::try_from(config.queue_backlog_max).unwrap_or(CHUNK)).max(1);
    let mut after = 0i64;
    let mut count = CycleCount::default();
    loop {
        let ids = store::facebook_channel_ids(db, after, chunk).await?;
        let Some(&last) = ids.last() else { break };
        after = last;
        let jobs: Vec<RefreshJob> = ids.iter().map(|&id| RefreshJob::new(id, reason)).collect();
        let claims: Vec<(i64, uuid::Uuid)> = jobs.iter().map(|j| (j.channel_id(), j.job_id())).collect();
        wait_for_room(&mut redis, config, jobs.len() as u64).await?;
        let won = pending::claim_many(&mut redis, &keys, &claims).await?;
        let fresh: Vec<RefreshJob> = jobs.into_iter().zip(won).filter_map(|(j, w)| w.then_some(j)).collect();
        count.skipped += claims.len() as u64 - fresh.len() as u64;
        count.enqueued += fresh.len() as u64;
        if !fresh.is_empty()
            && let Err(e) = storage.push_bulk(fresh.clone()).await
        {
            {
                for job in &fresh {
                    let _ = pending::release(&mut redis, &keys, job.channel_id(), job.job_id()).await;
                }
                anyhow::bail!("cannot enqueue: {e}");
            }
        }
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
