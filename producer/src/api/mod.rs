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
    extract::{Request, State},
    http::header,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use redis::aio::ConnectionManager;
use shared::{
    config::Config, intake::Intake, metrics::Metrics, pipeline::Pipeline, queue::JobStorage, reports::ReportWaiter,
};
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
    /// Every waiting request of the process shares its one subscription.
    pub reports: ReportWaiter,
    /// The database is Chatwoot's (`access_tokens`, `account_users`), so its users' access tokens
    /// are callers too. Checked once at start: Chatwoot's tables come before us, not after.
    pub chatwoot_users: bool,
}

/// Postgres connections of `producer serve` unless `DATABASE_POOL_SIZE` says otherwise: fewer than
/// a worker's, since it runs no jobs of its own (API lookups, the cron trigger and the drainer hold
/// one briefly each), on a database that is Chatwoot's.
pub const PRODUCER_POOL_SIZE: u32 = 5;

impl AppState {
    /// Connects everything the API needs (and migrates, as every command does).
    pub async fn connect(config: Config) -> anyhow::Result<Self> {
        let w = worker::WorkerState::connect_with_pool(
            Arc::new(config),
            shared::queue::Timings::default(),
            PRODUCER_POOL_SIZE,
        )
        .await?;
        // Completed from the database (the app credentials): the one config of this process.
        let config = w.config.clone();
        let intake = Intake {
            db: w.pipeline.db.clone(),
            redis: w.redis.clone(),
            storage: w.storage.clone(),
            config: config.clone(),
        };
        let chatwoot_users = shared::store::chatwoot_users::has_chatwoot_users(&w.pipeline.db).await?;
        Ok(Self {
            chatwoot_users,
            db: w.pipeline.db.clone(),
            redis: w.redis.clone(),
            storage: w.storage.clone(),
            metrics: w.pipeline.metrics.clone(),
            reports: ReportWaiter::start(w.redis.clone(), config.clone()),
            pipeline: w.pipeline,
            intake,
            config,
        })
    }
}

pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1/accounts/{account_id}/callbacks/facebook_token_status/{inbox_id}", get(status::get))
        .route("/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}", post(refresh::post))
        .route(
            "/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}/jobs/{job_id}",
            get(refresh::job),
        )
        .route("/api/v1/accounts/{account_id}/inboxes/{inbox_id}/facebook_auth_failures", post(intake::report))
        .route("/api/v1/queue", get(queue::get))
        .route_layer(middleware::from_fn_with_state(state.clone(), json_rejections));
    Router::new()
        .merge(api)
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

/// axum answers a request its extractors reject (a path segment that is not UTF-8, a malformed
/// query or body) in plain text, before the handler checks the token. This gives those the API's
/// JSON errors, and the 401 first when the token is not valid. Only rejected requests pay for the
/// extra token check.
async fn json_rejections(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers().clone();
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !response.status().is_client_error() {
        return response;
    }
    if let Err(e) = auth::authenticate(&state, &headers).await {
        return e.into_response();
    }
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 4_096).await.unwrap_or_default();
    let message: String = String::from_utf8_lossy(&body).chars().take(300).collect();
    let error = match status.as_u16() {
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable_entity",
        _ => "bad_request",
    };
    ApiError { status, error, message, retry_after: None }.into_response()
}
