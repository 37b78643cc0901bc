//! `GET /api/v1/queue`: queue depth, for admins.

use axum::{Json, extract::State, http::HeaderMap};
use serde_json::{Value, json};

use super::{
    AppState,
    auth::{Caller, authenticate},
    errors::ApiError,
};

pub async fn get(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    if authenticate(&state, &headers).await? != Caller::Admin {
        return Err(ApiError::forbidden("the queue is visible to the admin token only"));
    }
    let mut redis = state.redis.clone();
    let d = shared::queue::depth(&mut redis, &state.config).await.map_err(ApiError::internal)?;
    Ok(Json(json!({
        "pending": d.pending,
        "scheduled": d.scheduled,
        "running": d.running,
        "done": d.done,
        "dead": d.dead,
        "deferred": d.deferred,
    })))
}
