//! Claiming an observation of Chatwoot's counter, atomically, so that of every replica that sees
//! the same increment exactly one reports it, and a replica that dies before reporting leaves its
//! claim for another to take.
//!
//! Each channel's count as last accounted for lives in one shared hash (`RedisKeys::counter_seen`);
//! our own counting and clearing write it in the same script as the count (`flags.rs`), so our
//! increments are never taken for Chatwoot's. Lease times are read from Redis' own clock, so
//! replicas whose clocks disagree still agree on when a claim lapses.

use std::time::Duration;

use redis::{Script, aio::ConnectionManager};

use crate::keys::RedisKeys;

/// How long a claimed observation may go unreported before another replica takes it.
pub const LEASE: Duration = Duration::from_secs(30);

/// A count above (or, after a reset, below) the one last accounted for: someone else counted.
/// KEYS: count, flag, seen hash, in-flight set. ARGV: channel id, lease in ms.
const CLAIM: &str = r#"
local c = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local s = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') or 0
if c == s then
  return false
end
if c <= 0 then
  redis.call('HDEL', KEYS[3], ARGV[1])
  return false
end
redis.call('HSET', KEYS[3], ARGV[1], c)
local t = redis.call('TIME')
redis.call('ZADD', KEYS[4], t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[2]), ARGV[1])
return {c, redis.call('EXISTS', KEYS[2])}
"#;

/// Claims that lapsed (their replica died between claim and report), renewed for the caller.
/// KEYS: in-flight set. ARGV: lease in ms, most to take.
const RECLAIM: &str = r#"
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), member)
end
return due
"#;

/// Undoes Chatwoot's count of a failure that the token written since made moot, unless it counted
/// again meanwhile. KEYS: count, seen hash. ARGV: channel id, the count observed.
const FORGET: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
"#;

/// An increment this replica now owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claimed {
    pub count: i64,
    /// The reauthorization flag was present when the claim was made.
    pub flagged: bool,
}

fn lease_ms() -> u64 {
    crate::redis_ops::millis(LEASE)
}

/// Claims the channel's current count if nobody accounted for it yet.
pub async fn claim(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel_id: i64,
) -> redis::RedisResult<Option<Claimed>> {
    let answer: Option<(i64, i64)> = Script::new(CLAIM)
        .key(keys.authorization_error_count(channel_id))
        .key(keys.reauthorization_required(channel_id))
        .key(keys.counter_seen())
        .key(keys.counter_inflight())
        .arg(channel_id)
        .arg(lease_ms())
        .invoke_async(redis)
        .await?;
    Ok(answer.map(|(count, flagged)| Claimed { count, flagged: flagged == 1 }))
}

/// Takes up to `most` lapsed claims; their channels are the caller's to report now.
pub async fn reclaim(redis: &mut ConnectionManager, keys: &RedisKeys, most: usize) -> redis::RedisResult<Vec<i64>> {
    let members: Vec<String> =
        Script::new(RECLAIM).key(keys.counter_inflight()).arg(lease_ms()).arg(most).invoke_async(redis).await?;
    // A member that is not an id was not written by us; it is dropped on settling.
    Ok(members.iter().filter_map(|m| m.parse().ok()).collect())
}

/// The observation is reported (or found moot): nobody needs to take it again.
pub async fn settle(redis: &mut ConnectionManager, keys: &RedisKeys, channel_id: i64) -> redis::RedisResult<()> {
    let _: i64 = redis::cmd("ZREM").arg(keys.counter_inflight()).arg(channel_id).query_async(redis).await?;
    Ok(())
}

/// `FORGET`; true when the count was removed.
pub async fn forget(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel_id: i64,
    count: i64,
) -> redis::RedisResult<bool> {
    let n: i64 = Script::new(FORGET)
        .key(keys.authorization_error_count(channel_id))
        .key(keys.counter_seen())
        .arg(channel_id)
        .arg(count)
        .invoke_async(redis)
        .await?;
    Ok(n == 1)
}
