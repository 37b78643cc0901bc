//! Where our objects live: the schema `DATABASE_SCHEMA`, ahead of Chatwoot's `public` on every
//! session's `search_path`, so our unqualified table names are ours and Chatwoot's are Chatwoot's.
//! A database of the first layout (our tables in `public`) is moved here once, before migrating.

use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tracing::info;

/// Every table the first layout created in `public` for itself (Chatwoot has none of these names).
const FIRST_LAYOUT_TABLES: [&str; 6] = [
    "fb_token_states",
    "fb_token_events",
    "fb_send_failures",
    "fb_api_tokens",
    "fb_dead_jobs",
    "fb_webhook_deliveries",
];

/// `"name"`: the schema name is validated by the config, the quotes make it an identifier anyway.
pub fn quoted(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

/// Creates the schema, and moves the first layout's tables into it when they are still in
/// `public`. One transaction: a crash leaves either layout, never half of one.
pub async fn prepare(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    // Serialises concurrent starts of several processes on a fresh or first-layout database (the
    // migrator's own lock is taken only later). Key: "fbtr" in ASCII.
    sqlx::query!("SELECT pg_advisory_xact_lock(1717924978)").execute(&mut *tx).await?;
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA IF NOT EXISTS {}", quoted(schema)))).execute(&mut *tx).await?;
    let old_layout: bool = sqlx::query_scalar!(
        r#"SELECT to_regclass('public.fb_token_states') IS NOT NULL
            AND to_regclass(format('%I.fb_token_states', $1::text)) IS NULL AS "old_layout!""#,
        schema,
    )
    .fetch_one(&mut *tx)
    .await?;
    if old_layout {
        for table in FIRST_LAYOUT_TABLES {
            // Indexes, sequences and constraints move with their table.
            let sql = format!("ALTER TABLE IF EXISTS public.{table} SET SCHEMA {}", quoted(schema));
            sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
        }
        // The first layout's bookkeeping: its checksums are of files this version replaced, and
        // the migrations now re-run idempotently over the moved tables.
        sqlx::query!("DROP TABLE IF EXISTS public._sqlx_migrations").execute(&mut *tx).await?;
        // Our one index on Chatwoot's channel table served plaintext columns only (an encrypted
        // column's ciphertexts never compare equal); fb_channel_user_tokens replaces it.
        sqlx::query!("DROP INDEX IF EXISTS public.fbtr_channels_user_token").execute(&mut *tx).await?;
        // Our inbox indexes duplicate Chatwoot's own where Chatwoot's tables are real; where we
        // created the tables ourselves they are the only ones and stay.
        sqlx::query!(
            "DO $$ BEGIN
               IF to_regclass('public.index_inboxes_on_channel_id_and_channel_type') IS NOT NULL THEN
                 DROP INDEX IF EXISTS public.fbtr_inboxes_channel;
               END IF;
               IF to_regclass('public.index_inboxes_on_account_id') IS NOT NULL THEN
                 DROP INDEX IF EXISTS public.fbtr_inboxes_account;
               END IF;
             END $$",
        )
        .execute(&mut *tx)
        .await?;
        info!(schema, "moved this system's tables from public into its own schema");
    }
    tx.commit().await
}

/// Points the session at our schema first, then Chatwoot's.
pub async fn set_search_path(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    sqlx::query_scalar!("SELECT set_config('search_path', $1, false)", format!("{}, public", quoted(schema)))
        .fetch_one(conn)
        .await?;
    Ok(())
}
