//! The open endpoints beside the API: liveness, readiness and the Prometheus metrics.

use axum::{Json, extract::State, http::header, response::IntoResponse};

use super::bodies::{Ready, ReadyState};
use crate::{
    errors::{ApiError, ErrorBody},
    state::AppState,
};

/// Prometheus metrics
#[utoipa::path(get, path = "/metrics", security(), responses((status = 200, description = "OpenMetrics text")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    shared::gauges::refresh(&state.metrics, &state.db, &mut state.redis.clone(), &state.config).await;
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        shared::metrics::render(&state.metrics),
    )
}

/// Liveness
#[utoipa::path(get, path = "/healthz", security(), responses((status = 200, description = "ok")))]
pub async fn healthz() -> &'static str {
    "ok"
}

/// Readiness: Postgres and Redis answer
// 200 while both answer, else 503 naming which does not (`/healthz` stays liveness).
#[utoipa::path(
    get,
    path = "/readyz",
    security(),
    responses(
        (status = 200, description = "ready", body = inline(Ready)),
        (status = 503, description = "error", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    shared::readiness::stores_ready(&state.db, &state.redis).await.map_err(ApiError::unavailable)?;
    Ok(Json(Ready { status: ReadyState::Ready }))
}
