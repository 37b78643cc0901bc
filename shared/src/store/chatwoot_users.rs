//! Chatwoot's users as API callers: their access tokens (`access_tokens`, polymorphic owner) and
//! their role in each account (`account_users.role`: 0 agent, 1 administrator). Read only; no DDL
//! on Chatwoot's tables.
//!
//! Chatwoot keeps `access_tokens.token` in plain text (`has_secure_token`, not among the columns
//! Active Record Encryption covers), so a token is found by equality on its unique index
//! `index_access_tokens_on_token`, as Chatwoot itself finds it.

use sqlx::PgPool;

use super::token_hash;
use crate::secret::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Agent,
    Administrator,
}

impl Role {
    /// Anything but Chatwoot's administrator value is treated as an agent: a role added later
    /// must not gain rights it was never given here.
    fn from_chatwoot(role: Option<i32>) -> Self {
        if role == Some(1) { Self::Administrator } else { Self::Agent }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Membership {
    pub account_id: i64,
    pub role: Role,
}

/// Who owns an access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOwner {
    User(i64),
    /// An `AgentBot`, a `PlatformApp`, ...: not a person with a role in an account.
    Other(String),
}

/// Whether the database is Chatwoot's, with the two tables user tokens need.
pub async fn has_chatwoot_users(db: &PgPool) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT to_regclass('access_tokens') IS NOT NULL AND to_regclass('account_users') IS NOT NULL AS "present!""#
    )
    .fetch_one(db)
    .await
}

/// The owner of `token`, if it is one of Chatwoot's access tokens.
pub async fn owner_of_access_token(db: &PgPool, token: &str) -> Result<Option<TokenOwner>, sqlx::Error> {
    let row: Option<(Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT owner_type, owner_id FROM access_tokens WHERE token = $1")
            .bind(token)
            .fetch_optional(db)
            .await?;
    Ok(row.map(|(kind, id)| match (kind.as_deref(), id) {
        (Some("User"), Some(id)) => TokenOwner::User(id),
        (kind, _) => TokenOwner::Other(kind.unwrap_or_default().to_owned()),
    }))
}

/// The user's accounts and role in each, as they are now.
pub async fn memberships(db: &PgPool, user_id: i64) -> Result<Vec<Membership>, sqlx::Error> {
    let rows: Vec<(Option<i64>, Option<i32>)> = sqlx::query_as(
        "SELECT account_id, role FROM account_users WHERE user_id = $1 AND account_id IS NOT NULL ORDER BY account_id",
    )
    .bind(user_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(account, role)| Some(Membership { account_id: account?, role: Role::from_chatwoot(role) }))
        .collect())
}

/// Whether the user still has the token whose SHA-256 is `hash` (a dashboard session keeps the
/// hash, never the token). Found through the owner index, then compared here.
pub async fn user_has_token_hash(db: &PgPool, user_id: i64, hash: &str) -> Result<bool, sqlx::Error> {
    let tokens: Vec<Option<String>> =
        sqlx::query_scalar("SELECT token FROM access_tokens WHERE owner_type = 'User' AND owner_id = $1")
            .bind(user_id)
            .fetch_all(db)
            .await?;
    Ok(tokens.into_iter().flatten().map(Secret::new).any(|t| token_hash(t.expose()) == hash))
}
