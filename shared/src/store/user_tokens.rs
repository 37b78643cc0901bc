//! "Every channel of this user token", for encrypted and plaintext columns alike: through
//! `fb_channel_user_tokens`, a digest of each channel's decrypted user token taken at the row's
//! `updated_at` (see migrations/0007). Loading a channel records its digest when missing or older
//! than the row, so the cycle keeps the table current; a throttled full pass catches rows no job
//! has loaded yet (a fresh install's first hours).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use chrono::NaiveDateTime;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use tracing::debug;

use crate::{encryption::Codec, secret::Secret};

/// How often one process scans the whole channel table for rows without a current digest. The
/// scan is two anti-joins over Chatwoot's table; once per user token (1,000s a cycle) it cost more
/// Postgres CPU than the cycle itself.
const FULL_SYNC_EVERY: Duration = Duration::from_secs(300);

/// Digests recorded in one full pass from which the table's statistics are refreshed at once.
const BULK: usize = 1_000;

pub fn digest(token: &Secret) -> Vec<u8> {
    Sha256::digest(token.expose().as_bytes()).to_vec()
}

/// Records the digests of `(channel id, decrypted user token, row version)`.
pub async fn record(db: &PgPool, rows: &[(i64, &Secret, NaiveDateTime)]) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<i32> = rows.iter().filter_map(|(id, _, _)| i32::try_from(*id).ok()).collect();
    let digests: Vec<Vec<u8>> = rows.iter().map(|(_, t, _)| digest(t)).collect();
    let versions: Vec<NaiveDateTime> = rows.iter().map(|(_, _, v)| *v).collect();
    // `NaiveDateTime` arrays are not among the macros' parameter types: the cast names the type bound.
    sqlx::query!(
        "INSERT INTO fb_channel_user_tokens (channel_id, user_token_sha256, channel_updated_at)
         SELECT * FROM unnest($1::int[], $2::bytea[], $3::timestamp[])
         ON CONFLICT (channel_id) DO UPDATE
         SET user_token_sha256 = excluded.user_token_sha256, channel_updated_at = excluded.channel_updated_at
         WHERE fb_channel_user_tokens.channel_updated_at < excluded.channel_updated_at",
        &ids,
        &digests,
        &versions as &[NaiveDateTime],
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Brings every channel's digest up to date, at most every `FULL_SYNC_EVERY` per database and
/// process. Undecryptable rows get no digest: nothing of theirs is sent to Graph anyway.
pub async fn sync(db: &PgPool, codec: &Codec) -> Result<(), sqlx::Error> {
    static LAST: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);
    let options = db.connect_options();
    let database = format!("{:?}/{:?}/{:?}", options.get_host(), options.get_port(), options.get_database());
    {
        let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let last = last.get_or_insert_with(HashMap::new);
        if last.get(&database).is_some_and(|t| t.elapsed() < FULL_SYNC_EVERY) {
            return Ok(());
        }
        last.insert(database, Instant::now());
    }
    // The macros' join analysis takes `c`'s columns for nullable here; they are not (`!`).
    let stale = sqlx::query!(
        r#"SELECT c.id AS "id!", c.user_access_token AS "user_access_token!", c.updated_at AS "updated_at!"
         FROM channel_facebook_pages c
         LEFT JOIN fb_channel_user_tokens d ON d.channel_id = c.id
         WHERE d.channel_id IS NULL OR d.channel_updated_at <> c.updated_at"#,
    )
    .fetch_all(db)
    .await?;
    let mut rows = Vec::with_capacity(stale.len());
    for r in stale {
        let stored = Secret::new(r.user_access_token);
        if let Ok(token) = codec.read(stored.expose()) {
            rows.push((i64::from(r.id), token, r.updated_at));
        }
    }
    let borrowed: Vec<(i64, &Secret, NaiveDateTime)> = rows.iter().map(|(i, t, v)| (*i, t, *v)).collect();
    for chunk in borrowed.chunks(10_000) {
        record(db, chunk).await?;
    }
    debug!(rows = borrowed.len(), "user token digests brought up to date");
    if borrowed.len() >= BULK {
        // A bulk load into a table the planner has no statistics for (a fresh install's first
        // pass): the plans every pooled connection cached while it was empty scan it whole on each
        // batch's channel read (3.6 ms instead of 0.4 at 100,000 channels; 11 of Postgres' 17
        // CPU-seconds in a first cycle). ANALYZE gives it statistics and invalidates those plans.
        // Autovacuum would do so too, but only a minute or more later.
        if let Err(e) = sqlx::query!("ANALYZE fb_channel_user_tokens").execute(db).await {
            debug!(error = %e, "could not analyze fb_channel_user_tokens; autovacuum will");
        }
    }
    // Channels deleted in Chatwoot leave nothing behind.
    sqlx::query!(
        "DELETE FROM fb_channel_user_tokens d
         WHERE NOT EXISTS (SELECT 1 FROM channel_facebook_pages c WHERE c.id = d.channel_id)",
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The channels whose recorded digest is that of `user_token`.
pub async fn channel_ids(db: &PgPool, user_token: &Secret) -> Result<Vec<i64>, sqlx::Error> {
    let ids: Vec<i32> = sqlx::query_scalar!(
        "SELECT channel_id FROM fb_channel_user_tokens WHERE user_token_sha256 = $1",
        digest(user_token),
    )
    .fetch_all(db)
    .await?;
    Ok(ids.into_iter().map(i64::from).collect())
}
