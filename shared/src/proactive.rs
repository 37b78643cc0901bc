//! Proactive refresh: read the user token's expiry with `debug_token` (once a day per user token),
//! store it, and when it expires within the window exchange it for a fresh long-lived one while it
//! still works, then renew its pages' tokens from one sweep. A dead user token cannot be renewed
//! server-side, so this is the only way to keep a page alive past its user token.

use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::{
    graph::{GraphError, PageLookup, TokenInfo},
    job::Reason,
    pipeline::{InfraError, Pipeline},
    secret::Secret,
    store::{self, TokenWrite, events::clamp_i32},
    subscriptions::Target,
};

/// A user token's expiry is read at most this often.
pub const RECHECK: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq)]
pub enum Proactive {
    /// Checked recently (or the channel is gone).
    Skipped,
    /// Expiry read and stored; check again at `next_check` (when it enters the window).
    Checked {
        expires_at: Option<DateTime<Utc>>,
        data_access_expires_at: Option<DateTime<Utc>>,
        next_check: Option<DateTime<Utc>>,
    },
    /// The user token was exchanged and `pages` page tokens renewed.
    Exchanged { channels: usize, pages: usize },
    /// Graph could not tell or refused: nothing changed (the regular checks go on).
    Failed(GraphError),
}

fn checked_key(keys: &crate::keys::RedisKeys, user_token: &Secret) -> String {
    keys.expiry_checked(&hex::encode(Sha256::digest(user_token.expose().as_bytes())))
}

impl Pipeline {
    /// Runs the proactive check for the channel's user token. `force` skips the once-a-day gate
    /// (a proactive job exists to check now).
    pub async fn proactive_check(
        &self,
        channel_id: i64,
        window: Duration,
        force: bool,
    ) -> Result<Proactive, InfraError> {
        // An undecryptable row has no user token to ask about; its own job reports it.
        let Some(Ok(channel)) = store::load_channel(&self.db, &self.codec, channel_id).await? else {
            return Ok(Proactive::Skipped);
        };
        self.proactive_check_channel(&channel, window, force).await
    }

    /// [`Pipeline::proactive_check`] of a channel already read (a batch has them at hand).
    pub async fn proactive_check_channel(
        &self,
        channel: &store::Channel,
        window: Duration,
        force: bool,
    ) -> Result<Proactive, InfraError> {
        let mut redis = self.redis.clone();
        let key = checked_key(&self.keys, &channel.user_token);
        if force {
            let _: () = redis.set_ex(&key, "1", RECHECK.as_secs()).await?;
        } else {
            let fresh: Option<String> = redis::cmd("SET")
                .arg(&key)
                .arg("1")
                .arg("NX")
                .arg("EX")
                .arg(RECHECK.as_secs())
                .query_async(&mut redis)
                .await?;
            if fresh.is_none() {
                return Ok(Proactive::Skipped);
            }
        }
        let info = match self.graph.debug_token(&channel.user_token).await {
            Ok(info) => info,
            Err(e) => return Ok(Proactive::Failed(e)),
        };
        self.store_expiry(&channel.user_token, &info).await?;
        let now = Utc::now();
        let window = chrono::Duration::from_std(window).unwrap_or(chrono::Duration::days(10));
        match info.expires_at {
            Some(at) if info.is_valid && at - now <= window => self.exchange(&channel.user_token).await,
            at => Ok(Proactive::Checked {
                expires_at: info.expires_at,
                data_access_expires_at: info.data_access_expires_at,
                next_check: at.map(|t| t - window).filter(|t| *t > now),
            }),
        }
    }

    async fn store_expiry(&self, user_token: &Secret, info: &TokenInfo) -> Result<(), InfraError> {
        let channels = store::channels_of_user_token(&self.db, &self.codec, user_token).await?;
        let ids: Vec<i32> = channels.iter().map(|c| clamp_i32(c.id)).collect();
        // Channels whose data access newly falls within the warning window get one event.
        let soon = Utc::now() + chrono::Duration::days(7);
        let newly: Vec<(i32, String, String)> = if info.data_access_expires_at.is_some_and(|t| t <= soon) {
            store::newly_expiring(&self.db, &ids, soon).await?
        } else {
            vec![]
        };
        for (id, page_id, status) in newly {
            let change = crate::webhooks::StatusChange {
                channel_id: i64::from(id),
                page_id,
                from: status,
                to: "data_access_expiring".into(),
                error: None,
                at: Utc::now(),
            };
            if let Err(e) = crate::webhooks::enqueue(&self.db, &self.config, &change).await {
                warn!(channel.id = id, error = %e, "could not queue the webhook event");
            }
        }
        store::save_expiry(&self.db, &ids, info.expires_at, info.data_access_expires_at).await?;
        Ok(())
    }

    /// Exchanges the user token, writes it to every channel that still has the old one, and renews
    /// their page tokens from one sweep.
    async fn exchange(&self, old: &Secret) -> Result<Proactive, InfraError> {
        let new = match self.graph.exchange_user_token(old).await {
            Ok(t) => t,
            Err(e) => {
                warn!(error = %e, "user token exchange failed; the regular checks go on");
                return Ok(Proactive::Failed(e));
            }
        };
        // Each row gets its own envelope (a fresh IV), and only a row nobody wrote since it was
        // read takes the new token: a person who reconnected meanwhile keeps theirs.
        let mut channels = Vec::new();
        for mut channel in store::channels_of_user_token(&self.db, &self.codec, old).await? {
            if let Some(version) = store::write_user_token(&self.db, &self.codec, &channel, &new).await? {
                channel.updated_at = version;
                channel.user_token = new.clone();
                channels.push(channel);
            }
        }
        if let Ok(info) = self.graph.debug_token(&new).await {
            self.store_expiry(&new, &info).await?;
            // Just read: the new token needs no other check today.
            let _: () = self.redis.clone().set_ex(checked_key(&self.keys, &new), "1", RECHECK.as_secs()).await?;
        }
        let pages: Vec<String> = channels.iter().map(|c| c.page_id.clone()).collect();
        let mut found = match self.graph.find_page_tokens(&new, &pages).await {
            Ok(map) => map,
            Err(e) => {
                warn!(error = %e, "page sweep after the user token exchange failed; pages keep their tokens");
                return Ok(Proactive::Exchanged { channels: channels.len(), pages: 0 });
            }
        };
        let mut renewed = 0;
        let mut written = Vec::new();
        for channel in &channels {
            if let Some(PageLookup::Found(token)) = found.remove(&channel.page_id)
                && store::write_page_token(&self.db, &self.codec, channel, &token).await? == TokenWrite::Written
            {
                renewed += 1;
                written.push(Target {
                    channel_id: channel.id,
                    page_id: channel.page_id.clone(),
                    token,
                    job_id: uuid::Uuid::now_v7(),
                    reason: Reason::Proactive,
                    attempts: 0,
                });
                info!(channel.id = channel.id, "Successfully refreshed Facebook token for page {}", channel.page_id);
                store::mark_refreshed(&self.db, channel.id).await?;
            }
        }
        info!(channels = channels.len(), pages = renewed, "user token exchanged before it expired");
        // New page tokens bypassed Rails, which alone subscribes a page: make sure they still deliver.
        self.after_token_writes(&written).await;
        Ok(Proactive::Exchanged { channels: channels.len(), pages: renewed })
    }
}
