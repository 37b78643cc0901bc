//! `GET /api/v1/queue`: queue depth, for admins.

use axum::{Json, extract::State};

use super::{bodies::QueueBody, caller::Admin};
use crate::{
    errors::{ApiError, ErrorBody},
    state::AppState,
};

/// Queue depth (admin token only)
#[utoipa::path(
    get,
    path = "/api/v1/queue",
    responses(
        (status = 200, description = "queue depth", body = QueueBody),
        (status = 401, description = "error", body = ErrorBody),
        (status = 403, description = "error", body = ErrorBody),
        (status = 503, description = "error", body = ErrorBody),
    )
)]
pub async fn queue_depth(State(state): State<AppState>, _: Admin) -> Result<Json<QueueBody>, ApiError> {
    let mut redis = state.redis.clone();
    let d = shared::queue::depth(&mut redis, &state.config).await.map_err(ApiError::internal)?;
    let dead_letters = shared::store::open_dead_count(&state.db).await.map_err(ApiError::internal)?;
    let keys = shared::keys::RedisKeys::of(&state.config);
    let paused = shared::schedule::paused(&mut redis, &keys).await.map_err(ApiError::internal)?;
    Ok(Json(QueueBody {
        pending: d.pending,
        scheduled: d.scheduled,
        running: d.running,
        done: d.done,
        // Dead-lettered jobs awaiting `producer retry-dead`, plus any apalis moved to its own dead
        // set (store outages past every attempt).
        dead: d.dead + u64::try_from(dead_letters).unwrap_or(0),
        dead_letters,
        apalis_dead: d.dead,
        deferred: d.deferred,
        schedule_paused: paused.map(Into::into),
    }))
}
