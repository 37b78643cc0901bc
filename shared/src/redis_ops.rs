//! Small Redis operations several modules share: expiry in milliseconds, and deleting a key only
//! while it still holds our value (an expired lock or marker may belong to someone else by now).

use std::time::Duration;

use redis::{Script, aio::ConnectionManager};

/// A duration as Redis `PX`/`PEXPIRE` milliseconds (at least 1: 0 is an error there).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `s` as a literal in a Redis glob pattern (`SCAN MATCH`, `PSUBSCRIBE`): a key prefix holding `*`,
/// `?`, `[` or `]` must not match other people's keys.
pub fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Delays between attempts to reach Redis again after losing it: quick at first, at most 5 s apart,
/// for ever (a Redis restart must never end a task that needs it).
pub fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    use backon::BackoffBuilder as _;
    backon::ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// `DEL key` if it still holds `value`; true when it did.
pub async fn delete_if(redis: &mut ConnectionManager, key: &str, value: &str) -> redis::RedisResult<bool> {
    let deleted: i64 =
        Script::new("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0")
            .key(key)
            .arg(value)
            .invoke_async(redis)
            .await?;
    Ok(deleted == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_metacharacters_are_literal() {
        assert_eq!(glob_escape("a*b?:[x]\\"), "a\\*b\\?:\\[x\\]\\\\");
        assert_eq!(glob_escape("test:abc:fb_token_refresh:report:"), "test:abc:fb_token_refresh:report:");
    }
}
