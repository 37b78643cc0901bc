//! Keyspace notifications, when the Redis sends them: each change of a count key arrives as a
//! message on `__keyspace@DB__:KEY`, so an increment is seen at once and nothing is polled.

use futures::{Stream, StreamExt as _};

use crate::{config::Config, keys::RedisKeys};

/// Whether this Redis publishes what the watcher needs: keyspace events (`K`) for string commands
/// (`$`, or `A` for all). `None` when it will not say (`CONFIG` is refused on many managed Redis).
pub async fn notifications_on(redis: &mut redis::aio::ConnectionManager) -> Option<bool> {
    let answer: Result<Vec<String>, _> =
        redis::cmd("CONFIG").arg("GET").arg("notify-keyspace-events").query_async(redis).await;
    let flags = answer.ok()?.get(1)?.clone();
    Some(flags.contains('K') && (flags.contains('$') || flags.contains('A')))
}

/// The channel ids of count keys as they change, until the subscription is lost.
pub async fn subscribe(config: &Config, keys: &RedisKeys) -> redis::RedisResult<impl Stream<Item = i64> + use<>> {
    let client = crate::queue::client(config)?;
    let db = client.get_connection_info().redis_settings().db();
    let channel_prefix = format!("__keyspace@{db}__:{}", keys.authorization_error_count_prefix());
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.psubscribe(format!("__keyspace@{db}__:{}", keys.authorization_error_count_pattern())).await?;
    Ok(pubsub.into_on_message().filter_map(move |m| {
        let id = m.get_channel_name().strip_prefix(&channel_prefix).and_then(|id| id.parse::<i64>().ok());
        std::future::ready(id)
    }))
}
