//! Per-account API tokens, stored hashed.

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::secret::Secret;

pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a token for `account_id`; the only time the token itself is known. Returns (id, token).
pub async fn create_api_token(db: &PgPool, account_id: i64) -> Result<(i64, Secret), sqlx::Error> {
    let bytes: [u8; 32] = rand::random();
    let token = format!("fbtr_{}", hex::encode(bytes));
    let id: i64 = sqlx::query_scalar!(
        "INSERT INTO fb_api_tokens (account_id, token_sha256) VALUES ($1, $2) RETURNING id",
        super::events::clamp_i32(account_id),
        token_hash(&token),
    )
    .fetch_one(db)
    .await?;
    Ok((id, Secret::new(token)))
}

/// Revokes by token id or by the token itself; returns how many were revoked.
pub async fn revoke_api_token(db: &PgPool, id_or_token: &str) -> Result<u64, sqlx::Error> {
    let done = match id_or_token.parse::<i64>() {
        Ok(id) => {
            sqlx::query!("UPDATE fb_api_tokens SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", id)
                .execute(db)
                .await?
        }
        Err(_) => {
            sqlx::query!(
                "UPDATE fb_api_tokens SET revoked_at = now() WHERE token_sha256 = $1 AND revoked_at IS NULL",
                token_hash(id_or_token),
            )
            .execute(db)
            .await?
        }
    };
    Ok(done.rows_affected())
}

/// The account a live token belongs to. The lookup is by hash, so the database never compares the
/// token itself and timing says nothing about it.
pub async fn account_of_token(db: &PgPool, token: &str) -> Result<Option<i64>, sqlx::Error> {
    account_of_token_hash(db, &token_hash(token)).await
}

/// [`account_of_token`] by the token's hash (what a dashboard session keeps).
pub async fn account_of_token_hash(db: &PgPool, hash: &str) -> Result<Option<i64>, sqlx::Error> {
    let account: Option<i32> = sqlx::query_scalar!(
        "SELECT account_id FROM fb_api_tokens WHERE token_sha256 = $1 AND revoked_at IS NULL",
        hash
    )
    .fetch_optional(db)
    .await?;
    Ok(account.map(i64::from))
}
