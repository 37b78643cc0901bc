//! Chatwoot's own signal of a failed send, taken as a send-failure report.
//!
//! An unmodified Chatwoot never calls our API. When a send fails with "Error validating access
//! token" its `authorization_error!` does `INCR alfred:AUTHORIZATION_ERROR_COUNT:channel_facebook_page:ID`,
//! and at 2 it flags the inbox and emails the admins. The watcher notices such an increment within
//! a second or two and reports it through the intake, so the refresh usually lands before
//! Chatwoot's second failure and its threshold is never reached.
//!
//! - With keyspace notifications on, every change of a count key arrives as a message (`listen`);
//!   a sweep every 30 s catches what a lost subscription missed.
//! - Without them, every channel's count is read each `COUNTER_WATCH_INTERVAL_MS` (`sweep`).
//! - Whichever way an increment is seen, one atomic claim (`claim`) decides which replica reports
//!   it, and our own increments are already accounted for by the script that made them.

pub mod claim;
mod listen;
mod sweep;

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    graph::{ErrorKind, GraphError},
    intake::{Decision, Intake, IntakeError},
    keys::RedisKeys,
    metrics::Metrics,
};

pub use sweep::Pass;

/// How often the watcher asks Redis again whether notifications are on (an operator may turn
/// them on or off while it runs), and how often it sweeps although they are on.
const MODE_RECHECK: Duration = Duration::from_secs(30);

/// Lapsed claims taken per pass.
const RECLAIM_PER_PASS: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error(transparent)]
    Intake(#[from] IntakeError),
    #[error("the keyspace notification subscription ended")]
    SubscriptionLost,
}

/// How increments reach the watcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keyspace notifications: each change arrives as a message.
    Notified,
    /// No notifications (or Redis will not say): every count is read each interval.
    Swept,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Notified => "notified",
            Self::Swept => "swept",
        }
    }
}

/// What became of one claimed increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Reported through the intake, which decided as for any report.
    Reported(Decision),
    /// Our own refresh already confirmed that a person must act, and the flag is up: Chatwoot's
    /// further failures add nothing (the regular checks go on).
    AlreadyFlagged,
    /// A token was written after the failed send; Chatwoot's count of it was taken back.
    Forgotten,
    /// A count key for a channel that is not in the database.
    UnknownChannel,
}

impl Seen {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Reported(d) => d.name(),
            Self::AlreadyFlagged => "already_flagged",
            Self::Forgotten => "forgotten",
            Self::UnknownChannel => "unknown_channel",
        }
    }
}

/// Increments reported at once (a sweep after an outage may find many).
const CONCURRENT_REPORTS: usize = 16;

pub struct CounterWatcher {
    observer: Observer,
    sweep: sweep::Sweep,
}

/// Claims and reports single increments; cheap to clone, so several run at once.
#[derive(Clone)]
struct Observer {
    intake: Intake,
    keys: RedisKeys,
    metrics: Metrics,
}

/// The report an increment stands for: Chatwoot counts only sends that failed with an invalid or
/// expired session (`Facebook::SendOnFacebookService#handle_facebook_error`), Graph's code 190.
fn chatwoot_counted(count: i64) -> GraphError {
    GraphError {
        kind: ErrorKind::Auth,
        code: Some(190),
        ..GraphError::transport(format!(
            "Chatwoot counted a send that failed with an authorization error (its count is now {count})"
        ))
    }
}

impl Observer {
    fn commands(&self, n: u64) {
        self.metrics.watcher_redis_commands.inc_by(n);
    }

    async fn observe(&self, channel_id: i64) -> Result<Option<Seen>, WatchError> {
        let mut redis = self.intake.redis.clone();
        self.commands(1);
        let Some(claimed) = claim::claim(&mut redis, &self.keys, channel_id).await? else { return Ok(None) };
        self.report(channel_id, claimed).await.map(Some)
    }

    async fn report(&self, channel_id: i64, claimed: claim::Claimed) -> Result<Seen, WatchError> {
        let seen = self.decide(channel_id, claimed).await?;
        self.commands(1);
        claim::settle(&mut self.intake.redis.clone(), &self.keys, channel_id).await?;
        Metrics::count(&self.metrics.watcher_observations, seen.name());
        info!(channel.id = channel_id, count = claimed.count, outcome = seen.name(), "Chatwoot counted a failed send");
        Ok(seen)
    }

    async fn decide(&self, channel_id: i64, claimed: claim::Claimed) -> Result<Seen, WatchError> {
        // Chatwoot's ids are `integer`: a key naming anything else is no channel of ours.
        let Ok(id) = i32::try_from(channel_id) else { return Ok(Seen::UnknownChannel) };
        let status = crate::store::channel_status(&self.intake.db, id).await?;
        match status {
            None => return Ok(Seen::UnknownChannel),
            Some(Some(s)) if claimed.flagged && s == crate::store::TokenStatus::ReauthorizationRequired.as_str() => {
                return Ok(Seen::AlreadyFlagged);
            }
            Some(_) => {}
        }
        let decision = self.intake.report(channel_id, &chatwoot_counted(claimed.count), None).await?;
        if decision != Decision::AlreadyReplaced {
            return Ok(Seen::Reported(decision));
        }
        self.commands(1);
        let forgotten = claim::forget(&mut self.intake.redis.clone(), &self.keys, channel_id, claimed.count).await?;
        Ok(if forgotten { Seen::Forgotten } else { Seen::Reported(decision) })
    }

    async fn report_lapsed(&self, channel_id: i64) -> Result<(), WatchError> {
        let mut redis = self.intake.redis.clone();
        self.commands(1);
        let flags = crate::flags::read(&mut redis, &self.keys, channel_id).await?;
        if flags.authorization_error_count > 0 {
            let claimed =
                claim::Claimed { count: flags.authorization_error_count, flagged: flags.reauthorization_required };
            self.report(channel_id, claimed).await?;
        } else {
            self.commands(1);
            claim::settle(&mut redis, &self.keys, channel_id).await?;
        }
        Ok(())
    }
}

impl CounterWatcher {
    pub fn new(intake: Intake, metrics: Metrics) -> Self {
        let keys = RedisKeys::of(&intake.config);
        Self { observer: Observer { intake, keys, metrics }, sweep: sweep::Sweep::default() }
    }

    /// How increments can reach us on this Redis now.
    pub async fn mode(&self) -> Mode {
        self.observer.commands(1);
        match listen::notifications_on(&mut self.observer.intake.redis.clone()).await {
            Some(true) => Mode::Notified,
            _ => Mode::Swept,
        }
    }

    /// Claims the channel's increment, if there is one nobody accounted for, and reports it.
    pub async fn observe(&self, channel_id: i64) -> Result<Option<Seen>, WatchError> {
        self.observer.observe(channel_id).await
    }

    /// Reads every channel's count once, reports the increments nobody accounted for, and takes
    /// over claims whose replica died before reporting them.
    pub async fn sweep_once(&mut self) -> Result<Pass, WatchError> {
        let o = self.observer.clone();
        let mut redis = o.intake.redis.clone();
        let (moved, pass) = self.sweep.moved(&o.intake.db, &mut redis, &o.keys).await?;
        o.commands(pass.commands);
        let results: Vec<_> = futures::stream::iter(moved)
            .map(|(channel_id, count)| {
                let o = &o;
                async move { (channel_id, count, o.observe(channel_id).await) }
            })
            .buffer_unordered(CONCURRENT_REPORTS)
            .collect()
            .await;
        for (channel_id, count, result) in results {
            match result {
                Ok(_) => self.sweep.remember(channel_id, count),
                // Not remembered: the next pass tries again (a claim made stays until its lease lapses).
                Err(e) => warn!(channel.id = channel_id, error = %e, "could not report Chatwoot's count; retrying"),
            }
        }
        o.commands(1);
        for channel_id in claim::reclaim(&mut redis, &o.keys, RECLAIM_PER_PASS).await? {
            if let Err(e) = o.report_lapsed(channel_id).await {
                warn!(channel.id = channel_id, error = %e, "could not report a lapsed claim; retrying");
            }
        }
        o.metrics.watcher_sweeps.inc();
        Ok(pass)
    }

    /// Watches until `shutdown`, in whichever mode Redis allows, through Redis restarts.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = crate::redis_ops::reconnect_backoff();
        loop {
            let mode = self.mode().await;
            for m in [Mode::Notified, Mode::Swept] {
                let label = crate::metrics::ModeLabel { mode: m.as_str().into() };
                self.observer.metrics.watcher_mode.get_or_create(&label).set(i64::from(m == mode));
            }
            info!(
                mode = mode.as_str(),
                interval_ms = self.interval().as_millis() as u64,
                "watching Chatwoot's failure counter"
            );
            let result = match mode {
                Mode::Notified => self.run_notified(&shutdown).await,
                Mode::Swept => self.run_swept(&shutdown).await,
            };
            if shutdown.is_cancelled() {
                return;
            }
            match result {
                Ok(()) => backoff = crate::redis_ops::reconnect_backoff(),
                Err(e) => {
                    let delay = backoff.next().unwrap_or(Duration::from_secs(5));
                    warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "the counter watcher lost Redis or Postgres; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    fn interval(&self) -> Duration {
        self.observer.intake.config.counter_watch_interval
    }

    /// Returns `Ok` when notifications were turned on (the caller switches), `Err` when a store failed.
    async fn run_swept(&mut self, shutdown: &CancellationToken) -> Result<(), WatchError> {
        let mut checked = Instant::now();
        loop {
            self.sweep_once().await?;
            if checked.elapsed() >= MODE_RECHECK {
                checked = Instant::now();
                if self.mode().await == Mode::Notified {
                    return Ok(());
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.interval()) => {}
            }
        }
    }

    /// Returns `Ok` when notifications were turned off, `Err` when the subscription or a store
    /// failed; either way the caller starts over.
    async fn run_notified(&mut self, shutdown: &CancellationToken) -> Result<(), WatchError> {
        let events = listen::subscribe(&self.observer.intake.config, &self.observer.keys).await?;
        let mut events = std::pin::pin!(events);
        // Whatever changed while nothing was subscribed was not heard.
        self.sweep_once().await?;
        let mut safety = tokio::time::interval_at(tokio::time::Instant::now() + MODE_RECHECK, MODE_RECHECK);
        let mut reporting = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return Ok(()),
                event = events.next(), if reporting.len() < CONCURRENT_REPORTS => {
                    let Some(channel_id) = event else { return Err(WatchError::SubscriptionLost) };
                    self.observer.metrics.watcher_events.inc();
                    let o = self.observer.clone();
                    reporting.spawn(async move {
                        if let Err(e) = o.observe(channel_id).await {
                            // The claim (if made) lapses and a sweep takes it over.
                            warn!(channel.id = channel_id, error = %e, "could not report Chatwoot's count; a sweep retries");
                        }
                    });
                }
                Some(_) = reporting.join_next(), if !reporting.is_empty() => {}
                _ = safety.tick() => {
                    self.sweep_once().await?;
                    if self.mode().await != Mode::Notified {
                        return Ok(());
                    }
                }
            }
        }
    }
}
