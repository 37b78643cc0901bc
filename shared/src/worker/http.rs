//! `/healthz` (liveness), `/readyz` and `/metrics` on `WORKER_METRICS_BIND`.

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::WorkerState;
use crate::readiness::{readiness_response, stores_ready};

pub async fn serve(listener: TcpListener, state: WorkerState, shutdown: CancellationToken) {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    let _ = axum::serve(crate::listener::nodelay(listener), app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<WorkerState>) -> impl IntoResponse {
    let checked = match stores_ready(&state.pipeline.db, &state.redis).await {
        Ok(()) => state.loop_state.ready(),
        Err(why) => Err(why),
    };
    readiness_response(checked)
}

async fn metrics(State(state): State<WorkerState>) -> impl IntoResponse {
    crate::gauges::refresh(&state.pipeline.metrics, &state.pipeline.db, &mut state.redis.clone(), &state.config).await;
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        crate::metrics::render(&state.pipeline.metrics),
    )
}
