//! The producer's HTTP API (axum). Errors are `{"error": "...", "message": "..."}`; bad input is a
//! 400/422, never a 500; the token is checked before anything else; no token is ever in a body.

pub mod auth;
mod errors;
mod intake;
mod openapi;
mod queue;
pub mod refresh;
pub mod status;

use std::sync::Arc;

use axum::{
    Router,
    extract::State,
    http::header,
    response::IntoResponse,
    routing::{get, post},
};
use redis::aio::ConnectionManager;
use shared::{config::Config, intake::Intake, metrics::Metrics, pipeline::Pipeline, queue::JobStorage};
use sqlx::PgPool;

pub use errors::{ApiError, parse_id};

#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub redis: ConnectionManager,
    pub storage: JobStorage,
    pub pipeline: Pipeline,
    pub intake: Intake,
    pub config: Arc<Config>,
    pub metrics: Metrics,
}

/// Postgres connections of `producer serve` unless `DATABASE_POOL_SIZE` says otherwise: fewer than
/// a worker's, since it runs no jobs of its own (API lookups, the cron trigger and the drainer hold
/// one briefly each), on a database that is Chatwoot's.
pub const PRODUCER_POOL_SIZE: u32 = 5;

impl AppState {
    /// Connects everything the API needs (and migrates, as every command does).
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let config = Arc::new(config);
        let w = worker::WorkerState::connect_with_pool(
            config.clone(),
            shared::queue::Timings::default(),
            PRODUCER_POOL_SIZE,
        )
        .await?;
        let intake = Intake {
            db: w.pipeline.db.clone(),
            redis: w.redis.clone(),
            storage: w.storage.clone(),
            config: config.clone(),
        };
        Ok(Self {
            db: w.pipeline.db.clone(),
            redis: w.redis.clone(),
            storage: w.storage.clone(),
            metrics: w.pipeline.metrics.clone(),
            pipeline: w.pipeline,
            intake,
            config,
        })
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/accounts/{account_id}/callbacks/facebook_token_status/{inbox_id}", get(status::get))
        .route("/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}", post(refresh::post))
        .route(
            "/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}/jobs/{job_id}",
            get(refresh::job),
        )
        .route("/api/v1/accounts/{account_id}/inboxes/{inbox_id}/facebook_auth_failures", post(intake::report))
        .route("/api/v1/queue", get(queue::get))
        .route("/api/openapi.json", get(openapi::get))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::routes())
        .with_state(state)
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    shared::metrics::refresh_gauges(&state.metrics, &state.db, &mut state.redis.clone(), &state.config).await;
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        shared::metrics::render(&state.metrics),
    )
}

/// 200 while Postgres and Redis answer, else 503 with the error body (`/healthz` stays liveness).
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    worker::http::readiness_response(worker::http::stores_ready(&state.db, &state.redis).await)
}
