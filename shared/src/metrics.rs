//! Prometheus metrics, one registry per process. Labels carry outcomes, codes and endpoints, never
//! a token or a page id (unbounded label sets would blow up the series count).

use std::sync::Arc;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    pub table: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub jobs: Family<OutcomeLabel, Counter>,
    pub validations: Family<OutcomeLabel, Counter>,
    pub refreshes: Family<OutcomeLabel, Counter>,
    pub graph_errors: Family<CodeLabel, Counter>,
    pub graph_duration: Family<EndpointLabel, Histogram>,
    /// Webhook deliveries: `delivered`, `failed` (retried later), `given_up`.
    pub webhooks: Family<OutcomeLabel, Counter>,
    /// Rows the retention task deleted, by table.
    pub retention_deleted: Family<TableLabel, Counter>,
    /// Webhook subscription checks: `subscribed`, `resubscribed`, `subscribe_failed`,
    /// `check_failed`, `no_app_id`.
    pub subscription_checks: Family<OutcomeLabel, Counter>,
    /// Set at scrape time from Postgres and Redis (`refresh_gauges`).
    pub channels: Family<StatusLabel, Gauge>,
    pub reauthorization_required: Gauge,
    pub queue: Family<StateLabel, Gauge>,
    /// Chatwoot's own increments of its failure counter, by what became of them.
    pub watcher_observations: Family<OutcomeLabel, Counter>,
    /// Full reads of every channel's count.
    pub watcher_sweeps: Counter,
    /// Keyspace notifications received for count keys.
    pub watcher_events: Counter,
    /// Every command the watcher sent, so its cost on Chatwoot's Redis is on the dashboard.
    pub watcher_redis_commands: Counter,
    /// 1 for the mode the watcher is in (`notified` or `swept`).
    pub watcher_mode: Family<ModeLabel, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("fb_token");
        let jobs = Family::<OutcomeLabel, Counter>::default();
        let validations = Family::<OutcomeLabel, Counter>::default();
        let refreshes = Family::<OutcomeLabel, Counter>::default();
        let graph_errors = Family::<CodeLabel, Counter>::default();
        let webhooks = Family::<OutcomeLabel, Counter>::default();
        let graph_duration = Family::<EndpointLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0])
        });
        registry.register("jobs", "Refresh jobs run, by outcome", jobs.clone());
        registry.register("validations", "Page token validations, by outcome", validations.clone());
        registry.register("refreshes", "Page token refreshes, by outcome", refreshes.clone());
        registry.register("graph_errors", "Graph API errors, by code", graph_errors.clone());
        registry.register(
            "graph_request_duration_seconds",
            "Graph API call duration, by endpoint",
            graph_duration.clone(),
        );
        registry.register("webhooks", "Webhook deliveries, by outcome", webhooks.clone());
        let retention_deleted = Family::<TableLabel, Counter>::default();
        registry.register(
            "retention_deleted_rows",
            "History rows deleted for being older than HISTORY_RETENTION_DAYS, by table",
            retention_deleted.clone(),
        );
        let subscription_checks = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "subscription_checks",
            "Checks that a page's webhooks still go to this app (subscribed_apps), by outcome",
            subscription_checks.clone(),
        );
        let channels = Family::<StatusLabel, Gauge>::default();
        let reauthorization_required = Gauge::default();
        let queue = Family::<StateLabel, Gauge>::default();
        registry.register("channels", "Facebook channels, by token status", channels.clone());
        registry.register(
            "channels_reauthorization_required",
            "Channels whose inbox needs a person to reconnect",
            reauthorization_required.clone(),
        );
        registry.register("queue_jobs", "Jobs in the queue, by state", queue.clone());
        let watcher_observations = Family::<OutcomeLabel, Counter>::default();
        let (watcher_sweeps, watcher_events, watcher_redis_commands) =
            (Counter::default(), Counter::default(), Counter::default());
        let watcher_mode = Family::<ModeLabel, Gauge>::default();
        registry.register(
            "watcher_observations",
            "Increments of Chatwoot's failure counter taken as send-failure reports, by outcome",
            watcher_observations.clone(),
        );
        registry.register("watcher_sweeps", "Reads of every channel's failure count", watcher_sweeps.clone());
        registry.register("watcher_events", "Keyspace notifications received for count keys", watcher_events.clone());
        registry.register(
            "watcher_redis_commands",
            "Redis commands the counter watcher sent",
            watcher_redis_commands.clone(),
        );
        registry.register("watcher_mode", "The counter watcher's mode (1 for the current one)", watcher_mode.clone());
        Self {
            registry: Arc::new(registry),
            jobs,
            validations,
            refreshes,
            graph_errors,
            graph_duration,
            webhooks,
            retention_deleted,
            subscription_checks,
            channels,
            reauthorization_required,
            queue,
            watcher_observations,
            watcher_sweeps,
            watcher_events,
            watcher_redis_commands,
            watcher_mode,
        }
    }
}

impl Metrics {
    pub fn count(family: &Family<OutcomeLabel, Counter>, outcome: &str) {
        family.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).inc();
    }

    pub fn graph_error(&self, code: Option<i64>) {
        self.graph_errors.get_or_create(&CodeLabel { code: code_label(code) }).inc();
    }

    pub fn retention_deleted(&self, table: &str, rows: u64) {
        self.retention_deleted.get_or_create(&TableLabel { table: table.to_owned() }).inc_by(rows);
    }

    pub fn observe(&self, endpoint: &str, seconds: f64) {
        self.graph_duration.get_or_create(&EndpointLabel { endpoint: endpoint.to_owned() }).observe(seconds);
    }
}

/// The `code` label: the codes the classification knows, else `other`. Graph (or whatever answers
/// in its place) can send any integer, and each new label value is a new series kept forever.
fn code_label(code: Option<i64>) -> String {
    match code {
        None => "none".to_owned(),
        Some(c @ (1 | 2 | 4 | 10 | 17 | 32 | 100 | 102 | 104 | 190 | 200..=299 | 341 | 613 | 80_000..=80_014)) => {
            c.to_string()
        }
        Some(_) => "other".to_owned(),
    }
}

pub fn render(metrics: &Metrics) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &metrics.registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_error_codes_are_a_bounded_label_set() {
        let metrics = Metrics::default();
        for code in [Some(190), Some(80_001), Some(230), None, Some(-1), Some(i64::MAX), Some(123_456_789), Some(3)] {
            metrics.graph_error(code);
        }
        let text = render(&metrics);
        for label in ["190", "80001", "230", "none"] {
            assert!(text.contains(&format!("fb_token_graph_errors_total{{code=\"{label}\"}} 1")), "{label}: {text}");
        }
        assert!(text.contains("fb_token_graph_errors_total{code=\"other\"} 4"), "{text}");
        for raw in ["-1", "9223372036854775807", "123456789", "code=\"3\""] {
            assert!(!text.contains(raw), "{raw} became a label: {text}");
        }
    }
}
