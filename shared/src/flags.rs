//! The Redis flags the inbox reads: the confirmed-auth-failure count and the "reauthorization
//! required" flag, in our key style or in Chatwoot's own (`alfred:`) style.

use redis::{AsyncCommands, Script, aio::ConnectionManager};
use uuid::Uuid;

use crate::config::FlagStyle;

/// How long we remember that a job already counted, so a job run twice (a crash between the
/// count and the ack) counts once.
const COUNTED_TTL_SECS: u64 = 7 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct FlagKeys {
    prefix: String,
    style: FlagStyle,
}

impl FlagKeys {
    pub fn new(prefix: impl Into<String>, style: FlagStyle) -> Self {
        Self { prefix: prefix.into(), style }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn reauthorization_required(&self, channel_id: i64) -> String {
        match self.style {
            FlagStyle::Seed => format!("{}reauthorization_required:channel_facebook_page:{channel_id}", self.prefix),
            FlagStyle::Chatwoot => {
                format!("{}alfred:REAUTHORIZATION_REQUIRED:channel_facebook_page:{channel_id}", self.prefix)
            }
        }
    }

    pub fn authorization_error_count(&self, channel_id: i64) -> String {
        match self.style {
            FlagStyle::Seed => format!("{}authorization_error_count:channel_facebook_page:{channel_id}", self.prefix),
            FlagStyle::Chatwoot => {
                format!("{}alfred:AUTHORIZATION_ERROR_COUNT:channel_facebook_page:{channel_id}", self.prefix)
            }
        }
    }

    fn counted(&self, job_id: Uuid) -> String {
        format!("{}fb_token_refresh:counted:{job_id}", self.prefix)
    }
}

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

const COUNT_ONCE: &str = r#"
if redis.call('GET', KEYS[4]) ~= ARGV[3] then
  return false
end
local n
local counted = 0
if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[2]) then
  n = redis.call('INCR', KEYS[1])
  counted = 1
else
  n = tonumber(redis.call('GET', KEYS[1]) or '0')
end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], 'true')
end
return {n, counted, redis.call('EXISTS', KEYS[2])}
"#;

/// Counts a confirmed failure once for this job, and sets the flag at the threshold, atomically.
/// Only while `lock` (the channel's lock) still names this job: a job that lost it (a slow call
/// outlived it, another job took the channel) saw a token that may be stale by now, so it counts
/// nothing and answers `None`.
pub async fn count_confirmed_failure(
    redis: &mut ConnectionManager,
    keys: &FlagKeys,
    channel_id: i64,
    job_id: Uuid,
    threshold: u32,
    lock: &str,
) -> redis::RedisResult<Option<Counted>> {
    let answer: Option<(i64, i64, i64)> = Script::new(COUNT_ONCE)
        .key(keys.authorization_error_count(channel_id))
        .key(keys.reauthorization_required(channel_id))
        .key(keys.counted(job_id))
        .key(lock)
        .arg(threshold)
        .arg(COUNTED_TTL_SECS)
        .arg(job_id.to_string())
        .invoke_async(redis)
        .await?;
    Ok(answer.map(|(count, counted, flagged)| Counted { count, flagged: flagged == 1, newly_counted: counted == 1 }))
}

/// A success: the token works, so the inbox must not be told otherwise.
pub async fn clear(redis: &mut ConnectionManager, keys: &FlagKeys, channel_id: i64) -> redis::RedisResult<()> {
    let _: i64 =
        redis.del(&[keys.reauthorization_required(channel_id), keys.authorization_error_count(channel_id)]).await?;
    Ok(())
}

pub async fn read(redis: &mut ConnectionManager, keys: &FlagKeys, channel_id: i64) -> redis::RedisResult<FlagState> {
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

    #[test]
    fn key_names_are_the_contract() {
        let seed = FlagKeys::new("", FlagStyle::Seed);
        assert_eq!(seed.reauthorization_required(7), "reauthorization_required:channel_facebook_page:7");
        assert_eq!(seed.authorization_error_count(7), "authorization_error_count:channel_facebook_page:7");
        let cw = FlagKeys::new("", FlagStyle::Chatwoot);
        assert_eq!(cw.reauthorization_required(7), "alfred:REAUTHORIZATION_REQUIRED:channel_facebook_page:7");
        assert_eq!(cw.authorization_error_count(7), "alfred:AUTHORIZATION_ERROR_COUNT:channel_facebook_page:7");
    }
}
