//! The status of a Facebook inbox as the API and the dashboard show it: the stored token state from
//! Postgres and the flags from Redis (the flags are what the inbox itself acts on, so they win).

use chrono::Utc;
use redis::aio::ConnectionManager;
use sqlx::PgPool;

pub use crate::store::status::{InboxStatus, LastError, Subscription};
use crate::{
    keys::RedisKeys,
    store::{self, TokenStatus},
};

impl InboxStatus {
    /// `data_access_expiring` when Facebook stops giving data within 7 days.
    pub fn warning(&self) -> Option<&'static str> {
        let soon = Utc::now() + chrono::Duration::days(7);
        self.data_access_expires_at.filter(|t| *t <= soon).map(|_| "data_access_expiring")
    }

    /// Needs a person, or keeps failing: the dashboard's warning icon.
    pub fn needs_attention(&self) -> bool {
        self.reauthorization_required || self.consecutive_failures > 0 || self.status == TokenStatus::Retrying
    }
}

/// One Facebook inbox, within `accounts` when given (None: any account, for admins).
pub async fn inbox_status(
    db: &PgPool,
    redis: &mut ConnectionManager,
    flags: &RedisKeys,
    accounts: Option<&[i64]>,
    inbox_id: i64,
) -> Result<Option<InboxStatus>, StatusError> {
    let Some(status) = store::status::load_inbox_status(db, accounts, inbox_id).await? else {
        return Ok(None);
    };
    let mut all = with_flags(vec![status], redis, flags).await?;
    Ok(all.pop())
}

/// One page of the dashboard's inboxes (`store::status::load_inbox_page`), with their flags.
///
/// Which status filters, counts and groups see: `fb_token_states.status`, in SQL, and not the
/// Redis flags, which only this page of rows reads. Why that is what an operator expects:
/// - every job writes the status, and sets our `reauthorization_required` flag only in the same
///   settlement that writes `reauthorization_required`, so the two agree for everything we flag;
/// - a flag only in Redis is Chatwoot's own (its failure counter reached its threshold). The
///   watcher turns each of Chatwoot's increments into a job, which within seconds either
///   refreshes the token (and clears the flag) or confirms it and writes the status, so such a
///   row is counted, filtered and grouped once that job settles (with `COUNTER_WATCH=off`, at the
///   next cycle);
/// - until then the row still shows what Chatwoot's inbox acts on: a flag set in Redis makes the
///   row `reauthorization_required`, with its banner, whatever filter it was found under. A row
///   can therefore be red on the "Healthy" filter for those seconds, which is the truth; counting
///   it elsewhere would need every channel's flag read on each page view (100,000 Redis reads).
pub async fn inbox_page(
    db: &PgPool,
    redis: &mut ConnectionManager,
    flags: &RedisKeys,
    scope: store::dashboard::Scope<'_>,
    filter: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<InboxStatus>, StatusError> {
    let statuses = store::status::load_inbox_page(db, scope, filter, limit, offset).await?;
    with_flags(statuses, redis, flags).await
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Reads both flags of every channel in one round trip per 500 inboxes.
async fn with_flags(
    mut statuses: Vec<InboxStatus>,
    redis: &mut ConnectionManager,
    flags: &RedisKeys,
) -> Result<Vec<InboxStatus>, StatusError> {
    for chunk in statuses.chunks_mut(500) {
        let mut pipe = redis::pipe();
        for s in chunk.iter() {
            pipe.get(flags.reauthorization_required(s.channel_id)).get(flags.authorization_error_count(s.channel_id));
        }
        let values: Vec<Option<String>> = pipe.query_async(redis).await?;
        for (s, pair) in chunk.iter_mut().zip(values.chunks(2)) {
            s.reauthorization_required = pair.first().cloned().flatten().as_deref() == Some("true");
            s.authorization_error_count = pair.get(1).cloned().flatten().and_then(|c| c.parse().ok()).unwrap_or(0);
            if s.reauthorization_required {
                s.status = TokenStatus::ReauthorizationRequired;
            }
        }
    }
    Ok(statuses)
}
