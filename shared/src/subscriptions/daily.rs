//! The daily check: a page whose token validates can still have lost its subscription, and then
//! Chatwoot gets none of its messages. After a job found a channel healthy, at most once a day per
//! channel (a gate in Redis: a lease that lapses after a day), its subscriptions are read and
//! restored when this app is missing.
//!
//! For a batch's healthy channels the gate is one Redis script (an MGET and an MSET), the channels that
//! pass it are read back with one query, and their subscriptions with one Graph batch request: a
//! cycle pays one Graph round trip per batch of 50 on the first cycle of each channel's day, and a
//! Redis round trip per batch on the others, never a call per channel.

use std::time::Duration;

use tracing::warn;

use super::{Target, Trigger};
use crate::{
    job::RefreshJob,
    pipeline::{InfraError, Pipeline},
    store,
};

/// How long a channel's subscription is left alone after a check.
pub const DAILY: Duration = Duration::from_secs(24 * 3600);

impl Pipeline {
    /// Checks the subscriptions of the channels these jobs just found healthy, those not checked
    /// within a day. `read` holds the channels as the caller read them (a batch), so they are not
    /// read again; channels missing from it are loaded. Never fails the caller: store and Graph
    /// errors are logged and recorded.
    pub async fn daily_subscription_check(&self, jobs: &[RefreshJob], read: &[store::Channel]) {
        if jobs.is_empty() || self.graph.settings().app_id.is_none() {
            // Without FB_APP_ID there is no "this app" to look for; token writes record that.
            return;
        }
        match self.daily_targets(jobs, read).await {
            Ok(targets) if !targets.is_empty() => {
                self.check_and_record(&targets, Trigger::Daily).await;
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, channels = jobs.len(), "daily subscription check failed against the stores"),
        }
    }

    /// The channels whose gate was open (now closed for a day), with their current tokens.
    async fn daily_targets(&self, jobs: &[RefreshJob], read: &[store::Channel]) -> Result<Vec<Target>, InfraError> {
        // A lease per channel that lapses after a day: a batch opens all its gates with one MGET
        // and one MSET (`crate::leases`).
        let gates: Vec<(String, String)> =
            jobs.iter().map(|j| (self.keys.subscription_checked(j.channel_id()), "checked".to_owned())).collect();
        let opened = crate::leases::take(&mut self.redis.clone(), &gates, DAILY).await?;
        let due: Vec<&RefreshJob> = jobs.iter().zip(opened).filter(|(_, o)| *o).map(|(j, _)| j).collect();
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let (mut channels, mut unread) = (Vec::with_capacity(due.len()), Vec::new());
        for job in &due {
            match read.iter().find(|c| c.id == job.channel_id()) {
                Some(c) => channels.push(Ok(c.clone())),
                None => unread.push(job.channel_id()),
            }
        }
        if !unread.is_empty() {
            channels.extend(store::load_channels(&self.db, &self.codec, &unread).await?);
        }
        Ok(Target::of_jobs(channels, due.iter().copied()))
    }
}

/// Closes the gate of channels just checked by another path (a token write).
pub(super) async fn mark_checked(pipeline: &Pipeline, targets: &[Target]) -> Result<(), redis::RedisError> {
    let mut pipe = redis::pipe();
    for t in targets {
        pipe.cmd("SET")
            .arg(pipeline.keys.subscription_checked(t.channel_id))
            .arg("1")
            .arg("EX")
            .arg(DAILY.as_secs())
            .ignore();
    }
    pipe.query_async::<()>(&mut pipeline.redis.clone()).await
}
