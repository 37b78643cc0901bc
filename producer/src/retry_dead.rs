//! `producer retry-dead [--channel ID]`: re-drive dead-lettered jobs (a fresh job per channel,
//! joining one already queued), and mark them re-driven.

use std::str::FromStr;

use shared::{
    config::Config,
    job::{Reason, RefreshJob},
    pending,
    queue::{self, Timings},
    store,
};

pub async fn retry_dead(config: &Config, channel: Option<i64>) -> anyhow::Result<String> {
    let db =
        store::connect_and_migrate(&config.database_url, &config.database_schema, config.database_pool_size(2)).await?;
    let mut redis = queue::connect(config).await?;
    let mut storage = queue::job_storage(redis.clone(), config, &Timings::default());
    let dead = store::open_dead_jobs(&db, channel).await?;
    let mut done = Vec::with_capacity(dead.len());
    let mut channels = std::collections::BTreeSet::new();
    for (id, channel_id, reason) in dead {
        // Several dead jobs of one channel need one new job.
        if channels.insert(channel_id) {
            let reason = Reason::from_str(&reason).unwrap_or(Reason::Manual);
            pending::enqueue_or_join(&mut storage, &mut redis, config, RefreshJob::new(channel_id, reason), false)
                .await?;
        }
        done.push(id);
    }
    store::mark_redriven(&db, &done).await?;
    Ok(format!("re-enqueued {} channels from {} dead jobs", channels.len(), done.len()))
}
