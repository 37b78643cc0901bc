//! A lock per channel with expiry, so two workers never work on the same channel at once (pending
//! markers keep duplicates out of the queue, but a re-check, an inline run or an expired marker can
//! still meet another job at the same channel). The lock is short-lived and renewed while its job
//! runs, so a crashed worker's lock is gone by the time its orphaned job is recovered.

use std::time::Duration;

use redis::{Script, aio::ConnectionManager};
use uuid::Uuid;

use crate::redis_ops::{delete_if, millis};

#[derive(Debug, Clone)]
pub struct LockKeys {
    prefix: String,
}

impl LockKeys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn channel(&self, channel_id: i64) -> String {
        format!("{}fb_token_refresh:lock:channel:{channel_id}", self.prefix)
    }
}

/// Takes the channel's lock for `job`; false when another job holds it.
pub async fn acquire(
    redis: &mut ConnectionManager,
    keys: &LockKeys,
    channel_id: i64,
    job: Uuid,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let ms = millis(ttl);
    let set: Option<String> = redis::cmd("SET")
        .arg(keys.channel(channel_id))
        .arg(job.to_string())
        .arg("NX")
        .arg("PX")
        .arg(ms)
        .query_async(redis)
        .await?;
    Ok(set.is_some())
}

/// Releases the lock if `job` still holds it (an expired lock may belong to someone else now).
pub async fn release(
    redis: &mut ConnectionManager,
    keys: &LockKeys,
    channel_id: i64,
    job: Uuid,
) -> redis::RedisResult<()> {
    delete_if(redis, &keys.channel(channel_id), &job.to_string()).await?;
    Ok(())
}

/// Extends the lock while `job` holds it.
pub async fn renew(
    redis: &mut ConnectionManager,
    keys: &LockKeys,
    channel_id: i64,
    job: Uuid,
    ttl: Duration,
) -> redis::RedisResult<bool> {
    let ms = millis(ttl);
    let renewed: i64 = Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
    )
    .key(keys.channel(channel_id))
    .arg(job.to_string())
    .arg(ms)
    .invoke_async(redis)
    .await?;
    Ok(renewed == 1)
}
