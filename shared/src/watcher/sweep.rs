//! The fallback for a Redis without keyspace notifications (Chatwoot's default, and often locked
//! on managed Redis): read every channel's count with `MGET`, 1,000 keys a command, ten commands a
//! round trip. Its cost is bounded by the number of channels, not by the size of the keyspace (a
//! `SCAN` would walk every Sidekiq and cache key of Chatwoot's Redis too).

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use redis::aio::ConnectionManager;
use sqlx::PgPool;

use crate::keys::RedisKeys;

/// Keys per `MGET`.
const CHUNK: usize = 1_000;
/// `MGET`s per round trip.
const PER_TRIP: usize = 10;
/// How long the list of channels is trusted before it is read again.
const IDS_FRESH_FOR: Duration = Duration::from_secs(60);

/// What this replica last read of each channel's count, to tell which counts moved since; the
/// shared `seen` hash (see `claim`) decides whose observation it is.
#[derive(Default)]
pub struct Sweep {
    channels: Vec<(i64, String)>,
    read_at: Option<Instant>,
    last: HashMap<i64, i64>,
}

/// One pass over every channel.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub channels: usize,
    pub commands: u64,
}

impl Sweep {
    /// The channels whose count differs from what this replica last read, with the new count.
    pub async fn moved(
        &mut self,
        db: &PgPool,
        redis: &mut ConnectionManager,
        keys: &RedisKeys,
    ) -> Result<(Vec<(i64, i64)>, Pass), super::WatchError> {
        if self.read_at.is_none_or(|t| t.elapsed() >= IDS_FRESH_FOR) {
            self.channels.clear();
            let mut after = 0;
            loop {
                let page = crate::store::facebook_channel_ids(db, after, 10_000).await?;
                let Some(&last) = page.last() else { break };
                after = last;
                self.channels.extend(page.into_iter().map(|id| (id, keys.authorization_error_count(id))));
            }
            self.read_at = Some(Instant::now());
        }
        let mut pass = Pass { channels: self.channels.len(), commands: 0 };
        let mut moved = Vec::new();
        for trip in self.channels.chunks(CHUNK * PER_TRIP) {
            let mut pipe = redis::pipe();
            for chunk in trip.chunks(CHUNK) {
                pipe.cmd("MGET").arg(chunk.iter().map(|(_, k)| k.as_str()).collect::<Vec<_>>());
                pass.commands += 1;
            }
            let answers: Vec<Vec<Option<String>>> = pipe.query_async(redis).await?;
            for ((id, _), value) in trip.iter().zip(answers.into_iter().flatten()) {
                // Chatwoot only INCRs it; anything else reads as no count.
                let count = value.and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                if self.last.get(id).copied().unwrap_or(0) != count {
                    moved.push((*id, count));
                }
            }
        }
        Ok((moved, pass))
    }

    /// Remembers a count once it was accounted for (claimed, or found already seen).
    pub fn remember(&mut self, channel_id: i64, count: i64) {
        if count == 0 {
            self.last.remove(&channel_id);
        } else {
            self.last.insert(channel_id, count);
        }
    }
}
