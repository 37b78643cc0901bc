//! The Redis flags the inbox reads: the confirmed-auth-failure count and the "reauthorization
//! required" flag, in our key style or in Chatwoot's own (`alfred:`) style.
//!
//! In Chatwoot's style two more things ride along, in the same atomic step:
//! - a flag set or cleared also stamps Chatwoot's inbox cache key (`update_cache_key('inbox')`), so
//!   its inbox list (and the banner) is fetched again instead of served from the browser's cache;
//! - every count we make or clear is written to the counter watcher's `seen` hash, so the watcher
//!   takes only Chatwoot's own increments for send failures, never ours.

use redis::{Script, aio::ConnectionManager};
use uuid::Uuid;

use crate::keys::RedisKeys;

/// How long we remember that a job already counted, so a job run twice (a crash between the
/// count and the ack) counts once.
const COUNTED_TTL_SECS: u64 = 7 * 24 * 3600;

/// Chatwoot's `CacheKeys::CACHE_KEYS_EXPIRY` (7 days): its own writes of the key expire so.
pub const INBOX_CACHE_KEY_TTL_SECS: u64 = 7 * 24 * 3600;

/// The flags of one channel as the inbox sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlagState {
    pub reauthorization_required: bool,
    pub authorization_error_count: i64,
}

/// After a confirmed failure: the count after this job and whether the flag is now set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    pub count: i64,
    pub flagged: bool,
    /// False when this job had already counted (run twice).
    pub newly_counted: bool,
}

/// KEYS: count, flag, counted marker, channel lock, watcher's seen hash, inbox cache key (or a
/// placeholder). ARGV: threshold, marker TTL, job id, channel id, whether to stamp the cache key,
/// the cache key's TTL.
const COUNT_ONCE: &str = r#"
if held(redis.call('GET', KEYS[4]), now_ms()) ~= ARGV[3] then
  return false
end
local n
local counted = 0
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
  n = redis.call('INCR', KEYS[1])
  counted = 1
  redis.call('HSET', KEYS[5], ARGV[4], n)
else
  n = tonumber(redis.call('GET', KEYS[1]) or '0')
end
if n >= tonumber(ARGV[1]) and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], 'true')
  if ARGV[5] == '1' then
    redis.call('SET', KEYS[6], redis.call('TIME')[1], 'EX', ARGV[6])
  end
end
return {n, counted, redis.call('EXISTS', KEYS[2])}
"#;

/// Built once: the count reads the channel lock as a lease.
static COUNT_ONCE_SCRIPT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(&format!("{}{COUNT_ONCE}", crate::leases::LUA_HELPERS)));

/// Counts a confirmed failure once for this job, and sets the flag at the threshold, atomically.
/// Only while `lock` (the channel's lock) still names this job: a job that lost it (a slow call
/// outlived it, another job took the channel) saw a token that may be stale by now, so it counts
/// nothing and answers `None`.
pub async fn count_confirmed_failure(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channel: Owner,
    job_id: Uuid,
    threshold: u32,
    lock: &str,
) -> redis::RedisResult<Option<Counted>> {
    let cache_key = keys.inbox_cache_key(channel.account_id);
    let answer: Option<(i64, i64, i64)> = COUNT_ONCE_SCRIPT
        .key(keys.authorization_error_count(channel.id))
        .key(keys.reauthorization_required(channel.id))
        .key(keys.counted(job_id))
        .key(lock)
        .key(keys.counter_seen())
        .key(cache_key.clone().unwrap_or_else(|| keys.counter_seen()))
        .arg(threshold)
        .arg(COUNTED_TTL_SECS)
        .arg(job_id.to_string())
        .arg(channel.id)
        .arg(if cache_key.is_some() { "1" } else { "0" })
        .arg(INBOX_CACHE_KEY_TTL_SECS)
        .invoke_async(redis)
        .await?;
    Ok(answer.map(|(count, counted, flagged)| Counted { count, flagged: flagged == 1, newly_counted: counted == 1 }))
}

/// A channel and the account its inbox belongs to (Chatwoot's cache key is per account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub id: i64,
    pub account_id: i64,
}

/// A success: the token works, so the inbox must not be told otherwise. Returns whether a flag was
/// set (and is now cleared).
pub async fn clear(redis: &mut ConnectionManager, keys: &RedisKeys, channel: Owner) -> redis::RedisResult<bool> {
    Ok(clear_many(redis, keys, &[channel]).await?.first() == Some(&true))
}

/// KEYS: every channel's flag and count (flag1, count1, flag2, count2, …), the watcher's seen
/// hash, then each channel's inbox cache key (or a placeholder). ARGV: whether to stamp the cache
/// keys, their TTL, then the channel ids. The common case, a batch of healthy channels none of
/// which had a flag or a count, costs one `EXISTS` and one `HDEL`. Returns, per channel, whether a
/// flag was cleared.
const CLEAR_MANY: &str = r#"
local n = (#KEYS - 1) / 3
local seen = KEYS[2 * n + 1]
redis.call('HDEL', seen, unpack(ARGV, 3))
local out = {}
for i = 1, n do out[i] = 0 end
if redis.call('EXISTS', unpack(KEYS, 1, 2 * n)) == 0 then return out end
local now
for i = 1, n do
  local had = redis.call('DEL', KEYS[2 * i - 1])
  redis.call('DEL', KEYS[2 * i])
  if had == 1 then
    out[i] = 1
    if ARGV[1] == '1' then
      now = now or redis.call('TIME')[1]
      redis.call('SET', KEYS[2 * n + 1 + i], now, 'EX', ARGV[2])
    end
  end
end
return out
"#;

static CLEAR_MANY_SCRIPT: std::sync::LazyLock<Script> = std::sync::LazyLock::new(|| Script::new(CLEAR_MANY));

/// [`clear`] for many channels in one script (a batch's healthy channels); per channel, whether
/// a flag was cleared.
pub async fn clear_many(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    channels: &[Owner],
) -> redis::RedisResult<Vec<bool>> {
    let mut out = Vec::with_capacity(channels.len());
    // Lua's `unpack` has a stack limit; a cycle's batch is 50.
    for part in channels.chunks(500) {
        let mut call = CLEAR_MANY_SCRIPT.prepare_invoke();
        for c in part {
            call.key(keys.reauthorization_required(c.id)).key(keys.authorization_error_count(c.id));
        }
        call.key(keys.counter_seen());
        let stamp = part.first().is_some_and(|c| keys.inbox_cache_key(c.account_id).is_some());
        for c in part {
            call.key(keys.inbox_cache_key(c.account_id).unwrap_or_else(|| keys.counter_seen()));
        }
        call.arg(if stamp { "1" } else { "0" }).arg(INBOX_CACHE_KEY_TTL_SECS);
        for c in part {
            call.arg(c.id);
        }
        let had: Vec<i64> = call.invoke_async(redis).await?;
        out.extend(had.into_iter().map(|h| h == 1));
    }
    Ok(out)
}

pub async fn read(redis: &mut ConnectionManager, keys: &RedisKeys, channel_id: i64) -> redis::RedisResult<FlagState> {
    let (flag, count): (Option<String>, Option<String>) = redis::pipe()
        .get(keys.reauthorization_required(channel_id))
        .get(keys.authorization_error_count(channel_id))
        .query_async(redis)
        .await?;
    Ok(FlagState {
        reauthorization_required: flag.as_deref() == Some("true"),
        authorization_error_count: count.and_then(|c| c.parse().ok()).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FlagStyle;

    #[test]
    fn key_names_are_the_contract() {
        let seed = RedisKeys::new("", FlagStyle::Seed);
        assert_eq!(seed.reauthorization_required(7), "reauthorization_required:channel_facebook_page:7");
        assert_eq!(seed.authorization_error_count(7), "authorization_error_count:channel_facebook_page:7");
        let cw = RedisKeys::new("", FlagStyle::Chatwoot);
        assert_eq!(cw.reauthorization_required(7), "alfred:REAUTHORIZATION_REQUIRED:channel_facebook_page:7");
        assert_eq!(cw.authorization_error_count(7), "alfred:AUTHORIZATION_ERROR_COUNT:channel_facebook_page:7");
        assert_eq!(cw.inbox_cache_key(3).as_deref(), Some("alfred:idb-cache-key-account-3-inbox"));
        assert_eq!(seed.inbox_cache_key(3), None);
        assert_eq!(cw.authorization_error_count_prefix(), "alfred:AUTHORIZATION_ERROR_COUNT:channel_facebook_page:");
        let odd = RedisKeys::new("a*b:", FlagStyle::Chatwoot);
        assert_eq!(
            odd.authorization_error_count_pattern(),
            "a\\*b:alfred:AUTHORIZATION_ERROR_COUNT:channel_facebook_page:*"
        );
    }
}
