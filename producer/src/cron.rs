//! The cron trigger. Every producer replica runs it; for each tick exactly one fires the cycle: the
//! one that sets the tick's Redis key first (`SET NX` with expiry, keyed by the tick's scheduled
//! time, so a replica whose clock is a little late finds the tick already taken).

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use redis::{AsyncCommands, aio::ConnectionManager};
use shared::{config::Config, job::Reason, queue::JobStorage, store::cycles::Origin};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

/// How long a fired tick is remembered; far longer than any clock skew between replicas.
const TICK_KEY_TTL_SECS: u64 = 24 * 3600;

#[derive(Debug, thiserror::Error)]
#[error(
    "invalid REFRESH_CRON={expr:?}: {reason} (expected 6 fields with seconds, e.g. \"0 0 */6 * * *\", or a 5-field crontab)"
)]
pub struct CronError {
    pub expr: String,
    pub reason: String,
}

/// Parses a 6-field (with seconds) or 5-field crontab expression.
pub fn parse_schedule(expr: &str) -> Result<Cron, CronError> {
    let fields = expr.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(CronError { expr: expr.into(), reason: format!("{fields} fields") });
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| CronError { expr: expr.into(), reason: e.to_string() })
}

/// Who fired a tick, for tests and logs.
pub type FiredLog = Arc<std::sync::Mutex<Vec<DateTime<Utc>>>>;

/// What a producer's cron trigger needs.
#[derive(Clone)]
pub struct Trigger {
    pub schedule: Cron,
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub storage: JobStorage,
    pub config: Arc<Config>,
    /// This producer's name, stored as the claimant of the ticks it fires.
    pub replica: String,
    /// Ticks this producer fired (tests read it).
    pub fired: Option<FiredLog>,
    /// Ticks this producer let pass because the schedule was paused (tests read it).
    pub skipped: Option<FiredLog>,
}

/// Runs until `shutdown`: at each tick, the replica that claims it runs one cycle.
pub async fn run(t: Trigger, shutdown: CancellationToken) {
    resume_unfinished(&t, &shutdown).await;
    let mut after = Utc::now();
    loop {
        let tick = match t.schedule.find_next_occurrence(&after, false) {
            Ok(tick) => tick,
            Err(e) => {
                error!(error = %e, "cron schedule has no next occurrence; cron trigger stopped");
                return;
            }
        };
        let wait = (tick - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        after = tick;
        match shared::schedule::paused(&mut t.redis.clone(), &shared::keys::RedisKeys::of(&t.config)).await {
            Ok(Some(p)) => {
                info!(tick = %tick, paused_by = %p.by, paused_at = %p.at, "cron tick skipped: the schedule is paused");
                if let Some(mut log) = t.skipped.as_ref().and_then(|l| l.lock().ok()) {
                    log.push(tick);
                }
                continue;
            }
            Ok(None) => {}
            // Claiming needs Redis too; that attempt reports the outage.
            Err(e) => warn!(error = %e, "cannot read whether the schedule is paused (Redis)"),
        }
        match claim_tick(&mut t.redis.clone(), &t.config, tick, &t.replica).await {
            Ok(true) => {
                info!(tick = %tick, replica = %t.replica, "cron tick claimed; running the refresh cycle");
                if let Some(mut log) = t.fired.as_ref().and_then(|l| l.lock().ok()) {
                    log.push(tick);
                }
                run_tick_cycle(&t, tick, &shutdown).await;
            }
            Ok(false) => info!(tick = %tick, "cron tick taken by another producer"),
            Err(e) => error!(error = %e, "cannot claim the cron tick (Redis); skipped"),
        }
    }
}

/// The cycle of a claimed tick. A store error stops it only for a while: it resumes after the
/// last channel it enqueued (kept under a key of the tick), with backoff, until it completes, the
/// next tick is due (whose cycle then covers the rest) or the producer stops.
pub async fn run_tick_cycle(t: &Trigger, tick: DateTime<Utc>, shutdown: &CancellationToken) {
    let progress = progress_key(&t.config, tick);
    let next_tick = t.schedule.find_next_occurrence(&tick, false).ok();
    let row = crate::cycle::cycle_started(&t.db, Origin::Cron, Some(&t.replica)).await;
    for failures in 1u32.. {
        let result = crate::cycle::resume_cycle(&t.db, t.redis.clone(), &t.config, Reason::Cron, &progress).await;
        if result.is_ok() {
            crate::cycle::cycle_finished(&t.db, row, &result).await;
        }
        match result {
            Ok(c) => {
                info!(
                    enqueued = c.enqueued,
                    skipped = c.skipped,
                    resumed = failures > 1,
                    "enqueued {} channels",
                    c.enqueued
                );
                return;
            }
            Err(e) => {
                let wait = t.config.retry.backoff(failures);
                if next_tick.is_some_and(|next| (next - Utc::now()).to_std().ok().is_none_or(|left| left <= wait)) {
                    error!(error = %e, "refresh cycle failed; the next tick's cycle covers the rest");
                    crate::cycle::cycle_finished(&t.db, row, &Err(e)).await;
                    return;
                }
                error!(error = %e, retry_in_secs = wait.as_secs_f64(), "refresh cycle stopped; resuming where it stopped");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

/// Where the cycle of `tick` got to (see `cycle::resume_cycle`).
pub fn progress_key(config: &Config, tick: DateTime<Utc>) -> String {
    shared::keys::RedisKeys::of(config).cron_progress(tick.timestamp())
}

/// A producer stopped mid-cycle (a restart, a crash, a deploy) leaves its tick's progress short of
/// done: the next producer to start finishes that cycle instead of leaving the rest for the next
/// tick. Should the cycle's own producer still be running it, the two skip each other's channels
/// by their pending markers.
async fn resume_unfinished(t: &Trigger, shutdown: &CancellationToken) {
    let Ok(last) = t.schedule.find_previous_occurrence(&Utc::now(), false) else { return };
    let seen: Option<String> = match t.redis.clone().get(progress_key(&t.config, last)).await {
        Ok(seen) => seen,
        Err(e) => {
            warn!(error = %e, "cannot read the last cycle's progress (Redis); not resuming it");
            return;
        }
    };
    if seen.is_some_and(|s| s != crate::cycle::PROGRESS_DONE) {
        info!(tick = %last, replica = %t.replica, "resuming the refresh cycle a stopped producer left unfinished");
        run_tick_cycle(t, last, shutdown).await;
    }
}

async fn claim_tick(
    redis: &mut ConnectionManager,
    config: &Config,
    tick: DateTime<Utc>,
    replica: &str,
) -> redis::RedisResult<bool> {
    let key = shared::keys::RedisKeys::of(config).cron_tick(tick.timestamp());
    let set: Option<String> =
        redis::cmd("SET").arg(key).arg(replica).arg("NX").arg("EX").arg(TICK_KEY_TTL_SECS).query_async(redis).await?;
    Ok(set.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_and_five_field_expressions_parse() {
        for ok in ["0 0 */6 * * *", "*/5 * * * * *", "0 */6 * * *", "15 3 * * 1-5", "0 0 * * 0"] {
            assert!(parse_schedule(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn bad_expressions_are_rejected_with_the_variable_name() {
        for bad in ["", "every 6 hours", "* * *", "61 * * * * *", "0 0 */6 * * * 2026", "a b c d e"] {
            let e = parse_schedule(bad).expect_err(bad);
            assert!(e.to_string().contains("REFRESH_CRON"), "{e}");
        }
    }

    #[test]
    fn default_fires_every_six_hours() {
        let s = parse_schedule("0 0 */6 * * *").expect("valid");
        let start: DateTime<Utc> = "2026-11-29T01:00:00Z".parse().expect("time");
        let next = s.find_next_occurrence(&start, false).expect("next");
        assert_eq!(next.to_rfc3339(), "2026-11-29T06:00:00+00:00");
    }
}
