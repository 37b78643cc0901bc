//! The statements of `producer demo`: telling a database the demo may wipe from someone's real
//! one, wiping it, and filling it with Chatwoot's rows for the seeded pages. What to seed is the
//! producer's business; this holds only how it reaches Postgres.

use sqlx::{PgConnection, PgPool};

/// The table a demo creates in its database to say "mine": only a database with it, or one without
/// any channel or inbox, is ever truncated.
pub const MARKER_TABLE: &str = "fb_demo_marker";

/// What a database holds, as far as the demo is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Holds {
    /// An earlier demo marked it: its channels are the demo's.
    Demo,
    /// No channel and no inbox: nothing to lose.
    Nothing,
    /// Channels or inboxes, and no marker: someone's real data.
    Foreign { channels: i64, inboxes: i64 },
}

/// Whether the database is the demo's, empty, or someone's (with up to 1000 of each counted).
pub async fn holdings(conn: &mut PgConnection) -> Result<Holds, sqlx::Error> {
    let tables = sqlx::query!(
        r#"SELECT to_regclass($1) IS NOT NULL AS "marker!", to_regclass('channel_facebook_pages') IS NOT NULL AS "channels!",
                to_regclass('inboxes') IS NOT NULL AS "inboxes!""#,
        MARKER_TABLE,
    )
    .fetch_one(&mut *conn)
    .await?;
    let (marker, channels, inboxes) = (tables.marker, tables.channels, tables.inboxes);
    if marker {
        return Ok(Holds::Demo);
    }
    // Counting is bounded: one row is enough to refuse, the numbers are only for the message.
    let count =
        |table: &'static str| sqlx::AssertSqlSafe(format!("SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1000) t"));
    let channels =
        if channels { sqlx::query_scalar(count("channel_facebook_pages")).fetch_one(&mut *conn).await? } else { 0 };
    let inboxes = if inboxes { sqlx::query_scalar(count("inboxes")).fetch_one(&mut *conn).await? } else { 0 };
    Ok(if channels == 0 && inboxes == 0 { Holds::Nothing } else { Holds::Foreign { channels, inboxes } })
}

/// Takes the lock that keeps out inserts into the channel tables until the transaction ends.
pub async fn lock_channel_tables(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!("LOCK TABLE channel_facebook_pages, inboxes IN SHARE ROW EXCLUSIVE MODE").execute(&mut *conn).await?;
    Ok(())
}

/// Creates [`MARKER_TABLE`], with a comment telling whoever finds it what it means.
pub async fn mark_as_demo(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE IF NOT EXISTS {MARKER_TABLE} (seeded_at timestamptz NOT NULL DEFAULT now())"
    )))
    .execute(&mut *conn)
    .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "COMMENT ON TABLE {MARKER_TABLE} IS 'This database belongs to producer demo, which truncates it on every run'"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Empties Chatwoot's channel tables and every table of ours, restarting their ids.
pub async fn truncate_demo_tables(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "TRUNCATE channel_facebook_pages, inboxes, fb_token_states, fb_token_events, fb_send_failures,
                  fb_webhook_deliveries, fb_dead_jobs, fb_page_subscriptions, fb_validation_batches, fb_cycles,
                  fb_operator_actions RESTART IDENTITY",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One Facebook channel per page and its inbox, as Chatwoot would have created them; the four
/// slices are columns, one entry per page.
pub async fn insert_pages_with_inboxes(
    db: &PgPool,
    accounts: &[i32],
    page_ids: &[String],
    page_tokens: &[String],
    user_tokens: &[String],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "WITH c AS (
           INSERT INTO channel_facebook_pages (account_id, page_id, page_access_token, user_access_token, created_at, updated_at)
           SELECT a, p, pt, ut, timezone('utc', now()), timezone('utc', now())
           FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS t(a, p, pt, ut)
           RETURNING id, account_id, page_id)
         INSERT INTO inboxes (account_id, channel_id, channel_type, name, created_at, updated_at)
         SELECT account_id, id, 'Channel::FacebookPage', 'Demo Page ' || page_id, timezone('utc', now()), timezone('utc', now()) FROM c",
        accounts,
        page_ids,
        page_tokens,
        user_tokens,
    )
    .execute(db)
    .await?;
    Ok(())
}
