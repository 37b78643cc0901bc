//! Chatwoot's channel table: reading a channel (decrypting its token columns) and writing a
//! refreshed token (encrypted as Chatwoot's Rails would) without ever going backwards.

use chrono::NaiveDateTime;
use sqlx::PgPool;

use super::user_tokens;
use crate::{
    encryption::{Codec, Unreadable},
    secret::Secret,
};

pub const FACEBOOK_CHANNEL_TYPE: &str = "Channel::FacebookPage";

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: i64,
    pub account_id: i64,
    pub page_id: String,
    pub page_token: Secret,
    pub user_token: Secret,
    /// The row's version as read: a token write succeeds only if nobody wrote since.
    pub updated_at: NaiveDateTime,
}

impl Channel {
    pub fn owner(&self) -> crate::flags::Owner {
        crate::flags::Owner { id: self.id, account_id: self.account_id }
    }
}

/// A channel whose token columns hold envelopes this process cannot open: never sent to Graph,
/// never counted, never flagged.
#[derive(Debug, Clone)]
pub struct UnreadableChannel {
    pub id: i64,
    pub account_id: i64,
    pub page_id: String,
    pub column: &'static str,
    pub cause: Unreadable,
}

impl UnreadableChannel {
    /// What the status says (`last_error.message`) and `check-all` prints: the cause, no token.
    pub fn message(&self) -> String {
        format!("{} cannot be decrypted: {}", self.column, self.cause)
    }
}

/// The one error line a process logs when it meets undecryptable token columns.
pub const UNDECRYPTABLE_LOG: &str = "Facebook token columns are encrypted by Chatwoot and cannot be decrypted here; set \
     ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY, ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY and \
     ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT to the values in Chatwoot's .env; until then such channels \
     are not checked, counted or flagged";

/// A channel row as this process can use it.
pub type Loaded = Result<Channel, UnreadableChannel>;

pub async fn load_channel(db: &PgPool, codec: &Codec, channel_id: i64) -> Result<Option<Loaded>, sqlx::Error> {
    let Ok(id) = i32::try_from(channel_id) else { return Ok(None) };
    Ok(load_channels(db, codec, &[i64::from(id)]).await?.pop())
}

/// Several channels in one query (a batch); absent ids are simply not returned. Channels whose
/// user token digest is missing or older than the row get it recorded (one statement; only the
/// first cycle after install, or after a reconnect, has any).
pub async fn load_channels(db: &PgPool, codec: &Codec, ids: &[i64]) -> Result<Vec<Loaded>, sqlx::Error> {
    let ids: Vec<i32> = ids.iter().filter_map(|&i| i32::try_from(i).ok()).collect();
    let rows = sqlx::query_as!(
        ChannelRow,
        // `!`: the macros' analysis of a left join's plan may take `c`'s columns for nullable.
        r#"SELECT c.id AS "id!", c.account_id AS "account_id!", c.page_id AS "page_id!",
                c.page_access_token AS "page_access_token!", c.user_access_token AS "user_access_token!",
                c.updated_at AS "updated_at!",
                d.channel_updated_at IS NOT DISTINCT FROM c.updated_at AS "digest_current!"
         FROM channel_facebook_pages c LEFT JOIN fb_channel_user_tokens d ON d.channel_id = c.id
         WHERE c.id = ANY($1) ORDER BY c.id"#,
        &ids,
    )
    .fetch_all(db)
    .await?;
    let mut loaded = Vec::with_capacity(rows.len());
    let mut current = Vec::with_capacity(rows.len());
    for r in rows {
        current.push(r.digest_current);
        loaded.push(from_row(codec, r));
    }
    let stale: Vec<_> = loaded
        .iter()
        .zip(current)
        .filter_map(|(l, current)| l.as_ref().ok().filter(|_| !current))
        .map(|c| (c.id, &c.user_token, c.updated_at))
        .collect();
    user_tokens::record(db, &stale).await?;
    Ok(loaded)
}

/// The channels whose user token is `user_token` now, read (and decrypted) afresh.
pub async fn channels_of_user_token(
    db: &PgPool,
    codec: &Codec,
    user_token: &Secret,
) -> Result<Vec<Channel>, sqlx::Error> {
    user_tokens::sync(db, codec).await?;
    let ids = user_tokens::channel_ids(db, user_token).await?;
    // A row may have changed since its digest was taken: the token itself decides.
    Ok(load_channels(db, codec, &ids)
        .await?
        .into_iter()
        .filter_map(Result::ok)
        .filter(|c| c.user_token == *user_token)
        .collect())
}

/// A row of [`load_channels`], its token columns as stored. The macro decodes each column as the
/// type the migrations give it and converts it into the field's (`.into()`): the ids widen, and a
/// token column is never held as a plain String, it goes straight into the redacting type.
struct ChannelRow {
    id: i64,
    account_id: i64,
    page_id: String,
    page_access_token: Secret,
    user_access_token: Secret,
    updated_at: NaiveDateTime,
    digest_current: bool,
}

fn from_row(codec: &Codec, r: ChannelRow) -> Loaded {
    let ChannelRow { id, account_id, page_id, updated_at, .. } = r;
    let read = |column: &'static str, stored: &Secret| codec.read(stored.expose()).map_err(|e| (column, e));
    let (page, user) =
        (read("page_access_token", &r.page_access_token), read("user_access_token", &r.user_access_token));
    match (page, user) {
        (Ok(page_token), Ok(user_token)) => Ok(Channel { id, account_id, page_id, page_token, user_token, updated_at }),
        (Err((column, cause)), _) | (_, Err((column, cause))) => {
            Err(UnreadableChannel { id, account_id, page_id, column, cause })
        }
    }
}

/// Whether a token write landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenWrite {
    Written,
    /// Someone wrote the row after we read it (a later refresh, a person reconnecting): their
    /// token is newer than ours, so ours is dropped.
    Superseded,
}

/// Writes a new page token if the row is still at the version `read` saw. `updated_at` moves
/// strictly forward, even within one clock tick, so the next guard sees the change.
pub async fn write_page_token(
    db: impl sqlx::PgExecutor<'_>,
    codec: &Codec,
    read: &Channel,
    token: &Secret,
) -> Result<TokenWrite, sqlx::Error> {
    let Ok(id) = i32::try_from(read.id) else { return Ok(TokenWrite::Superseded) };
    // With Chatwoot's keys: a fresh envelope, exactly as Rails writes one, so Chatwoot reads it.
    let stored = codec.write(token);
    let done = sqlx::query!(
        "UPDATE channel_facebook_pages
         SET page_access_token = $1,
             updated_at = GREATEST(timezone('utc', now()), $3 + interval '1 microsecond')
         WHERE id = $2 AND updated_at = $3",
        stored.expose(),
        id,
        read.updated_at,
    )
    .execute(db)
    .await?;
    Ok(if done.rows_affected() == 1 { TokenWrite::Written } else { TokenWrite::Superseded })
}

/// Writes an exchanged user token to a row still at the version `read` saw; returns the row's new
/// version (for the page token write that follows), or `None` when someone wrote meanwhile.
pub async fn write_user_token(
    db: &PgPool,
    codec: &Codec,
    read: &Channel,
    token: &Secret,
) -> Result<Option<NaiveDateTime>, sqlx::Error> {
    let Ok(id) = i32::try_from(read.id) else { return Ok(None) };
    let stored = codec.write(token);
    let version: Option<NaiveDateTime> = sqlx::query_scalar!(
        "UPDATE channel_facebook_pages
         SET user_access_token = $1,
             updated_at = GREATEST(timezone('utc', now()), $3 + interval '1 microsecond')
         WHERE id = $2 AND updated_at = $3 RETURNING updated_at",
        stored.expose(),
        id,
        read.updated_at,
    )
    .fetch_optional(db)
    .await?;
    // Our own write keeps the digest current: the new token's channels are asked for next.
    if let Some(v) = version {
        user_tokens::record(db, &[(read.id, token, v)]).await?;
    }
    Ok(version)
}

/// Whether the row is still at the version `read` saw, by the token write guard's comparison. A
/// failure seen with a token that a person replaced meanwhile says nothing about the new one.
pub async fn is_unchanged(db: &PgPool, read: &Channel) -> Result<bool, sqlx::Error> {
    let Ok(id) = i32::try_from(read.id) else { return Ok(false) };
    let same: Option<bool> = sqlx::query_scalar!(
        r#"SELECT updated_at = $2 AS "same!" FROM channel_facebook_pages WHERE id = $1"#,
        id,
        read.updated_at
    )
    .fetch_optional(db)
    .await?;
    Ok(same == Some(true))
}

/// Every channel that backs a Facebook inbox, in id order, from `after` on, at most `limit`.
pub async fn facebook_channel_ids(db: &PgPool, after: i64, limit: i64) -> Result<Vec<i64>, sqlx::Error> {
    // `$2::int8`: the id columns are `integer`, and `after` is compared as the `int8` it is bound as.
    let ids: Vec<i32> = sqlx::query_scalar!(
        "SELECT DISTINCT c.id FROM channel_facebook_pages c
         JOIN inboxes i ON i.channel_id = c.id AND i.channel_type = $1
         WHERE c.id > $2::int8 AND i.channel_id > $2::int8 ORDER BY c.id LIMIT $3",
        FACEBOOK_CHANNEL_TYPE,
        after,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(ids.into_iter().map(i64::from).collect())
}

/// The channel behind a Facebook inbox of this account, if it is one.
pub async fn facebook_channel_of_inbox(
    db: &PgPool,
    account_id: i64,
    inbox_id: i64,
) -> Result<Option<i64>, sqlx::Error> {
    let (Ok(account_id), Ok(inbox_id)) = (i32::try_from(account_id), i32::try_from(inbox_id)) else { return Ok(None) };
    let channel: Option<i32> = sqlx::query_scalar!(
        "SELECT i.channel_id FROM inboxes i JOIN channel_facebook_pages c ON c.id = i.channel_id
         WHERE i.id = $1 AND i.account_id = $2 AND i.channel_type = $3",
        inbox_id,
        account_id,
        FACEBOOK_CHANNEL_TYPE,
    )
    .fetch_optional(db)
    .await?;
    Ok(channel.map(i64::from))
}
