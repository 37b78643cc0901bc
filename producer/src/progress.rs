//! Waiting for a set of channels to have an answer, by reading the token state every job writes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use shared::store::db_now;

/// Waits until `channels` channels have a state written since `since`, and none is about to be
/// re-checked (a confirmed failure below the threshold is looked at again within seconds; waits on
/// rate limits, minutes away, do not hold this up). Calls `progress(answered, channels)` as it goes.
pub async fn wait_for_answers(
    db: &PgPool,
    since: DateTime<Utc>,
    channels: u64,
    shutdown: &CancellationToken,
    mut progress: impl FnMut(u64, u64),
) -> anyhow::Result<()> {
    loop {
        let (answered, soon) = shared::store::answers_since(db, since).await?;
        progress(answered.min(channels), channels);
        if answered >= channels && soon == 0 {
            return Ok(());
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
