//! The producer's HTTP API (axum). Errors are `{"error": "...", "message": "..."}`; bad input is a
//! 400/422, never a 500; the token is checked before anything else.

mod auth;
mod errors;
mod intake;

use std::sync::Arc;

use axum::{
    Router,
    http::header,
    response::IntoResponse,
    routing::{get, post},
};
use redis::aio::ConnectionManager;
use shared::{config::Config, intake::Intake, metrics::Metrics};
use sqlx::PgPool;

pub use errors::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub intake: Intake,
    pub config: Arc<Config>,
    pub metrics: Metrics,
}

impl AppState {
    pub fn new(db: PgPool, redis: ConnectionManager, intake: Intake, config: Arc<Config>) -> Self {
        Self { db, redis, intake, config, metrics: Metrics::default() }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/accounts/{account_id}/inboxes/{inbox_id}/facebook_auth_failures", post(intake::report))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        shared::metrics::render(&state.metrics),
    )
}
