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

mod check;
mod daily;
mod record;
mod retries;
mod rows;

use std::time::{Duration, Instant};

use tracing::warn;
use uuid::Uuid;

pub use daily::DAILY;
pub use retries::{BATCH as RETRY_BATCH, run_retries};

pub use crate::store::subscriptions::State;

use crate::{
    graph::{GraphError, SubscribedApp},
    job::{Reason, RefreshJob},
    pipeline::Pipeline,
    secret::Secret,
    store,
};

/// How long a check under way keeps others off its row: well above two Graph calls'
/// `FB_HTTP_TIMEOUT_SECS`.
pub const LEASE: Duration = Duration::from_secs(120);

/// Subscribe calls in flight at once for one batch.
const SUBSCRIBE_CONCURRENCY: usize = 8;

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
    /// One target per readable channel, with the job that checks it (rows not readable have no
    /// token to ask with; their own jobs report them).
    fn of_jobs<'a>(channels: Vec<store::Loaded>, jobs: impl Iterator<Item = &'a RefreshJob> + Clone) -> Vec<Self> {
        channels
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|c| {
                let job = jobs.clone().find(|j| j.channel_id() == c.id)?;
                Some(Target {
                    channel_id: c.id,
                    page_id: c.page_id,
                    token: c.page_token,
                    job_id: job.job_id(),
                    reason: job.v1().reason,
                    attempts: 0,
                })
            })
            .collect()
    }

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
        // Gone or unreadable since: its own next job reports it.
        let targets = Target::of_jobs(channels, jobs.iter().copied());
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::CHATWOOT_SUBSCRIBED_FIELDS;

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
