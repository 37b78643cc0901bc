//! Rate-limit pauses shared by every worker process: a key per page (and one for the whole app)
//! that expires when Graph said we may call again.

use std::time::Duration;

use redis::{AsyncCommands, aio::ConnectionManager};

#[derive(Debug, Clone)]
pub struct PauseKeys {
    prefix: String,
}

impl PauseKeys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn page(&self, page_id: &str) -> String {
        format!("{}fb_token_refresh:pause:page:{page_id}", self.prefix)
    }

    pub fn app(&self) -> String {
        format!("{}fb_token_refresh:pause:app", self.prefix)
    }
}

pub async fn pause(
    redis: &mut ConnectionManager,
    keys: &PauseKeys,
    page_id: &str,
    app_level: bool,
    wait: Duration,
) -> redis::RedisResult<()> {
    let key = if app_level { keys.app() } else { keys.page(page_id) };
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
    keys: &PauseKeys,
    page_id: &str,
) -> redis::RedisResult<Option<Duration>> {
    let (app, page): (i64, i64) = redis::pipe().pttl(keys.app()).pttl(keys.page(page_id)).query_async(redis).await?;
    let ms = app.max(page);
    Ok((ms > 0).then(|| Duration::from_millis(ms as u64)))
}
