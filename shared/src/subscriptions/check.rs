//! The Graph side of a check: each page's `subscribed_apps` (one batch request for several pages),
//! then `POST subscribed_apps` with Chatwoot's fields for each page lacking this app's `messages`.

use std::time::Instant;

use futures::StreamExt;

use super::{Checked, SUBSCRIBE_CONCURRENCY, Target, delivers_messages};
use crate::{
    graph::{CHATWOOT_SUBSCRIBED_FIELDS, GraphError, MAX_BATCH, SubscribedApp},
    pipeline::Pipeline,
    secret::Secret,
};

impl Pipeline {
    /// The Graph side: one read per page (one batch request for several), then a subscribe call
    /// for each page whose subscriptions lack this app's `messages`.
    pub(super) async fn check(&self, targets: &[Target]) -> Vec<Checked> {
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
}
