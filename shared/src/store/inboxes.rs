//! Facebook inboxes with their channels, for listings (check-all, the API, the dashboard).

use sqlx::PgPool;

use super::channels::FACEBOOK_CHANNEL_TYPE;
use crate::{
    encryption::{Codec, Unreadable},
    secret::Secret,
};

/// One Facebook inbox and the channel (page) behind it. Several inboxes may share a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacebookInbox {
    pub inbox_id: i64,
    pub account_id: i64,
    pub channel_id: i64,
    pub page_id: String,
    /// Decrypted; an envelope this process cannot open is never sent anywhere.
    pub page_token: Result<Secret, Unreadable>,
    pub inbox_name: String,
}

/// Every Facebook inbox joined to its channel, ordered by channel id then inbox id. Inboxes whose
/// channel row is missing are left out.
pub async fn facebook_inboxes(db: &PgPool, codec: &Codec) -> Result<Vec<FacebookInbox>, sqlx::Error> {
    // Cast the ids: our migrations make them `integer`, a Chatwoot database may have `bigint`.
    // `!`: a cast is an expression, which the macros take for nullable.
    let rows = sqlx::query!(
        r#"SELECT i.id::int8 AS "inbox_id!", i.account_id::int8 AS "account_id!", c.id::int8 AS "channel_id!",
                c.page_id, c.page_access_token, i.name AS inbox_name
         FROM inboxes i
         JOIN channel_facebook_pages c ON c.id = i.channel_id
         WHERE i.channel_type = $1
         ORDER BY c.id, i.id"#,
        FACEBOOK_CHANNEL_TYPE,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| FacebookInbox {
            inbox_id: r.inbox_id,
            account_id: r.account_id,
            channel_id: r.channel_id,
            page_id: r.page_id,
            page_token: codec.read(Secret::new(r.page_access_token).expose()),
            inbox_name: r.inbox_name,
        })
        .collect())
}
