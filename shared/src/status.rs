//! The status of a Facebook inbox as the API and the dashboard show it: the stored token state from
//! Postgres and the flags from Redis (the flags are what the inbox itself acts on, so they win).

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{PgPool, Row, postgres::PgRow};

use crate::{keys::RedisKeys, store::TokenStatus};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastError {
    pub kind: Option<String>,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub message: String,
}

/// Whether the page's webhooks still reach this app (`shared::subscriptions`), as last checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    /// `subscribed`, `resubscribed`, `missing`, `failed` or `unknown` (never checked, or FB_APP_ID
    /// not known).
    pub state: String,
    pub checked_at: Option<DateTime<Utc>>,
    pub resubscribed_at: Option<DateTime<Utc>>,
    /// The next retry of a failed check or re-subscription, when one is due.
    pub next_retry_at: Option<DateTime<Utc>>,
    pub last_error: Option<LastError>,
}

impl Default for Subscription {
    fn default() -> Self {
        Self { state: "unknown".into(), checked_at: None, resubscribed_at: None, next_retry_at: None, last_error: None }
    }
}

impl Subscription {
    pub fn body(&self) -> Value {
        json!({
            "state": self.state,
            "checked_at": self.checked_at.map(|t| t.to_rfc3339()),
            "resubscribed_at": self.resubscribed_at.map(|t| t.to_rfc3339()),
            "next_retry_at": self.next_retry_at.map(|t| t.to_rfc3339()),
            "last_error": self.last_error.as_ref().map(|e| json!({"code": e.code, "subcode": e.subcode, "message": e.message})),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxStatus {
    pub inbox_id: i64,
    pub account_id: i64,
    pub inbox_name: String,
    pub channel_id: i64,
    pub page_id: String,
    pub token_valid: Option<bool>,
    /// `healthy`, `refreshed`, `reauthorization_required`, `retrying` or `unknown`.
    pub status: TokenStatus,
    pub reauthorization_required: bool,
    pub authorization_error_count: i64,
    pub consecutive_failures: i64,
    pub last_checked: Option<DateTime<Utc>>,
    pub last_refreshed: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<LastError>,
    /// When the user token expires (`None`: never, or not read yet).
    pub expires_at: Option<DateTime<Utc>>,
    /// When Facebook stops giving data for the user (90 days after they last used the app).
    pub data_access_expires_at: Option<DateTime<Utc>>,
    /// The page's webhook subscription to this app.
    pub subscription: Subscription,
}

impl InboxStatus {
    /// The contract's status body.
    pub fn body(&self) -> Value {
        json!({
            "inbox_id": self.inbox_id,
            "channel_id": self.channel_id,
            "page_id": self.page_id,
            "token_valid": self.token_valid,
            "status": self.status,
            "reauthorization_required": self.reauthorization_required,
            "authorization_error_count": self.authorization_error_count,
            "last_checked": self.last_checked.map(|t| t.to_rfc3339()),
            "last_refreshed": self.last_refreshed.map(|t| t.to_rfc3339()),
            "last_error": self.last_error.as_ref().map(|e| json!({"code": e.code, "subcode": e.subcode, "message": e.message})),
            // Additions to the contract's body: still working, but a person should reconnect soon.
            "warning": self.warning(),
            "data_access_expires_at": self.data_access_expires_at.map(|t| t.to_rfc3339()),
            // Addition: whether the page's webhooks still reach this app.
            "subscription": self.subscription.body(),
        })
    }

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

const SELECT: &str = "SELECT i.id::int8 AS inbox_id, i.account_id::int8 AS account_id, i.name AS inbox_name,
        c.id::int8 AS channel_id, c.page_id, s.status, s.token_valid, s.consecutive_failures::int8 AS consecutive_failures,
        s.last_checked_at, s.last_refreshed_at, s.next_attempt_at, s.last_error_kind,
        s.last_error_code::int8 AS last_error_code, s.last_error_subcode::int8 AS last_error_subcode, s.last_error_message, s.expires_at, s.data_access_expires_at,
        p.state AS sub_state, p.checked_at AS sub_checked_at, p.resubscribed_at AS sub_resubscribed_at,
        p.retry_at AS sub_retry_at, p.last_error_kind AS sub_error_kind, p.last_error_code::int8 AS sub_error_code,
        p.last_error_subcode::int8 AS sub_error_subcode, p.last_error_message AS sub_error_message
     FROM inboxes i
     JOIN channel_facebook_pages c ON c.id = i.channel_id
     LEFT JOIN fb_token_states s ON s.channel_id = c.id
     LEFT JOIN fb_page_subscriptions p ON p.channel_id = c.id
     WHERE i.channel_type = 'Channel::FacebookPage'";

/// One Facebook inbox, within `accounts` when given (None: any account, for admins).
pub async fn inbox_status(
    db: &PgPool,
    redis: &mut ConnectionManager,
    flags: &RedisKeys,
    accounts: Option<&[i64]>,
    inbox_id: i64,
) -> Result<Option<InboxStatus>, StatusError> {
    let sql = format!("{SELECT} AND i.id = $1 AND ($2::int8[] IS NULL OR i.account_id = ANY($2))");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(inbox_id).bind(accounts).fetch_optional(db).await?;
    let Some(row) = row else { return Ok(None) };
    let mut all = with_flags(vec![from_row(&row)?], redis, flags).await?;
    Ok(all.pop())
}

/// Every Facebook inbox (of `accounts` when given), by inbox id.
pub async fn list_statuses(
    db: &PgPool,
    redis: &mut ConnectionManager,
    flags: &RedisKeys,
    accounts: Option<&[i64]>,
) -> Result<Vec<InboxStatus>, StatusError> {
    let sql = format!("{SELECT} AND ($1::int8[] IS NULL OR i.account_id = ANY($1)) ORDER BY i.id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(accounts).fetch_all(db).await?;
    let statuses = rows.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    with_flags(statuses, redis, flags).await
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

fn subscription_from_row(r: &PgRow) -> Result<Subscription, sqlx::Error> {
    let Some(state) = r.try_get::<Option<String>, _>("sub_state")? else { return Ok(Subscription::default()) };
    let message: Option<String> = r.try_get("sub_error_message")?;
    Ok(Subscription {
        state,
        checked_at: r.try_get("sub_checked_at")?,
        resubscribed_at: r.try_get("sub_resubscribed_at")?,
        next_retry_at: r.try_get("sub_retry_at")?,
        last_error: match message {
            Some(message) => Some(LastError {
                kind: r.try_get("sub_error_kind")?,
                code: r.try_get("sub_error_code")?,
                subcode: r.try_get("sub_error_subcode")?,
                message,
            }),
            None => None,
        },
    })
}

fn from_row(r: &PgRow) -> Result<InboxStatus, sqlx::Error> {
    let message: Option<String> = r.try_get("last_error_message")?;
    Ok(InboxStatus {
        inbox_id: r.try_get("inbox_id")?,
        account_id: r.try_get("account_id")?,
        inbox_name: r.try_get("inbox_name")?,
        channel_id: r.try_get("channel_id")?,
        page_id: r.try_get("page_id")?,
        token_valid: r.try_get("token_valid")?,
        status: r.try_get::<Option<String>, _>("status")?.and_then(|s| s.parse().ok()).unwrap_or(TokenStatus::Unknown),
        reauthorization_required: false,
        authorization_error_count: 0,
        consecutive_failures: r.try_get::<Option<i64>, _>("consecutive_failures")?.unwrap_or(0),
        last_checked: r.try_get("last_checked_at")?,
        last_refreshed: r.try_get("last_refreshed_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        expires_at: r.try_get("expires_at")?,
        data_access_expires_at: r.try_get("data_access_expires_at")?,
        subscription: subscription_from_row(r)?,
        last_error: message
            .map(|message| -> Result<LastError, sqlx::Error> {
                Ok(LastError {
                    kind: r.try_get("last_error_kind")?,
                    code: r.try_get("last_error_code")?,
                    subcode: r.try_get("last_error_subcode")?,
                    message,
                })
            })
            .transpose()?,
    })
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
