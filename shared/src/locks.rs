//! A lock per channel with expiry, so two workers never work on the same channel at once (pending
//! markers keep duplicates out of the queue, but a re-check, an inline run, an expired marker or a
//! request joining a batch can still meet another job at the same channel). Single jobs and
//! batches both take it, under the id the channel's failure is counted with. The lock is
//! short-lived and renewed while its job runs, so a crashed worker's lock is gone by the time its
//! orphaned job is recovered.

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

const ACQUIRE_MANY: &str = r#"
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[i + 1], 'NX', 'PX', ARGV[1]) then out[i] = 1 else out[i] = 0 end
end
return out
"#;

const RENEW_MANY: &str = r#"
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"#;

const RELEASE_MANY: &str = r#"
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i] then redis.call('DEL', key) end
end
return {}
"#;

/// Takes the locks of several channels (a batch), each for its own job, in one round trip; `true`
/// where taken. Channels another job holds are left to it.
pub async fn acquire_many(
    redis: &mut ConnectionManager,
    keys: &LockKeys,
    claims: &[(i64, Uuid)],
    ttl: Duration,
) -> redis::RedisResult<Vec<bool>> {
    many(redis, keys, ACQUIRE_MANY, claims, Some(ttl)).await
}

/// Extends each lock still held by its job; `false` where it was lost (expired, or taken since).
pub async fn renew_many(
    redis: &mut ConnectionManager,
    keys: &LockKeys,
    claims: &[(i64, Uuid)],
    ttl: Duration,
) -> redis::RedisResult<Vec<bool>> {
    many(redis, keys, RENEW_MANY, claims, Some(ttl)).await
}

/// Releases each lock its job still holds.
pub async fn release_many(
    redis: &mut ConnectionManager,
    keys: &LockKeys,
    claims: &[(i64, Uuid)],
) -> redis::RedisResult<()> {
    many(redis, keys, RELEASE_MANY, claims, None).await.map(|_| ())
}

async fn many(
    redis: &mut ConnectionManager,
    keys: &LockKeys,
    script: &str,
    claims: &[(i64, Uuid)],
    ttl: Option<Duration>,
) -> redis::RedisResult<Vec<bool>> {
    if claims.is_empty() {
        return Ok(vec![]);
    }
    let script = Script::new(script);
    let mut call = script.prepare_invoke();
    if let Some(ttl) = ttl {
        call.arg(millis(ttl));
    }
    for (channel, job) in claims {
        call.key(keys.channel(*channel)).arg(job.to_string());
    }
    let answers: Vec<i64> = call.invoke_async(redis).await?;
    Ok(answers.into_iter().map(|a| a == 1).collect())
}
