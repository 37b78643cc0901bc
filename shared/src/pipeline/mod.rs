//! One job's work: validate the page token; when Graph rejects it, find a new one through the user
//! token; write it; set or clear the flags; record the history. `process` is the whole step, so tests
//! call it directly and the apalis handler stays a thin adapter.

use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use sqlx::PgPool;
use tracing::{info, warn};

use crate::{
    encryption::Codec,
    flags,
    graph::{ErrorKind, GraphClient, GraphError, PageLookup, Usage},
    job::RefreshJob,
    keys::RedisKeys,
    locks,
    metrics::Metrics,
    pauses,
    retry::{RetryPolicy, at_after},
    secret::Secret,
    store::{self, Channel, FailureCount, StateUpdate, Step, TokenStatus, TokenWrite, UnreadableChannel},
};

mod journal;
mod outcome;
pub use journal::Journal;
pub use outcome::Outcome;

/// The channel lock's lifetime; renewed every third of it while the job runs.
pub const LOCK_TTL: Duration = Duration::from_secs(15);

/// How soon a job that found its channel locked by another job runs again.
pub const CHANNEL_BUSY_WAIT: Duration = Duration::from_secs(2);

/// A rate-limited call without an announced wait keeps away this long (the contract's 60 s).
pub const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Pipeline {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub graph: GraphClient,
    /// Every Redis key the pipeline touches (flags, pauses, locks, gates).
    pub keys: RedisKeys,
    pub threshold: u32,
    pub retry: RetryPolicy,
    pub metrics: Metrics,
    /// Usage percentage at which a page (or the app) is paused although the call succeeded.
    pub usage_threshold: u64,
    /// Webhook targets and the rest of the settings some steps need.
    pub config: std::sync::Arc<crate::config::Config>,
    /// Reads and writes the token columns (Rails envelopes when Chatwoot's keys are set).
    pub codec: Codec,
    /// Recent `/me/accounts` sweeps, shared by this process's jobs.
    pub sweeps: crate::sweeps::Sweeps,
}

impl Pipeline {
    /// The one way to build a pipeline: the worker, the producer's inline runs and the tests all
    /// get their Graph client, key names, policies and codec from the same `config`.
    pub fn new(
        db: PgPool,
        redis: ConnectionManager,
        config: std::sync::Arc<crate::config::Config>,
    ) -> Result<Self, GraphError> {
        Ok(Self {
            db,
            redis,
            graph: GraphClient::from_config(&config)?,
            keys: RedisKeys::of(&config),
            threshold: config.authorization_error_threshold,
            retry: config.retry.clone(),
            metrics: Metrics::default(),
            usage_threshold: config.rate_limit_usage_threshold,
            codec: config.codec(),
            sweeps: crate::sweeps::Sweeps::default(),
            config,
        })
    }
}

/// Postgres or Redis failed under us: nothing was decided, the job must run again.
#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The channel is another job's now: come back shortly, without using an attempt (the job was
/// never allowed to finish) and without a state change (the other job writes it).
fn channel_busy(job: &RefreshJob) -> Outcome {
    let error =
        GraphError { kind: ErrorKind::RateLimited, ..GraphError::transport("another job is working on this channel") };
    Outcome::Retry { error, after: CHANNEL_BUSY_WAIT, next_attempt: job.v1().attempt }
}

/// The job's lock expired or was taken while it ran: what it saw may be stale, so it decides
/// nothing and runs again, like a job that found the channel busy.
fn lock_lost(job: &RefreshJob) -> Outcome {
    let error = GraphError { kind: ErrorKind::RateLimited, ..GraphError::transport("lost the channel lock") };
    Outcome::Retry { error, after: CHANNEL_BUSY_WAIT, next_attempt: job.v1().attempt }
}

impl Pipeline {
    /// The whole step: [`Pipeline::run_job`], then, when it wrote a new token, the page's webhook
    /// subscription check (`shared::subscriptions`), which cannot touch the outcome.
    pub async fn process(&self, job: &RefreshJob) -> Result<Outcome, InfraError> {
        let outcome = self.run_job(job).await;
        if let Ok(Outcome::Refreshed) = outcome {
            self.after_refreshes(&[job]).await;
        }
        outcome
    }

    /// The job without what follows a token write: for a caller that reports the outcome first
    /// and then calls [`Pipeline::after_refreshes`] (the worker), so nobody waits on the check.
    pub async fn run_job(&self, job: &RefreshJob) -> Result<Outcome, InfraError> {
        let outcome = self.process_locked(job).await;
        Metrics::count(&self.metrics.jobs, outcome.as_ref().map_or("store_error", Outcome::name));
        outcome
    }

    /// Runs the job under the channel's lock; a job that finds the channel busy comes back shortly,
    /// without using an attempt.
    async fn process_locked(&self, job: &RefreshJob) -> Result<Outcome, InfraError> {
        let mut redis = self.redis.clone();
        let keys = self.keys.clone();
        if !locks::acquire(&mut redis, &keys, job.channel_id(), job.job_id(), LOCK_TTL).await? {
            return Ok(channel_busy(job));
        }
        let renew = async {
            let mut redis = self.redis.clone();
            loop {
                tokio::time::sleep(LOCK_TTL / 3).await;
                match locks::renew(&mut redis, &keys, job.channel_id(), job.job_id(), LOCK_TTL).await {
                    Ok(true) => {}
                    // Another job may be working on the channel now: stop, so that two jobs do not
                    // decide about one channel from two different readings.
                    Ok(false) => return,
                    // Not known to be lost; the count checks the lock itself in any case.
                    Err(e) => warn!(error = %e, "could not renew the channel lock"),
                }
            }
        };
        let outcome = tokio::select! {
            outcome = self.process_inner(job) => outcome,
            () = renew => {
                warn!(channel.id = job.channel_id(), "lost the channel lock mid-job; it runs again shortly");
                Ok(lock_lost(job))
            }
        };
        if let Err(e) = locks::release(&mut redis, &keys, job.channel_id(), job.job_id()).await {
            // It expires on its own.
            warn!(error = %e, "could not release the channel lock");
        }
        outcome
    }

    async fn process_inner(&self, job: &RefreshJob) -> Result<Outcome, InfraError> {
        let mut journal = Journal::new(job);
        let outcome = self.run_one(job, &mut journal).await?;
        // Runs that settle without a state write (superseded, lock lost) still keep their history.
        self.flush(&mut journal).await?;
        Ok(outcome)
    }

    async fn run_one(&self, job: &RefreshJob, journal: &mut Journal) -> Result<Outcome, InfraError> {
        let channel = match store::load_channel(&self.db, &self.codec, job.channel_id()).await? {
            None => {
                warn!(channel.id = job.channel_id(), "refresh job for a channel that no longer exists; dropped");
                return Ok(Outcome::ChannelMissing);
            }
            Some(Err(unreadable)) => return self.undecryptable(job, &unreadable).await,
            Some(Ok(channel)) => channel,
        };
        if let Some(wait) = pauses::remaining(&mut self.redis.clone(), &self.keys, &channel.page_id).await? {
            // Calling a limited page extends its limit; come back when Graph said we may.
            let error =
                GraphError { kind: ErrorKind::RateLimited, ..GraphError::transport("rate-limit pause in force") };
            return self.retry_later(job, journal, &channel, error, Some(wait)).await;
        }

        let started = Instant::now();
        let validated = match self.graph.validate_page(&channel.page_id, &channel.page_token).await {
            // A token that answers may still lack what the reported send needed.
            Ok(info) => match self.check_needs(job, &channel.page_token).await {
                Ok(()) => Ok(info),
                Err(e) => {
                    self.pause_if_near_limit(&channel, info.usage).await?;
                    Err(e)
                }
            },
            Err(e) => Err(e),
        };
        let latency = started.elapsed();
        self.metrics.observe("validate", latency.as_secs_f64());
        match validated {
            Ok(info) => {
                self.record_validation(journal, &channel, None, latency);
                self.pause_if_near_limit(&channel, info.usage).await?;
                self.succeed(journal, &channel, None).await
            }
            Err(error) => {
                self.record_validation(journal, &channel, Some(&error), latency);
                if error.kind.is_confirmed_failure() {
                    self.refresh(job, journal, &channel).await
                } else {
                    self.not_settled(job, journal, &channel, error).await
                }
            }
        }
    }

    /// Validates the stored page token now, without refreshing (the API's `?check=true`). A success
    /// is a success (flags cleared, state healthy); a rejection is recorded on the state but not
    /// counted, since only a failed refresh confirms that a person must act. `None` when the
    /// channel is gone; `Some(Err)` carries what Graph said.
    pub async fn validate_only(&self, job: &RefreshJob) -> Result<Option<Result<(), GraphError>>, InfraError> {
        let channel = match store::load_channel(&self.db, &self.codec, job.channel_id()).await? {
            None => return Ok(None),
            Some(Err(unreadable)) => {
                self.undecryptable(job, &unreadable).await?;
                return Ok(Some(Err(undecryptable_error(&unreadable))));
            }
            Some(Ok(channel)) => channel,
        };
        if let Some(wait) = pauses::remaining(&mut self.redis.clone(), &self.keys, &channel.page_id).await? {
            let error = GraphError {
                kind: ErrorKind::RateLimited,
                retry_after: Some(self.config.cap_wait(wait)),
                ..GraphError::transport("rate-limit pause in force")
            };
            return Ok(Some(Err(error)));
        }
        let started = Instant::now();
        let validated = self.graph.validate_page(&channel.page_id, &channel.page_token).await;
        let latency = started.elapsed();
        self.metrics.observe("validate", latency.as_secs_f64());
        let mut journal = Journal::new(job);
        match validated {
            Ok(info) => {
                self.record_validation(&mut journal, &channel, None, latency);
                self.pause_if_near_limit(&channel, info.usage).await?;
                self.succeed(&mut journal, &channel, None).await?;
                Ok(Some(Ok(())))
            }
            Err(error) => {
                self.record_validation(&mut journal, &channel, Some(&error), latency);
                self.flush(&mut journal).await?;
                // A check on demand is a call like any other: once limited, neither the next check
                // nor a worker may call the page (or the app) before Graph allows.
                if error.kind == ErrorKind::RateLimited {
                    self.pause_for(&channel, &error).await?;
                }
                if error.kind.is_confirmed_failure() {
                    store::record_rejection(&self.db, channel.id, &error).await?;
                }
                Ok(Some(Err(error)))
            }
        }
    }

    /// Graph counts calls made while limited, so stop before it refuses: at the usage threshold,
    /// pause the whole app for 60 s (`X-App-Usage` announces no time), and the page for its
    /// announced time (capped) or 60 s.
    pub(crate) async fn pause_if_near_limit(&self, channel: &Channel, u: Usage) -> Result<(), InfraError> {
        let mut redis = self.redis.clone();
        if u.app_pct.is_some_and(|p| p >= self.usage_threshold) {
            warn!(usage = u.app_pct, "app usage at the threshold; pausing Graph calls for the app");
            pauses::pause(&mut redis, &self.keys, &channel.page_id, true, DEFAULT_RATE_LIMIT_WAIT).await?;
        }
        if u.page_pct.is_some_and(|p| p >= self.usage_threshold) {
            warn!(usage = u.page_pct, page.id = %channel.page_id, "page usage at the threshold; pausing calls for the page");
            pauses::pause(&mut redis, &self.keys, &channel.page_id, false, self.announced(u.regain)).await?;
        }
        Ok(())
    }

    /// Keeps every worker away from what Graph limited: the whole app for 60 s at a time (an
    /// app-level limit announces no time), else the page for its announced wait. Returns the wait.
    async fn pause_for(&self, channel: &Channel, error: &GraphError) -> Result<Duration, InfraError> {
        self.pause_page_for(&channel.page_id, error).await
    }

    pub(crate) async fn pause_page_for(&self, page_id: &str, error: &GraphError) -> Result<Duration, InfraError> {
        let wait = if error.app_level { DEFAULT_RATE_LIMIT_WAIT } else { self.announced(error.retry_after) };
        pauses::pause(&mut self.redis.clone(), &self.keys, page_id, error.app_level, wait).await?;
        Ok(wait)
    }

    /// A wait Graph announced (or a pause's remaining time), at most `RATE_LIMIT_MAX_WAIT_SECS`;
    /// 60 s when nothing was announced.
    pub(crate) fn announced(&self, wait: Option<Duration>) -> Duration {
        self.config.cap_wait(wait.unwrap_or(DEFAULT_RATE_LIMIT_WAIT))
    }

    async fn refresh(&self, job: &RefreshJob, journal: &mut Journal, channel: &Channel) -> Result<Outcome, InfraError> {
        let started = Instant::now();
        let found = self.find_and_check(job, channel).await;
        self.refresh_found(job, journal, channel, found, started.elapsed()).await
    }

    /// Settles a refresh once the user token's answer about the page is known (and its new token
    /// checked): writes the token or counts the failure. Shared by single jobs and batch sweeps.
    pub(crate) async fn refresh_found(
        &self,
        job: &RefreshJob,
        journal: &mut Journal,
        channel: &Channel,
        found: Result<Secret, GraphError>,
        latency: Duration,
    ) -> Result<Outcome, InfraError> {
        self.metrics.observe("refresh", latency.as_secs_f64());
        Metrics::count(&self.metrics.refreshes, found.as_ref().map_or_else(|e| e.kind.as_str(), |_| "ok"));
        if let Err(e) = &found {
            self.metrics.graph_error(e.code);
        }
        let token = match found {
            Ok(token) => token,
            Err(error) => {
                warn!(
                    channel.id = channel.id,
                    error.kind = error.kind.as_str(),
                    error.code = error.code,
                    "Failed to refresh Facebook token for page {}",
                    channel.page_id
                );
                journal.push(Step::Refresh, error.kind.as_str(), latency, Some(&error));
                return if error.kind.is_confirmed_failure() {
                    self.confirmed_failure(job, journal, channel, error).await
                } else {
                    self.not_settled(job, journal, channel, error).await
                };
            }
        };
        self.succeed(journal, channel, Some((&token, latency))).await
    }

    /// The user token's view of the page, and a check that the token it gives really works (the
    /// same dead token handed back would otherwise count as a refresh).
    async fn find_and_check(&self, job: &RefreshJob, channel: &Channel) -> Result<Secret, GraphError> {
        let (lookup, shared) = self.sweeps.find(&self.graph, &channel.user_token, &channel.page_id).await?;
        let token = match self.check_found(channel, lookup).await {
            // Another job's sweep may be older than this failure: only a sweep of our own may
            // confirm it.
            Err(_) if shared => {
                let lookup = self.sweeps.fresh(&self.graph, &channel.user_token, &channel.page_id).await?;
                self.check_found(channel, lookup).await?
            }
            checked => checked?,
        };
        // Held to what the old token failed at, else a token that cannot send counts as a refresh.
        self.check_needs(job, &token).await?;
        Ok(token)
    }

    /// The token the user's pages gave, checked to really work.
    pub(crate) async fn check_found(&self, channel: &Channel, lookup: PageLookup) -> Result<Secret, GraphError> {
        let token = match lookup {
            PageLookup::Found(token) => token,
            PageLookup::NotManaged => return Err(GraphError::page_not_managed(&channel.page_id)),
        };
        self.graph.validate_page(&channel.page_id, &token).await?;
        Ok(token)
    }

    /// The token works: its state (and, after a refresh, the new token) commit with the run's
    /// history, then the flags are cleared. A token write that finds a newer token keeps that one
    /// and re-checks instead.
    pub(crate) async fn succeed(
        &self,
        journal: &mut Journal,
        channel: &Channel,
        new_token: Option<(&Secret, Duration)>,
    ) -> Result<Outcome, InfraError> {
        let refreshed = new_token.is_some();
        let update = if refreshed {
            StateUpdate { status: TokenStatus::Refreshed, refreshed, ..StateUpdate::healthy() }
        } else {
            StateUpdate::healthy()
        };
        if self.settle(journal, channel, update, new_token, None).await? == TokenWrite::Superseded {
            return Ok(Outcome::Superseded);
        }
        flags::clear(&mut self.redis.clone(), &self.keys, channel.owner()).await?;
        Ok(if refreshed { Outcome::Refreshed } else { Outcome::Healthy })
    }

    async fn confirmed_failure(
        &self,
        job: &RefreshJob,
        journal: &mut Journal,
        channel: &Channel,
        error: GraphError,
    ) -> Result<Outcome, InfraError> {
        if !store::is_unchanged(&self.db, channel).await? {
            // A person reconnected (or another job wrote a token) since this job read the row:
            // the failure was the old token's. Look again with the new one.
            info!(channel.id = channel.id, "the channel changed during this job; re-checking instead of counting");
            return Ok(Outcome::Superseded);
        }
        let lock = self.keys.lock(channel.id);
        let Some(counted) = flags::count_confirmed_failure(
            &mut self.redis.clone(),
            &self.keys,
            channel.owner(),
            job.job_id(),
            self.threshold,
            &lock,
        )
        .await?
        else {
            warn!(channel.id = channel.id, "lost the channel lock before counting; it runs again shortly");
            return Ok(lock_lost(job));
        };
        // Below the threshold, look again soon rather than at the next cycle: a page that is really
        // dead gets its flag within minutes, a one-off rejection gets a second chance.
        let recheck_after = (!counted.flagged).then(|| self.retry.delay(1, None).unwrap_or(self.retry.base));
        let update = StateUpdate {
            status: if counted.flagged { TokenStatus::ReauthorizationRequired } else { TokenStatus::Retrying },
            token_valid: Some(false),
            checked: true,
            refreshed: false,
            error: Some(&error),
            failures: if counted.newly_counted { FailureCount::Increment } else { FailureCount::Keep },
            next_attempt_at: recheck_after.map(at_after),
        };
        self.save_state(journal, channel, update).await?;
        Ok(Outcome::ConfirmedFailure { counted, error, recheck_after })
    }

    /// Transient, rate-limited or refused requests: never evidence against the token, so the
    /// flags stay as they are and the job runs again later.
    pub(crate) async fn not_settled(
        &self,
        job: &RefreshJob,
        journal: &mut Journal,
        channel: &Channel,
        error: GraphError,
    ) -> Result<Outcome, InfraError> {
        if error.kind == ErrorKind::RateLimited {
            let wait = self.pause_for(channel, &error).await?;
            return self.retry_later(job, journal, channel, error, Some(wait)).await;
        }
        self.retry_later(job, journal, channel, error, None).await
    }

    pub(crate) async fn retry_later(
        &self,
        job: &RefreshJob,
        journal: &mut Journal,
        channel: &Channel,
        error: GraphError,
        wait: Option<Duration>,
    ) -> Result<Outcome, InfraError> {
        let attempt = job.v1().attempt;
        // Waiting out a rate limit is not a failed attempt: the job was never allowed to try.
        let (delay, next_attempt) = if error.kind == ErrorKind::RateLimited {
            // `wait` may be a pause's remaining time, set by an older version without the cap.
            (self.announced(wait), attempt)
        } else {
            match self.retry.delay(attempt, wait) {
                Some(d) => (d, attempt + 1),
                None => return self.give_up(journal, channel, error).await,
            }
        };
        let update = StateUpdate {
            status: TokenStatus::Retrying,
            token_valid: None,
            checked: false,
            refreshed: false,
            error: Some(&error),
            failures: FailureCount::Keep,
            next_attempt_at: Some(at_after(delay)),
        };
        self.save_state(journal, channel, update).await?;
        Ok(Outcome::Retry { error, after: delay, next_attempt })
    }

    /// The job's own copy in the journal is the one dead-lettered.
    async fn give_up(
        &self,
        journal: &mut Journal,
        channel: &Channel,
        error: GraphError,
    ) -> Result<Outcome, InfraError> {
        warn!(channel.id = channel.id, page.id = %channel.page_id, error = %error, "giving up after the last attempt; job dead-lettered");
        self.settle(journal, channel, StateUpdate::undecided(&error), None, Some(&error)).await?;
        Ok(Outcome::GaveUp { error })
    }

    /// Settles a channel whose tokens cannot be decrypted: no Graph call, no count, no flag key;
    /// the state says why, and the process says once, loudly, which variables to set.
    pub(crate) async fn undecryptable(
        &self,
        job: &RefreshJob,
        channel: &UnreadableChannel,
    ) -> Result<Outcome, InfraError> {
        report_undecryptable(channel);
        let error = undecryptable_error(channel);
        let item = store::Settlement::new(job, channel.account_id, &channel.page_id, StateUpdate::undecided(&error));
        store::settle(&self.db, &self.codec, &self.config, std::slice::from_ref(&item), None).await?;
        Ok(Outcome::Undecryptable { error })
    }

    async fn save_state(
        &self,
        journal: &mut Journal,
        channel: &Channel,
        update: StateUpdate<'_>,
    ) -> Result<(), InfraError> {
        self.settle(journal, channel, update, None, None).await?;
        Ok(())
    }

    /// Settles one channel as a batch of one (`store::settle`): the new token behind the
    /// forward-only guard, the state, the run's history, the dead letter and the webhook outbox row
    /// in one transaction. `Superseded`: a newer token was there; only the history was written.
    async fn settle(
        &self,
        journal: &mut Journal,
        channel: &Channel,
        update: StateUpdate<'_>,
        new_token: Option<(&Secret, Duration)>,
        dead: Option<&GraphError>,
    ) -> Result<TokenWrite, InfraError> {
        let settled = {
            let item = store::Settlement {
                new_token: new_token.map(|(token, latency)| store::NewToken { read: channel, token, latency }),
                events: journal.events(),
                dead,
                ..store::Settlement::new(journal.job(), channel.account_id, &channel.page_id, update)
            };
            store::settle(&self.db, &self.codec, &self.config, std::slice::from_ref(&item), None).await?
        };
        journal.clear();
        let written = settled.first().map_or(TokenWrite::Written, |s| s.token);
        if new_token.is_some() {
            // Said once committed: the runbook reads this line as "Chatwoot has the new token".
            match written {
                TokenWrite::Written => {
                    info!(
                        channel.id = channel.id,
                        "Successfully refreshed Facebook token for page {}", channel.page_id
                    );
                }
                TokenWrite::Superseded => info!(channel.id = channel.id, page.id = %channel.page_id,
                    "a newer token was written during this refresh; keeping it and re-checking"),
            }
        }
        Ok(written)
    }

    /// History of a run that wrote no state (one statement; nothing when there is none).
    pub(crate) async fn flush(&self, journal: &mut Journal) -> Result<(), InfraError> {
        if !journal.is_empty() {
            store::record_events(&self.db, &journal.events()).await?;
            journal.clear();
        }
        Ok(())
    }

    /// Counts a validation, records its event and, when it failed, logs the runbook line.
    pub(crate) fn record_validation(
        &self,
        journal: &mut Journal,
        channel: &Channel,
        error: Option<&GraphError>,
        latency: Duration,
    ) {
        Metrics::count(&self.metrics.validations, error.map_or("ok", |e| e.kind.as_str()));
        let Some(error) = error else { return journal.push(Step::Validate, "ok", latency, None) };
        self.metrics.graph_error(error.code);
        warn!(
            channel.id = channel.id,
            error.kind = error.kind.as_str(),
            "Facebook token validation failed for page {}: {}",
            channel.page_id,
            error.message
        );
        journal.push(Step::Validate, error.kind.as_str(), latency, Some(error));
    }
}

/// What an undecryptable channel's status carries: a configuration fault, never evidence against
/// the token.
pub fn undecryptable_error(channel: &UnreadableChannel) -> GraphError {
    GraphError { kind: ErrorKind::Invalid, ..GraphError::transport(channel.message()) }
}

/// One error line per process names the variables; every later channel is a debug line (a
/// database of 100,000 encrypted rows and no keys would otherwise log 100,000 errors a cycle).
fn report_undecryptable(channel: &UnreadableChannel) {
    static REPORTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !REPORTED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::error!(channel.id = channel.id, page.id = %channel.page_id, cause = %channel.cause, "{}", store::UNDECRYPTABLE_LOG);
    } else {
        tracing::debug!(channel.id = channel.id, cause = %channel.cause, "channel tokens cannot be decrypted");
    }
}
