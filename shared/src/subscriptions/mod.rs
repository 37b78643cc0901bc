//! Webhook subscriptions: a page sends its messages to an app only while the app is subscribed to
//! it (`/{page_id}/subscribed_apps`). Chatwoot subscribes a page when Rails creates its channel
//! (`Channel::FacebookPage#subscribe`); a token written by this system bypasses Rails, and a page
//! can lose its subscription on its own (someone removes the app in Meta's tools, the app is
//! reinstalled), so this module makes sure FB_APP_ID's app still gets the page's `messages`.
//!
//! # When
//! - After a new page token is written (a refresh, or a proactive exchange's renewed pages): with
//!   the new token, once the job has settled and released the channel, and in the worker once its
//!   outcome is reported, so no waiter waits on it ([`Pipeline::after_refreshes`],
//!   [`Pipeline::after_token_writes`]).
//! - Once a day per channel after a job found it healthy ([`Pipeline::daily_subscription_check`]),
//!   gated by a Redis `SET NX EX` key like the proactive check's.
//!
//! # What
//! `GET /{page_id}/subscribed_apps` with the page token; when FB_APP_ID's app is absent, or present
//! without `messages`, `POST /{page_id}/subscribed_apps` with Chatwoot's field list
//! ([`CHATWOOT_SUBSCRIBED_FIELDS`]). Already subscribed: no POST. FB_APP_ID unknown: no call, the
//! state says `unknown` and why. Several channels at once (a batch) are read with one Graph batch
//! request of up to 50 items.
//!
//! # Never at the token's expense
//! Every step here runs after the token write, the flags and the job's state are settled, and
//! nothing it meets (a Graph error, a store error) is returned to the job: a refresh stays
//! `refreshed`. A failure is recorded on the channel's row (`fb_page_subscriptions`), as an event
//! (`fb_token_events`, step `subscribe`) and in the metrics, and retried.
//!
//! # Retries
//! A failed check or subscription leaves `retry_at` on the row (the `RETRY_*` backoff, `backon`'s
//! exponential schedule with jitter, honouring an announced wait). Each worker runs
//! [`run_retries`], which claims due rows with `FOR UPDATE SKIP LOCKED` and leases them while it
//! calls Graph ([`rows::claim_due`]), so replicas never retry one page twice and a retry survives a
//! restart. A check under way is leased the same way before its first call, so a crash in the
//! middle comes back as a retry. After `RETRY_MAX_ATTEMPTS` attempts the row keeps its state and
//! error and the daily check takes over.

mod daily;
mod retries;
mod rows;

use std::time::{Duration, Instant};

use futures::StreamExt;
use tracing::{info, warn};
use uuid::Uuid;

pub use daily::{DAILY, gate_key};
pub use retries::{BATCH as RETRY_BATCH, run_retries};

use crate::{
    graph::{CHATWOOT_SUBSCRIBED_FIELDS, ErrorKind, GraphError, MAX_BATCH, SubscribedApp},
    job::{Reason, RefreshJob},
    metrics::Metrics,
    pipeline::{DEFAULT_RATE_LIMIT_WAIT, InfraError, Pipeline},
    retry::at_after,
    secret::Secret,
    store::{self, Event, Step},
};

/// How long a check under way keeps others off its row: well above two Graph calls'
/// `FB_HTTP_TIMEOUT_SECS`.
pub const LEASE: Duration = Duration::from_secs(120);

/// Subscribe calls in flight at once for one batch.
const SUBSCRIBE_CONCURRENCY: usize = 8;

/// A channel's subscription as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// FB_APP_ID's app receives the page's messages.
    Subscribed,
    /// It did not; we subscribed it again with Chatwoot's fields.
    Resubscribed,
    /// It does not, and subscribing it failed (a retry is due, or the daily check will try).
    Missing,
    /// Reading the page's subscriptions failed: not known.
    Failed,
    /// Never checked, or FB_APP_ID is not known so "this app" cannot be told.
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribed => "subscribed",
            Self::Resubscribed => "resubscribed",
            Self::Missing => "missing",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// What one check found and did.
#[derive(Debug, Clone, PartialEq)]
pub enum Checked {
    Subscribed,
    Resubscribed,
    /// The app was missing and `POST subscribed_apps` failed.
    SubscribeFailed(GraphError),
    /// `GET subscribed_apps` failed.
    CheckFailed(GraphError),
    /// FB_APP_ID is not known: nothing was called.
    NoAppId,
}

impl Checked {
    /// The metric's `outcome` label.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Subscribed => "subscribed",
            Self::Resubscribed => "resubscribed",
            Self::SubscribeFailed(_) => "subscribe_failed",
            Self::CheckFailed(_) => "check_failed",
            Self::NoAppId => "no_app_id",
        }
    }

    pub fn state(&self) -> State {
        match self {
            Self::Subscribed => State::Subscribed,
            Self::Resubscribed => State::Resubscribed,
            Self::SubscribeFailed(_) => State::Missing,
            Self::CheckFailed(_) => State::Failed,
            Self::NoAppId => State::Unknown,
        }
    }

    fn error(&self) -> Option<&GraphError> {
        match self {
            Self::SubscribeFailed(e) | Self::CheckFailed(e) => Some(e),
            _ => None,
        }
    }
}

/// Whether the page's apps include `app_id` receiving `messages`: the one question asked.
pub fn delivers_messages(apps: &[SubscribedApp], app_id: &str) -> bool {
    apps.iter().any(|a| a.delivers_messages_to(app_id))
}

/// One page to check, with the token to check it with and the job it is done for.
#[derive(Debug, Clone)]
pub struct Target {
    pub channel_id: i64,
    pub page_id: String,
    pub token: Secret,
    pub job_id: Uuid,
    pub reason: Reason,
    /// Failed attempts before this one (0 unless this is a retry).
    pub attempts: u32,
}

impl Target {
    fn key(&self) -> (i64, Uuid, Reason) {
        (self.channel_id, self.job_id, self.reason)
    }
}

/// What a check was started by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    TokenWrite,
    Daily,
    Retry,
}

fn no_app_id() -> GraphError {
    GraphError {
        kind: ErrorKind::Invalid,
        ..GraphError::transport(
            "FB_APP_ID is not set (nor in Chatwoot's installation_configs): cannot tell whether this app is subscribed",
        )
    }
}

impl Pipeline {
    /// After new page tokens were written: checks each page with its new token and subscribes the
    /// ones that lost this app. Runs after the job settled; never fails it (errors are logged and
    /// recorded, and retried).
    pub async fn after_token_writes(&self, targets: &[Target]) {
        if targets.is_empty() {
            return;
        }
        // A crash from here on leaves a row that comes due when the lease ends.
        let keys: Vec<_> = targets.iter().map(Target::key).collect();
        if let Err(e) = rows::lease(&self.db, &keys, LEASE).await {
            warn!(error = %e, "could not record the subscription check; the daily check will do it");
        }
        // Just checked with the new token: the daily check has nothing to add today.
        if let Err(e) = daily::mark_checked(self, targets).await {
            warn!(error = %e, "could not set the daily subscription gate");
        }
        self.check_and_record(targets, Trigger::TokenWrite).await;
    }

    /// After jobs refreshed their channels (each wrote a new page token): the new tokens, read back
    /// from the rows. Call it once the jobs settled and released their channels.
    pub async fn after_refreshes(&self, jobs: &[&RefreshJob]) {
        let ids: Vec<i64> = jobs.iter().map(|j| j.channel_id()).collect();
        let channels = match store::load_channels(&self.db, &self.codec, &ids).await {
            Ok(channels) => channels,
            Err(e) => {
                warn!(error = %e, channels = ids.len(), "could not load channels to check their subscriptions");
                return;
            }
        };
        let targets: Vec<Target> = channels
            .into_iter()
            // Gone or unreadable since: its own next job reports it.
            .filter_map(Result::ok)
            .filter_map(|c| {
                let job = jobs.iter().find(|j| j.channel_id() == c.id)?;
                Some(Target {
                    channel_id: c.id,
                    page_id: c.page_id,
                    token: c.page_token,
                    job_id: job.job_id(),
                    reason: job.v1().reason,
                    attempts: 0,
                })
            })
            .collect();
        self.after_token_writes(&targets).await;
    }

    /// Checks, subscribes where missing, records each verdict; returns them in order.
    async fn check_and_record(&self, targets: &[Target], trigger: Trigger) -> Vec<Checked> {
        let started = Instant::now();
        let checked = self.check(targets).await;
        let per_item = started.elapsed() / u32::try_from(targets.len()).unwrap_or(1).max(1);
        if let Err(e) = self.record(targets, &checked, trigger, per_item).await {
            warn!(error = %e, "could not record subscription checks");
        }
        checked
    }

    /// The Graph side: one read per page (one batch request for several), then a subscribe call
    /// for each page whose subscriptions lack this app's `messages`.
    async fn check(&self, targets: &[Target]) -> Vec<Checked> {
        let Some(app_id) = self.graph.settings().app_id.clone() else {
            return targets.iter().map(|_| Checked::NoAppId).collect();
        };
        let mut reads: Vec<Result<Vec<SubscribedApp>, GraphError>> = Vec::with_capacity(targets.len());
        let started = Instant::now();
        if let [one] = targets {
            reads.push(self.graph.subscribed_apps(&one.page_id, &one.token).await);
            self.metrics.observe("subscribed_apps", started.elapsed().as_secs_f64());
        } else {
            for chunk in targets.chunks(MAX_BATCH) {
                let items: Vec<(String, Secret)> = chunk.iter().map(|t| (t.page_id.clone(), t.token.clone())).collect();
                match self.graph.subscribed_apps_batch(&items).await {
                    Ok(answers) => reads.extend(answers),
                    Err(e) => reads.extend(chunk.iter().map(|_| Err(e.clone()))),
                }
            }
            self.metrics.observe("subscribed_apps_batch", started.elapsed().as_secs_f64());
        }
        // Collected first: a stream over a closure's futures is not `Send` for every lifetime.
        let mut steps = Vec::with_capacity(targets.len());
        for (target, read) in targets.iter().zip(reads) {
            steps.push(self.settle_read(target, read, &app_id));
        }
        futures::stream::iter(steps).buffered(SUBSCRIBE_CONCURRENCY).collect().await
    }

    /// One page's read: subscribed already, or subscribed now (or not).
    async fn settle_read(
        &self,
        target: &Target,
        read: Result<Vec<SubscribedApp>, GraphError>,
        app_id: &str,
    ) -> Checked {
        match read {
            Err(e) => Checked::CheckFailed(e),
            Ok(apps) if delivers_messages(&apps, app_id) => Checked::Subscribed,
            Ok(_) => {
                let started = Instant::now();
                let done = self.graph.subscribe_app(&target.page_id, &target.token, &CHATWOOT_SUBSCRIBED_FIELDS).await;
                self.metrics.observe("subscribe_app", started.elapsed().as_secs_f64());
                match done {
                    Ok(()) => Checked::Resubscribed,
                    Err(e) => Checked::SubscribeFailed(e),
                }
            }
        }
    }

    /// Rows, events, logs and metrics for each verdict.
    async fn record(
        &self,
        targets: &[Target],
        checked: &[Checked],
        trigger: Trigger,
        latency: Duration,
    ) -> Result<(), InfraError> {
        let mut subscribed = Vec::new();
        for (target, verdict) in targets.iter().zip(checked) {
            Metrics::count(&self.metrics.subscription_checks, verdict.name());
            if let Some(e) = verdict.error() {
                self.metrics.graph_error(e.code);
            }
            match verdict {
                Checked::Subscribed => subscribed.push(target.key()),
                Checked::Resubscribed => {
                    info!(
                        channel.id = target.channel_id,
                        "Re-subscribed Facebook page {} to the app's webhooks", target.page_id
                    );
                    self.save_verdict(target, verdict, (0, None), latency).await?;
                }
                Checked::NoAppId => {
                    if trigger == Trigger::TokenWrite {
                        info!(channel.id = target.channel_id, page.id = %target.page_id, "FB_APP_ID is not known: the page's webhook subscription was not checked");
                    }
                    self.save_verdict(target, verdict, (0, None), latency).await?;
                }
                Checked::SubscribeFailed(e) | Checked::CheckFailed(e) => {
                    let (attempts, retry_at) = if e.kind == ErrorKind::RateLimited {
                        // Graph limited the page (or the app): every worker keeps away, and waiting
                        // it out is no failed attempt (as for token jobs).
                        let wait = self.pause_page_for(&target.page_id, e).await.unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
                        (target.attempts, Some(at_after(wait)))
                    } else {
                        let attempts = target.attempts.saturating_add(1);
                        (attempts, self.retry.delay(attempts, e.retry_after).map(at_after))
                    };
                    let what = if matches!(verdict, Checked::CheckFailed(_)) {
                        "Webhook subscription check"
                    } else {
                        "Webhook re-subscription"
                    };
                    match retry_at {
                        Some(_) => warn!(
                            channel.id = target.channel_id,
                            error.kind = e.kind.as_str(),
                            error.code = e.code,
                            attempt = attempts,
                            "{what} failed for page {}: {}; will retry",
                            target.page_id,
                            e.message
                        ),
                        None => warn!(
                            channel.id = target.channel_id,
                            error.kind = e.kind.as_str(),
                            error.code = e.code,
                            attempt = attempts,
                            "{what} failed for page {}: {}; no attempt left, the daily check takes over",
                            target.page_id,
                            e.message
                        ),
                    }
                    self.save_verdict(target, verdict, (attempts, retry_at), latency).await?;
                }
            }
        }
        rows::save_subscribed(&self.db, &subscribed).await?;
        Ok(())
    }

    async fn save_verdict(
        &self,
        target: &Target,
        verdict: &Checked,
        (attempts, retry_at): (u32, Option<chrono::DateTime<chrono::Utc>>),
        latency: Duration,
    ) -> Result<(), InfraError> {
        let error = match verdict {
            Checked::NoAppId => Some(no_app_id()),
            other => other.error().cloned(),
        };
        let row = rows::Verdict {
            state: verdict.state(),
            checked: matches!(verdict, Checked::Subscribed | Checked::Resubscribed | Checked::SubscribeFailed(_)),
            resubscribed: *verdict == Checked::Resubscribed,
            error: error.as_ref(),
            attempts,
            retry_at,
            job_id: target.job_id,
            reason: target.reason,
        };
        rows::save(&self.db, target.channel_id, &row).await?;
        // The history gets what an operator acts on: re-subscriptions and failures.
        let outcome = match verdict {
            Checked::Subscribed => return Ok(()),
            Checked::Resubscribed => "resubscribed",
            Checked::NoAppId => "no_app_id",
            Checked::SubscribeFailed(e) | Checked::CheckFailed(e) => e.kind.as_str(),
        };
        let event = Event {
            channel_id: target.channel_id,
            job_id: target.job_id,
            reason: target.reason,
            step: Step::Subscribe,
            outcome,
            graph_latency_ms: Some(i64::try_from(latency.as_millis()).unwrap_or(i64::MAX)),
            error: error.as_ref(),
        };
        store::record_event(&self.db, &event).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(id: &str, fields: &[&str]) -> SubscribedApp {
        SubscribedApp { id: id.into(), name: None, subscribed_fields: fields.iter().map(|f| (*f).to_owned()).collect() }
    }

    #[test]
    fn only_this_app_with_messages_counts() {
        assert!(delivers_messages(&[app("9", &["feed"]), app("1", &CHATWOOT_SUBSCRIBED_FIELDS)], "1"));
        assert!(!delivers_messages(&[app("9", &CHATWOOT_SUBSCRIBED_FIELDS)], "1"), "another app's");
        assert!(!delivers_messages(&[app("1", &["feed", "message_reads"])], "1"), "without messages");
        assert!(!delivers_messages(&[], "1"));
    }

    #[test]
    fn verdicts_map_to_states_and_outcomes() {
        let e = GraphError::transport("x");
        let rows = [
            (Checked::Subscribed, "subscribed", "subscribed"),
            (Checked::Resubscribed, "resubscribed", "resubscribed"),
            (Checked::SubscribeFailed(e.clone()), "missing", "subscribe_failed"),
            (Checked::CheckFailed(e), "failed", "check_failed"),
            (Checked::NoAppId, "unknown", "no_app_id"),
        ];
        for (checked, state, name) in rows {
            assert_eq!((checked.state().as_str(), checked.name()), (state, name));
        }
    }
}
