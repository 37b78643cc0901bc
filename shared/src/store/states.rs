//! The current token state per channel.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use serde::{Deserialize, Serialize};

use super::events::clamp_i32;
use crate::graph::GraphError;

/// A channel's token status, as `fb_token_states.status` and the API name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    Healthy,
    Refreshed,
    ReauthorizationRequired,
    Retrying,
    /// Never checked, or nothing could be decided (out of attempts, undecryptable).
    Unknown,
}

impl TokenStatus {
    /// In the order summaries print them.
    pub const ALL: [Self; 5] =
        [Self::Healthy, Self::Refreshed, Self::ReauthorizationRequired, Self::Retrying, Self::Unknown];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Refreshed => "refreshed",
            Self::ReauthorizationRequired => "reauthorization_required",
            Self::Retrying => "retrying",
            Self::Unknown => "unknown",
        }
    }
}

impl std::str::FromStr for TokenStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| UnknownStatus(s.chars().take(40).collect()))
    }
}

impl std::fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wire name compares equal: the API and the tests read statuses as JSON does.
impl PartialEq<&str> for TokenStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a token status: {0:?}")]
pub struct UnknownStatus(String);

pub(super) fn decode_status(s: Option<String>) -> Result<Option<TokenStatus>, sqlx::Error> {
    s.map(|s| s.parse().map_err(|e: UnknownStatus| sqlx::Error::Decode(Box::new(e)))).transpose()
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenState {
    pub channel_id: i64,
    pub status: TokenStatus,
    pub token_valid: Option<bool>,
    pub consecutive_failures: i32,
    pub last_checked_at: Option<DateTime<Utc>>,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub last_error_kind: Option<String>,
    pub last_error_code: Option<i32>,
    pub last_error_subcode: Option<i32>,
    pub last_error_message: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// What one run settled for a channel's state. `token_valid: None` keeps what was stored.
#[derive(Debug, Clone)]
pub struct StateUpdate<'a> {
    pub status: TokenStatus,
    pub token_valid: Option<bool>,
    pub checked: bool,
    pub refreshed: bool,
    /// The last error from now on; `None` clears it.
    pub error: Option<&'a GraphError>,
    /// Count a confirmed failure in a row, or reset the run on success.
    pub failures: FailureCount,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl<'a> StateUpdate<'a> {
    /// The token works: healthy, valid, checked now, errors and failures cleared.
    pub fn healthy() -> Self {
        Self {
            status: TokenStatus::Healthy,
            token_valid: Some(true),
            checked: true,
            refreshed: false,
            error: None,
            failures: FailureCount::Reset,
            next_attempt_at: None,
        }
    }

    /// Nothing is known about the token now (a job that gave up, tokens that cannot be decrypted):
    /// `unknown`, with the reason, the failure count left as it was.
    pub fn undecided(error: &'a GraphError) -> Self {
        Self {
            status: TokenStatus::Unknown,
            token_valid: None,
            checked: false,
            refreshed: false,
            error: Some(error),
            failures: FailureCount::Keep,
            next_attempt_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCount {
    Keep,
    Reset,
    Increment,
}

pub async fn load_state(db: &PgPool, channel_id: i64) -> Result<Option<TokenState>, sqlx::Error> {
    let row = sqlx::query!(
        "SELECT channel_id, status, token_valid, consecutive_failures, last_checked_at, last_refreshed_at,
                last_error_kind, last_error_code, last_error_subcode, last_error_message, next_attempt_at
         FROM fb_token_states WHERE channel_id = $1",
        clamp_i32(channel_id),
    )
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(TokenState {
            channel_id: i64::from(r.channel_id),
            status: decode_status(Some(r.status))?.unwrap_or(TokenStatus::Unknown),
            token_valid: r.token_valid,
            consecutive_failures: r.consecutive_failures,
            last_checked_at: r.last_checked_at,
            last_refreshed_at: r.last_refreshed_at,
            last_error_kind: r.last_error_kind,
            last_error_code: r.last_error_code,
            last_error_subcode: r.last_error_subcode,
            last_error_message: r.last_error_message,
            next_attempt_at: r.next_attempt_at,
        })
    })
    .transpose()
}

/// Statuses of the channels that back a Facebook inbox; a channel never checked is `unknown`.
pub async fn status_counts(db: &PgPool) -> sqlx::Result<std::collections::BTreeMap<String, i64>> {
    let rows = sqlx::query!(
        r#"SELECT coalesce(s.status, 'unknown') AS "status!", count(*) AS "count!" FROM channel_facebook_pages c
         LEFT JOIN fb_token_states s ON s.channel_id = c.id
         WHERE EXISTS (SELECT 1 FROM inboxes i WHERE i.channel_id = c.id AND i.channel_type = 'Channel::FacebookPage')
         GROUP BY 1"#,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.status, r.count)).collect())
}

/// A check on demand that Graph rejected: recorded on the state (the token is not valid, and why),
/// without a status change or a count, since only a failed refresh confirms a person must act.
pub async fn record_rejection(db: &PgPool, channel_id: i64, error: &GraphError) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE fb_token_states SET token_valid = false, last_checked_at = now(), last_error_kind = $2,
           last_error_code = $3, last_error_subcode = $4, last_error_message = $5, updated_at = now()
         WHERE channel_id = $1",
        clamp_i32(channel_id),
        error.kind.as_str(),
        error.code.map(clamp_i32),
        error.subcode.map(clamp_i32),
        error.message.as_str(),
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the channel's token was refreshed after `failed_at` (or, without it, within `slack`):
/// a report about the old token is then moot. Compared on the database's clock, which stamped
/// `last_refreshed_at`.
pub async fn refreshed_since(
    db: &PgPool,
    channel_id: i64,
    failed_at: Option<DateTime<Utc>>,
    slack: chrono::Duration,
) -> Result<bool, sqlx::Error> {
    let replaced: Option<bool> = sqlx::query_scalar!(
        "SELECT last_refreshed_at > coalesce($2, now() - make_interval(secs => $3))
         FROM fb_token_states WHERE channel_id = $1",
        clamp_i32(channel_id),
        failed_at,
        slack.num_seconds() as f64,
    )
    .fetch_optional(db)
    .await?
    .flatten();
    Ok(replaced == Some(true))
}

/// The database's clock: answers are stamped by it (`updated_at = now()`), so "written since" must
/// be measured by it too. A producer whose clock runs ahead of the database's would otherwise wait
/// for answers that look older than the request, forever.
pub async fn db_now(db: &PgPool) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT now() AS "now!""#).fetch_one(db).await
}

/// States written since `since`, and how many of all are `retrying` with a re-check due within
/// 15 s (an answer that is about to change).
pub async fn answers_since(db: &PgPool, since: DateTime<Utc>) -> Result<(u64, u64), sqlx::Error> {
    let r = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE updated_at >= $1) AS "answered!",
                count(*) FILTER (WHERE status = $2 AND next_attempt_at < now() + interval '15 seconds') AS "soon!"
         FROM fb_token_states"#,
        since,
        TokenStatus::Retrying.as_str(),
    )
    .fetch_one(db)
    .await?;
    Ok((u64::try_from(r.answered).unwrap_or(0), u64::try_from(r.soon).unwrap_or(0)))
}

/// Of these channels, those whose data access expiry is not yet known to fall before `soon`
/// (id, page id, status): the ones a warning event is news to.
pub async fn newly_expiring(
    db: &PgPool,
    ids: &[i32],
    soon: DateTime<Utc>,
) -> Result<Vec<(i32, String, String)>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT c.id AS "id!", c.page_id AS "page_id!", coalesce(s.status, 'unknown') AS "status!"
         FROM channel_facebook_pages c
         LEFT JOIN fb_token_states s ON s.channel_id = c.id
         WHERE c.id = ANY($1) AND (s.data_access_expires_at IS NULL OR s.data_access_expires_at > $2)"#,
        ids,
        soon,
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.page_id, r.status)).collect())
}

/// The user token's expiry, on every channel it serves. `updated_at` says when a job last answered
/// for the channel (`refresh-all` waits on it); an expiry is no such answer, so it is left alone.
pub async fn save_expiry(
    db: &PgPool,
    ids: &[i32],
    expires_at: Option<DateTime<Utc>>,
    data_access_expires_at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO fb_token_states (channel_id, expires_at, data_access_expires_at, updated_at)
         SELECT id, $2, $3, 'epoch' FROM unnest($1::int[]) AS t(id)
         ON CONFLICT (channel_id) DO UPDATE SET expires_at = $2, data_access_expires_at = $3",
        ids,
        expires_at,
        data_access_expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A page token renewed outside a job (the proactive exchange).
pub async fn mark_refreshed(db: &PgPool, channel_id: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "UPDATE fb_token_states SET last_refreshed_at = now(), updated_at = now() WHERE channel_id = $1",
        clamp_i32(channel_id),
    )
    .execute(db)
    .await?;
    Ok(())
}
