//! "Every channel of this user token", for encrypted and plaintext columns alike: through
//! `fb_channel_user_tokens`, a digest of each channel's decrypted user token taken at the row's
//! `updated_at` (see migrations/0007). Rows changed since their digest was taken (a reconnect
//! in Chatwoot, a refresh of ours) are re-read first, so the answer is current.

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tracing::debug;

use super::channels::{Channel, load_channels};
use crate::{encryption::Codec, secret::Secret};

pub fn digest(token: &Secret) -> Vec<u8> {
    Sha256::digest(token.expose().as_bytes()).to_vec()
}

/// Brings every channel's digest up to date: a scan of the channel table joined with ours, then
/// one statement for the rows that changed (all of them only on the first run). Undecryptable
/// rows get no digest: nothing of theirs is sent to Graph anyway.
pub async fn sync(db: &PgPool, codec: &Codec) -> Result<usize, sqlx::Error> {
    let stale: Vec<(i32, String, NaiveDateTime)> = sqlx::query_as(
        "SELECT c.id, c.user_access_token, c.updated_at FROM channel_facebook_pages c
         LEFT JOIN fb_channel_user_tokens d ON d.channel_id = c.id
         WHERE d.channel_id IS NULL OR d.channel_updated_at <> c.updated_at",
    )
    .fetch_all(db)
    .await?;
    let (mut ids, mut digests, mut versions) = (vec![], vec![], vec![]);
    for (id, stored, updated_at) in stale {
        let stored = Secret::new(stored);
        if let Ok(token) = codec.read(stored.expose()) {
            ids.push(id);
            digests.push(digest(&token));
            versions.push(updated_at);
        }
    }
    if !ids.is_empty() {
        sqlx::query(
            "INSERT INTO fb_channel_user_tokens (channel_id, user_token_sha256, channel_updated_at)
             SELECT * FROM unnest($1::int[], $2::bytea[], $3::timestamp[])
             ON CONFLICT (channel_id) DO UPDATE
             SET user_token_sha256 = excluded.user_token_sha256, channel_updated_at = excluded.channel_updated_at",
        )
        .bind(&ids)
        .bind(&digests)
        .bind(&versions)
        .execute(db)
        .await?;
        debug!(rows = ids.len(), "user token digests updated");
    }
    // Channels deleted in Chatwoot leave nothing behind.
    sqlx::query(
        "DELETE FROM fb_channel_user_tokens d
         WHERE NOT EXISTS (SELECT 1 FROM channel_facebook_pages c WHERE c.id = d.channel_id)",
    )
    .execute(db)
    .await?;
    Ok(ids.len())
}

/// The channels whose user token is `user_token` now, read (and decrypted) afresh.
pub async fn channels_of_user_token(
    db: &PgPool,
    codec: &Codec,
    user_token: &Secret,
) -> Result<Vec<Channel>, sqlx::Error> {
    sync(db, codec).await?;
    let ids: Vec<i32> =
        sqlx::query_scalar("SELECT channel_id FROM fb_channel_user_tokens WHERE user_token_sha256 = $1")
            .bind(digest(user_token))
            .fetch_all(db)
            .await?;
    let ids: Vec<i64> = ids.into_iter().map(i64::from).collect();
    // A row may have changed between the sync and this read: the token itself decides.
    Ok(load_channels(db, codec, &ids)
        .await?
        .into_iter()
        .filter_map(Result::ok)
        .filter(|c| c.user_token == *user_token)
        .collect())
}
