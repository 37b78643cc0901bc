//! Reading the gauges' values at scrape time: channels by status from Postgres, queue depth from
//! Redis. Kept apart from `metrics`, which only names and counts, so counting never does I/O.

use crate::{
    config::Config,
    metrics::{Metrics, StateLabel, StatusLabel},
    queue, store,
};

/// Failures leave the last values: a scrape must not fail because a store blinked.
pub async fn refresh(metrics: &Metrics, db: &sqlx::PgPool, redis: &mut redis::aio::ConnectionManager, config: &Config) {
    if let Ok(counts) = store::status_counts(db).await {
        for status in store::TokenStatus::ALL.map(store::TokenStatus::as_str) {
            let n = counts.get(status).copied().unwrap_or(0);
            metrics.channels.get_or_create(&StatusLabel { status: status.to_owned() }).set(n);
            if status == "reauthorization_required" {
                metrics.reauthorization_required.set(n);
            }
        }
    }
    if let Ok(d) = queue::depth(redis, config).await {
        for (state, n) in [
            ("pending", d.pending),
            ("scheduled", d.scheduled),
            ("running", d.running),
            ("done", d.done),
            ("dead", d.dead),
            ("deferred", d.deferred),
        ] {
            metrics
                .queue
                .get_or_create(&StateLabel { state: state.to_owned() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}
