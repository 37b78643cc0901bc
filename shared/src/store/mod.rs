//! Postgres: connecting (creating the database when missing), migrations, and the queries of the
//! channel tables, the token state and the event history.

mod api_tokens;
mod channels;
mod dead;
pub mod events;
mod inboxes;
mod outcomes;
mod states;

use std::{str::FromStr, time::Duration};

use sqlx::{
    AssertSqlSafe, Connection, PgConnection, PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

pub use api_tokens::{account_of_token, create_api_token, revoke_api_token, token_hash};
pub use channels::{
    Channel, TokenWrite, facebook_channel_ids, is_unchanged, load_channel, load_channels, write_page_token,
};
pub use dead::{mark_redriven, open_dead_count, open_dead_jobs, record_dead_job, record_poison};
pub use events::{Event, Step, record_event};
pub use inboxes::*;
pub use outcomes::{HourlyOutcome, hourly_outcomes};
pub use states::{FailureCount, StateUpdate, TokenState, load_state, save_state};

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

/// Connects, creating the database first when it does not exist, and applies the migrations.
pub async fn connect_and_migrate(database_url: &Secret, max_connections: u32) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(database_url.expose()).map_err(|e| StoreError::BadUrl(e.to_string()))?;
    create_database_if_missing(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), StoreError> {
    let name = options.get_database().unwrap_or("postgres").to_owned();
    // Connecting to the database itself is the common case and needs no rights on `postgres`.
    if PgConnection::connect_with(options).await.is_ok() {
        return Ok(());
    }
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
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
