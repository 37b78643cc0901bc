//! What a check leaves behind: the channel's row (and its next retry), a `subscribe` event for
//! what an operator acts on, a log line, and the metrics.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::{Checked, Target, Trigger, rows};
use crate::{
    graph::{ErrorKind, GraphError},
    metrics::Metrics,
    pipeline::{DEFAULT_RATE_LIMIT_WAIT, InfraError, Pipeline},
    retry::at_after,
    store::{self, Event, Step},
};

fn no_app_id() -> GraphError {
    GraphError {
        kind: ErrorKind::Invalid,
        ..GraphError::transport(
            "FB_APP_ID is not set (nor in Chatwoot's installation_configs): cannot tell whether this app is subscribed",
        )
    }
}

impl Pipeline {
    /// Rows, events, logs and metrics for each verdict.
    pub(super) async fn record(
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
                    let then =
                        if retry_at.is_some() { "will retry" } else { "no attempt left, the daily check takes over" };
                    warn!(
                        channel.id = target.channel_id,
                        error.kind = e.kind.as_str(),
                        error.code = e.code,
                        attempt = attempts,
                        "{what} failed for page {}: {}; {then}",
                        target.page_id,
                        e.message
                    );
                    self.save_verdict(target, verdict, (attempts, retry_at), latency).await?;
                }
            }
        }
        rows::save_subscribed(&self.db, &subscribed).await?;
        Ok(())
    }

    pub(super) async fn save_verdict(
        &self,
        target: &Target,
        verdict: &Checked,
        (attempts, retry_at): (u32, Option<DateTime<Utc>>),
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
