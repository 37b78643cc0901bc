//! `/healthz` and `/metrics` on `WORKER_METRICS_BIND`.

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::WorkerState;

pub async fn serve(listener: TcpListener, state: WorkerState, shutdown: CancellationToken) {
    let app = Router::new().route("/healthz", get(healthz)).route("/metrics", get(metrics)).with_state(state);
    let _ = axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await;
}

async fn healthz() -> &'static str {
    "ok"
}

async fn metrics(State(state): State<WorkerState>) -> impl IntoResponse {
    shared::metrics::refresh_gauges(
        &state.pipeline.metrics,
        &state.pipeline.db,
        &mut state.redis.clone(),
        &state.config,
    )
    .await;
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        shared::metrics::render(&state.pipeline.metrics),
    )
}
