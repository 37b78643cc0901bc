//! Pausing the cron schedule for every producer replica at once: one Redis key, read by each
//! replica before it claims a tick. A paused schedule skips its ticks (they are not made up when
//! it resumes; the next tick after that runs a full cycle anyway). Nothing else stops: send-failure
//! reports, the watcher, the API's refreshes and a cycle started by hand go on, because a pause is
//! for "stop the periodic load", not "stop keeping pages alive".

use chrono::{DateTime, Utc};
use redis::{AsyncCommands, aio::ConnectionManager};
use serde::{Deserialize, Serialize};

use crate::keys::RedisKeys;

/// Who paused the schedule, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    pub by: String,
    pub at: DateTime<Utc>,
}

/// Pauses the schedule until [`resume`]; pausing again keeps the first pause's author and time.
/// Returns the pause in force.
pub async fn pause(redis: &mut ConnectionManager, keys: &RedisKeys, by: &str) -> redis::RedisResult<Paused> {
    let wanted = Paused { by: by.to_owned(), at: Utc::now() };
    // Serializing a string and a time cannot fail.
    let value = serde_json::to_string(&wanted).unwrap_or_default();
    let _: Option<String> =
        redis::cmd("SET").arg(keys.schedule_paused()).arg(value).arg("NX").query_async(redis).await?;
    Ok(paused(redis, keys).await?.unwrap_or(wanted))
}

/// Resumes the schedule; `true` when it was paused.
pub async fn resume(redis: &mut ConnectionManager, keys: &RedisKeys) -> redis::RedisResult<bool> {
    let deleted: i64 = redis.del(keys.schedule_paused()).await?;
    Ok(deleted > 0)
}

/// The pause in force, if any. A value this version cannot read (set by hand) still pauses.
pub async fn paused(redis: &mut ConnectionManager, keys: &RedisKeys) -> redis::RedisResult<Option<Paused>> {
    let value: Option<String> = redis.get(keys.schedule_paused()).await?;
    Ok(value.map(|v| {
        serde_json::from_str(&v).unwrap_or_else(|_| Paused { by: format!("unknown ({v:?})"), at: DateTime::UNIX_EPOCH })
    }))
}
