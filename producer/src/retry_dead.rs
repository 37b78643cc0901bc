//! `producer retry-dead [--channel ID]`: re-drive dead-lettered jobs (a fresh job per channel,
//! joining one already queued), and mark them re-driven.

use std::str::FromStr;

use redis::aio::ConnectionManager;
use shared::{
    config::Config,
    job::{Reason, RefreshJob},
    pending,
    queue::{self, JobStorage, Timings},
    store,
};
use sqlx::PgPool;

/// What one run re-drove: the jobs to wait on, and the line the command prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redriven {
    /// One job per channel, new or joined; its reports tell how the re-drive ends.
    pub jobs: Vec<uuid::Uuid>,
    pub dead_jobs: usize,
}

impl std::fmt::Display for Redriven {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "re-enqueued {} channels from {} dead jobs", self.jobs.len(), self.dead_jobs)
    }
}

pub async fn retry_dead(config: &Config, channel: Option<i64>) -> anyhow::Result<Redriven> {
    let db =
        store::connect_and_migrate(&config.database_url, &config.database_schema, config.database_pool_size(2)).await?;
    let mut redis = queue::connect(config).await?;
    let mut storage = queue::job_storage(redis.clone(), config, &Timings::default());
    redrive(&db, &mut storage, &mut redis, config, channel, None).await
}

/// Re-drives the open dead letters of one channel, the rows `ids` names, or (both `None`) all of
/// them: the command's and the queue page's one path.
pub async fn redrive(
    db: &PgPool,
    storage: &mut JobStorage,
    redis: &mut ConnectionManager,
    config: &Config,
    channel: Option<i64>,
    ids: Option<&[i64]>,
) -> anyhow::Result<Redriven> {
    let dead = store::open_dead_jobs(db, channel, ids).await?;
    let mut done = Vec::with_capacity(dead.len());
    let mut channels = std::collections::BTreeSet::new();
    let mut jobs = Vec::new();
    for (id, channel_id, reason) in dead {
        // Several dead jobs of one channel need one new job.
        if channels.insert(channel_id) {
            let reason = Reason::from_str(&reason).unwrap_or(Reason::Manual);
            let claimed =
                pending::enqueue_or_join(storage, redis, config, RefreshJob::new(channel_id, reason), false).await?;
            jobs.push(claimed.job_id());
        }
        done.push(id);
    }
    store::mark_redriven(db, &done).await?;
    Ok(Redriven { jobs, dead_jobs: done.len() })
}
