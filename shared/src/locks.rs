//! A lock per channel with expiry, so two workers never work on the same channel at once (pending
//! markers keep duplicates out of the queue, but a re-check, an inline run, an expired marker or a
//! request joining a batch can still meet another job at the same channel). Single jobs and
//! batches both take it, under the id the channel's failure is counted with. The lock is
//! short-lived and renewed while its job runs, so a crashed worker's lock is gone by the time its
//! orphaned job is recovered. Locks are leases (`crate::leases`), so a batch takes all of its
//! channels' locks with one `MGET` and one `MSET`.

use std::time::Duration;

use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::keys::RedisKeys;
use crate::leases;

/// Takes the channel's lock for `job`; false when another job holds it.
pub async fn acquire(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel_id: i64,
    job: Uuid,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    Ok(acquire_many(redis, keys, &[(channel_id, job)], ttl).await?.first() == Some(&true))
}

/// Releases the lock if `job` still holds it (an expired lock may belong to someone else now).
pub async fn release(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel_id: i64,
    job: Uuid,
) -> redis::RedisResult<()> {
    release_many(redis, keys, &[(channel_id, job)]).await
}

/// Extends the lock while `job` holds it.
pub async fn renew(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel_id: i64,
    job: Uuid,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    Ok(renew_many(redis, keys, &[(channel_id, job)], ttl).await?.first() == Some(&true))
}

/// Takes the locks of several channels (a batch), each for its own job, in one round trip; `true`
/// where taken. Channels another job holds are left to it.
pub async fn acquire_many(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    claims: &[(i64, Uuid)],
    ttl: Duration,
) -> redis::RedisResult<Vec<bool>> {
    leases::take(redis, &leases_of(keys, claims), ttl).await
}

/// Extends each lock still held by its job; `false` where it was lost (expired, or taken since).
pub async fn renew_many(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    claims: &[(i64, Uuid)],
    ttl: Duration,
) -> redis::RedisResult<Vec<bool>> {
    leases::renew(redis, &leases_of(keys, claims), ttl).await
}

/// Releases each lock its job still holds.
pub async fn release_many(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    claims: &[(i64, Uuid)],
) -> redis::RedisResult<()> {
    leases::drop(redis, &leases_of(keys, claims)).await.map(|_| ())
}

fn leases_of(keys: &RedisKeys, claims: &[(i64, Uuid)]) -> Vec<(String, String)> {
    claims.iter().map(|(channel, job)| (keys.lock(*channel), job.to_string())).collect()
}
