//! The read model behind an inbox's status: its channel, token state and page subscription, as
//! Postgres holds them. The Redis flags are laid over it by `shared::status`, since they are what
//! the inbox itself acts on.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::{TokenStatus, dashboard::Scope};

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

/// The read model's statement, with `$filter` (a string literal) ending its WHERE clause, as one
/// literal the query macros check whole. The overrides say what the joins mean: the ids are casts
/// (which the macros take for nullable) of columns that are not null, and any column of `s` (no
/// token state yet) or `p` (never checked) may be missing.
macro_rules! select_inbox_status {
    ($filter:literal, $($arg:expr),+ $(,)?) => {
        sqlx::query_as!(
            StatusRow,
            r#"SELECT i.id::int8 AS "inbox_id!", i.account_id::int8 AS "account_id!", i.name AS "inbox_name!",
        c.id::int8 AS "channel_id!", c.page_id AS "page_id!", s.status AS "status?", s.token_valid AS "token_valid?",
        s.consecutive_failures::int8 AS "consecutive_failures?",
        s.last_checked_at AS "last_checked_at?", s.last_refreshed_at AS "last_refreshed_at?",
        s.next_attempt_at AS "next_attempt_at?", s.last_error_kind AS "last_error_kind?",
        s.last_error_code::int8 AS "last_error_code?", s.last_error_subcode::int8 AS "last_error_subcode?",
        s.last_error_message AS "last_error_message?", s.expires_at AS "expires_at?",
        s.data_access_expires_at AS "data_access_expires_at?",
        p.state AS "sub_state?", p.checked_at AS "sub_checked_at?", p.resubscribed_at AS "sub_resubscribed_at?",
        p.retry_at AS "sub_retry_at?", p.last_error_kind AS "sub_error_kind?", p.last_error_code::int8 AS "sub_error_code?",
        p.last_error_subcode::int8 AS "sub_error_subcode?", p.last_error_message AS "sub_error_message?"
     FROM inboxes i
     JOIN channel_facebook_pages c ON c.id = i.channel_id
     LEFT JOIN fb_token_states s ON s.channel_id = c.id
     LEFT JOIN fb_page_subscriptions p ON p.channel_id = c.id
     WHERE i.channel_type = 'Channel::FacebookPage'"# + $filter,
            $($arg),+
        )
    };
}

/// A row of [`select_inbox_status!`].
struct StatusRow {
    inbox_id: i64,
    account_id: i64,
    inbox_name: String,
    channel_id: i64,
    page_id: String,
    status: Option<String>,
    token_valid: Option<bool>,
    consecutive_failures: Option<i64>,
    last_checked_at: Option<DateTime<Utc>>,
    last_refreshed_at: Option<DateTime<Utc>>,
    next_attempt_at: Option<DateTime<Utc>>,
    last_error_kind: Option<String>,
    last_error_code: Option<i64>,
    last_error_subcode: Option<i64>,
    last_error_message: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    data_access_expires_at: Option<DateTime<Utc>>,
    sub_state: Option<String>,
    sub_checked_at: Option<DateTime<Utc>>,
    sub_resubscribed_at: Option<DateTime<Utc>>,
    sub_retry_at: Option<DateTime<Utc>>,
    sub_error_kind: Option<String>,
    sub_error_code: Option<i64>,
    sub_error_subcode: Option<i64>,
    sub_error_message: Option<String>,
}

/// One Facebook inbox, within `accounts` when given (None: any account, for admins), before the
/// Redis flags: `reauthorization_required` is false and `authorization_error_count` 0.
pub async fn load_inbox_status(
    db: &PgPool,
    accounts: Option<&[i64]>,
    inbox_id: i64,
) -> Result<Option<InboxStatus>, sqlx::Error> {
    // `$1::int8`: `i.id` is `integer`, and the id is compared as the `int8` it is bound as.
    let row = select_inbox_status!(
        " AND i.id = $1::int8 AND ($2::int8[] IS NULL OR i.account_id = ANY($2))",
        inbox_id,
        accounts,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(from_row))
}

/// One page of the dashboard's inboxes, before the Redis flags: within `scope`, `filter` (a
/// filter name of `dashboard::StatusCounts::of`, `None`: all), the ones needing a person first
/// (reconnection required, then the rest needing attention), then by inbox id.
///
/// The page's ids come first ([`super::dashboard::page_ids`], which stops after the page instead
/// of sorting every inbox), then their rows, put back in that order.
pub async fn load_inbox_page(
    db: &PgPool,
    scope: Scope<'_>,
    filter: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<InboxStatus>, sqlx::Error> {
    let ids = super::dashboard::page_ids(db, scope, filter, limit, offset).await?;
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = select_inbox_status!(" AND i.id = ANY($1::int8[])", &ids).fetch_all(db).await?;
    let mut statuses: Vec<InboxStatus> = rows.into_iter().map(from_row).collect();
    statuses.sort_by_key(|s| ids.iter().position(|id| *id == s.inbox_id));
    Ok(statuses)
}

fn subscription_from_row(r: &mut StatusRow) -> Subscription {
    let Some(state) = r.sub_state.take() else { return Subscription::default() };
    Subscription {
        state,
        checked_at: r.sub_checked_at,
        resubscribed_at: r.sub_resubscribed_at,
        next_retry_at: r.sub_retry_at,
        last_error: r.sub_error_message.take().map(|message| LastError {
            kind: r.sub_error_kind.take(),
            code: r.sub_error_code,
            subcode: r.sub_error_subcode,
            message,
        }),
    }
}

fn from_row(mut r: StatusRow) -> InboxStatus {
    let subscription = subscription_from_row(&mut r);
    InboxStatus {
        inbox_id: r.inbox_id,
        account_id: r.account_id,
        inbox_name: r.inbox_name,
        channel_id: r.channel_id,
        page_id: r.page_id,
        token_valid: r.token_valid,
        status: r.status.and_then(|s| s.parse().ok()).unwrap_or(TokenStatus::Unknown),
        reauthorization_required: false,
        authorization_error_count: 0,
        consecutive_failures: r.consecutive_failures.unwrap_or(0),
        last_checked: r.last_checked_at,
        last_refreshed: r.last_refreshed_at,
        next_attempt_at: r.next_attempt_at,
        expires_at: r.expires_at,
        data_access_expires_at: r.data_access_expires_at,
        subscription,
        last_error: r.last_error_message.map(|message| LastError {
            kind: r.last_error_kind,
            code: r.last_error_code,
            subcode: r.last_error_subcode,
            message,
        }),
    }
}
