//! The producer's HTTP API (axum). Errors are `{"error": "...", "message": "..."}`; bad input is a
//! 400/422, never a 500; the token is checked before anything else; no token is ever in a body.

pub mod bodies;
mod caller;
mod intake;
mod openapi;
mod openapi_3_0;
mod params;
mod probes;
mod queue;
pub mod refresh;
pub mod status;

use axum::{
    Router,
    extract::{Request, State},
    http::header,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};

use crate::{auth, errors::ApiError, state::AppState};

/// The API's routes, with the probes and the metrics; `app::router` mounts them beside the dashboard.
pub fn routes(state: AppState) -> Router<AppState> {
    let api = Router::new()
        .route("/api/v1/accounts/{account_id}/callbacks/facebook_token_status/{inbox_id}", get(status::token_status))
        .route("/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}", post(refresh::refresh))
        .route(
            "/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}/jobs/{job_id}",
            get(refresh::job_status),
        )
        .route("/api/v1/accounts/{account_id}/inboxes/{inbox_id}/facebook_auth_failures", post(intake::report_failure))
        .route("/api/v1/queue", get(queue::queue_depth))
        .route_layer(middleware::from_fn_with_state(state.clone(), json_rejections));
    Router::new()
        .merge(api)
        .route("/api/openapi.json", get(openapi::get))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
}

/// What axum answers itself in plain text (405 for a method the route lacks, 413 for a body too
/// large) gets the API's JSON error, and the 401 first when the token is not valid. The API's own
/// extractors answer in JSON already; only rejected requests pay for the extra token check.
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
    ApiError::rejected(status, &String::from_utf8_lossy(&body)).into_response()
}
