//! The read model behind an inbox's status: its channel, token state and page subscription, as
//! Postgres holds them. The Redis flags are laid over it by `shared::status`, since they are what
//! the inbox itself acts on.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Row, postgres::PgRow};

use super::TokenStatus;

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

/// One Facebook inbox, within `accounts` when given (None: any account, for admins), before the
/// Redis flags: `reauthorization_required` is false and `authorization_error_count` 0.
pub async fn load_inbox_status(
    db: &PgPool,
    accounts: Option<&[i64]>,
    inbox_id: i64,
) -> Result<Option<InboxStatus>, sqlx::Error> {
    let sql = format!("{SELECT} AND i.id = $1 AND ($2::int8[] IS NULL OR i.account_id = ANY($2))");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(inbox_id).bind(accounts).fetch_optional(db).await?;
    row.as_ref().map(from_row).transpose()
}

/// Every Facebook inbox (of `accounts` when given), by inbox id, before the Redis flags.
pub async fn load_inbox_statuses(db: &PgPool, accounts: Option<&[i64]>) -> Result<Vec<InboxStatus>, sqlx::Error> {
    let sql = format!("{SELECT} AND ($1::int8[] IS NULL OR i.account_id = ANY($1)) ORDER BY i.id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(accounts).fetch_all(db).await?;
    rows.iter().map(from_row).collect()
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
