//! A refresh cycle: one job per Facebook channel, pushed in chunks and paced by the queue's due
//! backlog, because apalis-redis 1.0 workers fail every fetch once ~8,000 jobs are due at once.

use std::time::Duration;

use apalis::prelude::TaskSink;
use redis::aio::ConnectionManager;
use shared::{
    config::Config,
    job::{Reason, RefreshJob},
    queue::{self, JobStorage, MAX_DUE_BACKLOG, Timings},
    store,
};
use sqlx::PgPool;
use tracing::{debug, info};

const CHUNK: i64 = 500;

pub async fn run_job(config: &Config) -> anyhow::Result<()> {
    let db = store::connect_and_migrate(&config.database_url, 4).await?;
    let redis = queue::connect(config).await?;
    let mut storage = queue::job_storage(redis.clone(), config, &Timings::default());
    let n = enqueue_cycle(&db, redis, &mut storage, config, Reason::Cron).await?;
    println!("enqueued {n} channels");
    Ok(())
}

/// Enqueues every Facebook channel; waits while the due backlog is at the bound. Returns how many
/// were enqueued.
pub async fn enqueue_cycle(
    db: &PgPool,
    mut redis: ConnectionManager,
    storage: &mut JobStorage,
    config: &Config,
    reason: Reason,
) -> anyhow::Result<u64> {
    let mut after = 0i64;
    let mut total = 0u64;
    loop {
        let ids = store::facebook_channel_ids(db, after, CHUNK).await?;
        let Some(&last) = ids.last() else { break };
        after = last;
        wait_for_room(&mut redis, config, ids.len() as u64).await?;
        let jobs: Vec<RefreshJob> = ids.iter().map(|&id| RefreshJob::new(id, reason)).collect();
        total += jobs.len() as u64;
        storage.push_bulk(jobs).await.map_err(|e| anyhow::anyhow!("cannot enqueue: {e}"))?;
        debug!(total, "cycle chunk enqueued");
    }
    info!(total, reason = reason.as_str(), "refresh cycle enqueued");
    Ok(total)
}

async fn wait_for_room(redis: &mut ConnectionManager, config: &Config, want: u64) -> anyhow::Result<()> {
    let mut pause = Duration::from_millis(20);
    while queue::due_backlog(redis, config).await? + want > MAX_DUE_BACKLOG {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
    Ok(())
}
