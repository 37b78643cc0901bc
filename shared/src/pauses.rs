//! Rate-limit pauses shared by every worker process: a key per page (and one for the whole app)
//! that expires when Graph said we may call again.

use crate::keys::RedisKeys;
use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager};

pub async fn pause(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    page_id: &str,
    app_level: bool,
    wait: Duration,
) -> redis::RedisResult<()> {
    let key = if app_level { keys.pause_app() } else { keys.pause_page(page_id) };
    let ms = crate::redis_ops::millis(wait);
    // Never shorten a pause another worker set from a longer announcement.
    let current: i64 = redis.pttl(&key).await?;
    if current < 0 || (current as u64) < ms {
        let _: () = redis.pset_ex(&key, "1", ms).await?;
    }
    Ok(())
}

/// How long calls about this page must still wait, if at all.
pub async fn remaining(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    page_id: &str,
) -> redis::RedisResult<Option<Duration>> {
    Ok(remaining_many(redis, keys, &[page_id]).await?.into_iter().next().flatten())
}

/// KEYS: the app's pause, then each page's. Returns per page the milliseconds still to wait (0 or
/// less when none): one `PTTL` and one `MGET` for a batch, a `PTTL` more only for a paused page.
const REMAINING_MANY: &str = r#"
local app = redis.call('PTTL', KEYS[1])
local pages = redis.call('MGET', unpack(KEYS, 2))
local out = {}
for i = 2, #KEYS do
  local ms = app
  if pages[i - 1] then ms = math.max(ms, redis.call('PTTL', KEYS[i])) end
  out[i - 1] = ms
end
return out
"#;

static REMAINING_MANY_SCRIPT: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(REMAINING_MANY));

/// [`remaining`] for many pages (a batch) in one round trip.
pub async fn remaining_many(
    redis: &mut ConnectionManager,
    keys: &RedisKeys,
    page_ids: &[&str],
) -> redis::RedisResult<Vec<Option<Duration>>> {
    let mut out = Vec::with_capacity(page_ids.len());
    // Lua's `unpack` has a stack limit; a batch is 50 pages.
    for part in page_ids.chunks(500) {
        let mut call = REMAINING_MANY_SCRIPT.prepare_invoke();
        call.key(keys.pause_app());
        for page in part {
            call.key(keys.pause_page(page));
        }
        let ms: Vec<i64> = call.invoke_async(redis).await?;
        out.extend(ms.into_iter().map(|ms| (ms > 0).then(|| Duration::from_millis(ms as u64))));
    }
    Ok(out)
}
