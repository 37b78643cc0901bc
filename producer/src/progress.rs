//! Waiting for a set of channels to have an answer, by reading the token state every job writes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

/// The database's clock: answers are stamped by it (`updated_at = now()`), so "written since" must
/// be measured by it too. A producer whose clock runs ahead of the database's would otherwise wait
/// for answers that look older than the request, forever.
pub async fn db_now(db: &PgPool) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar("SELECT now()").fetch_one(db).await
}

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
        let (answered, soon): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE updated_at >= $1),
                    count(*) FILTER (WHERE status = 'retrying' AND next_attempt_at < now() + interval '15 seconds')
             FROM fb_token_states",
        )
        .bind(since)
        .fetch_one(db)
        .await?;
        let answered = u64::try_from(answered).unwrap_or(0);
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
