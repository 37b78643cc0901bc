//! How many refreshes one account may put at the head of the queue: `API_REFRESH_PER_MINUTE` in a
//! fixed one-minute window kept in Redis, so every producer replica counts against the same window.
//! A window rather than a bucket: one INCR per request, and the answer's `Retry-After` is simply
//! what is left of the window.

use std::time::Duration;

use redis::{Script, aio::ConnectionManager};

use crate::config::Config;

const WINDOW: Duration = Duration::from_secs(60);

/// Counts the request; starts the window on the first one. Returns (count so far, seconds left).
const TAKE: &str = r#"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    Granted,
    /// The account used its window; the next one opens after this long.
    Exhausted {
        retry_after: Duration,
    },
}

fn key(config: &Config, account_id: i64) -> String {
    crate::keys::RedisKeys::of(config).front_refresh_quota(account_id)
}

/// Takes one front-of-queue refresh from the account's window.
pub async fn take_front_refresh(
    redis: &mut ConnectionManager,
    config: &Config,
    account_id: i64,
) -> redis::RedisResult<Quota> {
    let (count, ttl): (u64, i64) =
        Script::new(TAKE).key(key(config, account_id)).arg(WINDOW.as_secs()).invoke_async(redis).await?;
    Ok(if count <= u64::from(config.api_refresh_per_minute) {
        Quota::Granted
    } else {
        Quota::Exhausted { retry_after: Duration::from_secs(ttl.clamp(1, WINDOW.as_secs() as i64) as u64) }
    })
}
