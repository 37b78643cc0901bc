//! Postgres: connecting (creating the database when missing), migrations, and the queries of the
//! channel tables, the token state and the event history.

mod api_tokens;
mod channel_status;
mod channels;
pub mod chatwoot_users;
pub mod cycles;
pub mod dashboard;
mod dead;
pub mod demo;
pub mod events;
mod inboxes;
pub mod installation;
mod operator_actions;
pub mod outbox;
mod outcomes;
mod ping;
pub mod retention;
pub mod schema;
mod send_failures;
mod settle;
mod states;
pub mod status;
pub mod subscriptions;
mod user_tokens;

use std::{str::FromStr, time::Duration};

use sqlx::{
    AssertSqlSafe, Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

pub use api_tokens::{account_of_token, account_of_token_hash, create_api_token, revoke_api_token, token_hash};
pub use channel_status::channel_status;
pub use channels::{
    Channel, Loaded, TokenWrite, UNDECRYPTABLE_LOG, UnreadableChannel, channels_of_user_token, facebook_channel_ids,
    facebook_channel_of_inbox, is_unchanged, load_channel, load_channels, write_page_token, write_user_token,
};
pub use dead::{
    DeadLetter, discard_dead, kept_payload, mark_redriven, open_dead_count, open_dead_jobs, open_dead_letters,
    record_dead_job, record_panic, record_poison,
};
pub use events::{Event, Step, record_event, record_events};
pub use inboxes::*;
pub use operator_actions::{OperatorAction, recent_operator_actions, record_operator_action};
pub use outcomes::{HourlyOutcome, hourly_outcomes};
pub use ping::ping;
pub use send_failures::record_send_failure;
pub use settle::{BatchSummary, History, NewToken, Settled, Settlement, settle};
pub use states::{
    FailureCount, StateUpdate, TokenState, TokenStatus, answers_since, db_now, load_state, mark_refreshed,
    newly_expiring, record_rejection, refreshed_since, save_expiry, status_counts,
};
pub use user_tokens::digest as user_token_digest;

use tracing::warn;

use crate::secret::Secret;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    BadUrl(String),
    #[error("cannot create database {name}: {source}")]
    Create { name: String, source: sqlx::Error },
    #[error("migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Longest a statement of ours may run, and wait for a lock, on a pooled session. The database is
/// Chatwoot's: our queries are short OLTP lookups and writes (milliseconds; the largest reads every
/// channel id for a cycle), so 30 s only ever stops a runaway query from holding a connection and
/// locks others need. A lock we wait for means someone holds `channel_facebook_pages` (a Chatwoot
/// migration, a long transaction): after 5 s the job fails as a store error and is retried with
/// backoff, instead of every job of every worker queueing behind the lock, and Chatwoot's own
/// queries behind ours.
pub const STATEMENT_TIMEOUT: &str = "30s";
pub const LOCK_TIMEOUT: &str = "5s";

/// Connects, creating the database first when it does not exist, and applies the migrations in
/// `schema` (`DATABASE_SCHEMA`), the first schema of every pooled session's `search_path`.
pub async fn connect_and_migrate(
    database_url: &Secret,
    schema: &str,
    max_connections: u32,
) -> Result<PgPool, StoreError> {
    crate::tls::install_crypto_provider();
    let options = PgConnectOptions::from_str(database_url.expose()).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    if crate::tls::postgres_may_be_cleartext(&options) {
        warn!(
            host = options.get_host(),
            sslmode = ?options.get_ssl_mode(),
            "DATABASE_URL points at another host without sslmode=require or verify-full: tokens may cross the network in cleartext"
        );
    }
    create_database_if_missing(&options).await?;
    // Migrations run on a session of their own, without the pool's timeouts: an index build may
    // take longer than a query should, and a second process waits on the migration lock for as
    // long as the first one migrates.
    let migrating = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await?;
    let migrated = migrate(&migrating, schema).await;
    migrating.close().await;
    migrated?;
    let operator_options = options.get_options().unwrap_or_default().to_owned();
    let schema_owned = schema.to_owned();
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // SET on connect rather than startup `options`: PgBouncer refuses unknown startup
        // parameters. What the operator put in the URL's `options` wins.
        .after_connect(move |conn, _| {
            let operator_options = operator_options.clone();
            let schema = schema_owned.clone();
            Box::pin(async move {
                schema::set_search_path(conn, &schema).await?;
                if !operator_options.contains("statement_timeout") {
                    sqlx::query_scalar!("SELECT set_config('statement_timeout', $1, false)", STATEMENT_TIMEOUT)
                        .fetch_one(&mut *conn)
                        .await?;
                }
                if !operator_options.contains("lock_timeout") {
                    sqlx::query_scalar!("SELECT set_config('lock_timeout', $1, false)", LOCK_TIMEOUT)
                        .fetch_one(&mut *conn)
                        .await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

async fn migrate(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    {
        let mut conn = pool.acquire().await?;
        schema::prepare(&mut conn, schema).await?;
        // The pool's one session runs the migrations next: our schema first.
        schema::set_search_path(&mut conn, schema).await?;
    }
    let mut migrator = sqlx::migrate::Migrator::with_migrations(MIGRATOR.migrations.to_vec());
    migrator.dangerous_set_table_name(format!("{}._sqlx_migrations", schema::quoted(schema)));
    migrator.run(pool).await?;
    Ok(())
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), StoreError> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    // Connecting to the database itself is the common case and needs no rights on `postgres`.
    if let Ok(conn) = PgConnection::connect_with(options).await {
        let _ = conn.close().await;
        return Ok(());
    }
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: Option<i32> =
        sqlx::query_scalar!(r#"SELECT 1 AS "exists!" FROM pg_database WHERE datname = $1"#, &name)
            .fetch_optional(&mut admin)
            .await?;
    if exists.is_none() {
        let sql = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(e) = sqlx::query(AssertSqlSafe(sql)).execute(&mut admin).await {
            // Another process may have created it between our check and our CREATE.
            let raced = e.as_database_error().and_then(|d| d.code()).is_some_and(|c| c == "42P04");
            if !raced {
                return Err(StoreError::Create { name, source: e });
            }
        }
    }
    Ok(())
}
