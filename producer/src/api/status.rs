//! `GET /api/v1/accounts/{account_id}/callbacks/facebook_token_status/{inbox_id}[?check=true]`

use axum::{Json, extract::State};
use shared::{
    job::{Reason, RefreshJob},
    status::{InboxStatus, inbox_status},
};

use super::{
    bodies::StatusBody,
    caller::Authenticated,
    params::{Check, InboxPath},
};
use crate::{
    auth::Caller,
    errors::{ApiError, ErrorBody},
    state::AppState,
};

/// Token status of a Facebook inbox
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account_id}/callbacks/facebook_token_status/{inbox_id}",
    params(InboxPath, Check),
    responses(
        (status = 200, description = "token status", body = StatusBody),
        (status = 400, description = "error", body = ErrorBody),
        (status = 401, description = "error", body = ErrorBody),
        (status = 404, description = "error", body = ErrorBody),
        (status = 422, description = "error", body = ErrorBody),
        (status = 503, description = "error", body = ErrorBody),
    )
)]
pub async fn token_status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    InboxPath { account_id, inbox_id }: InboxPath,
    Check(check): Check,
) -> Result<Json<StatusBody>, ApiError> {
    let status = load(&state, &caller, account_id, inbox_id).await?;
    if check {
        let job = RefreshJob::new(status.channel_id, Reason::Manual);
        state.pipeline.validate_only(&job).await.map_err(ApiError::internal)?;
        return Ok(Json(StatusBody::from(&load(&state, &caller, account_id, inbox_id).await?)));
    }
    Ok(Json(StatusBody::from(&status)))
}

/// The inbox's status if the caller may see it; 404 otherwise (another account's, not Facebook,
/// absent: all look the same).
pub async fn load(state: &AppState, caller: &Caller, account_id: i64, inbox_id: i64) -> Result<InboxStatus, ApiError> {
    if !caller.sees(account_id) {
        return Err(ApiError::not_found("inbox"));
    }
    let mut redis = state.redis.clone();
    inbox_status(&state.db, &mut redis, &state.pipeline.keys, Some(&[account_id]), inbox_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("inbox"))
}
