//! Prometheus metrics, one registry per process. Labels carry outcomes, codes and endpoints, never
//! a token or a page id (unbounded label sets would blow up the series count).

use std::sync::Arc;

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, histogram::Histogram},
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
pub struct EndpointLabel {
    pub endpoint: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub jobs: Family<OutcomeLabel, Counter>,
    pub validations: Family<OutcomeLabel, Counter>,
    pub refreshes: Family<OutcomeLabel, Counter>,
    pub graph_errors: Family<CodeLabel, Counter>,
    pub graph_duration: Family<EndpointLabel, Histogram>,
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
        Self { registry: Arc::new(registry), jobs, validations, refreshes, graph_errors, graph_duration }
    }
}

impl Metrics {
    pub fn count(family: &Family<OutcomeLabel, Counter>, outcome: &str) {
        family.get_or_create(&OutcomeLabel { outcome: outcome.to_owned() }).inc();
    }

    pub fn graph_error(&self, code: Option<i64>) {
        let code = code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        self.graph_errors.get_or_create(&CodeLabel { code }).inc();
    }

    pub fn observe(&self, endpoint: &str, seconds: f64) {
        self.graph_duration.get_or_create(&EndpointLabel { endpoint: endpoint.to_owned() }).observe(seconds);
    }
}

pub fn render(metrics: &Metrics) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &metrics.registry);
    out
}
