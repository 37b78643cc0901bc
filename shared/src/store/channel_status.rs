//! A channel's stored status alone: whether the channel exists and whether it is flagged already is
//! all the counter watcher asks before it reports an increment.

use sqlx::PgPool;

/// `None`: no such channel. `Some(None)`: the channel exists and was never checked.
pub async fn channel_status(db: &PgPool, channel_id: i32) -> Result<Option<Option<String>>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT s.status AS "status?" FROM channel_facebook_pages c LEFT JOIN fb_token_states s ON s.channel_id = c.id
             WHERE c.id = $1"#,
        channel_id,
    )
    .fetch_optional(db)
    .await
}
