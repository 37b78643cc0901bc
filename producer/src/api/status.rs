//! `GET /api/v1/accounts/{account_id}/callbacks/facebook_token_status/{inbox_id}[?check=true]`

use std::collections::HashMap;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::HeaderMap,
};
use shared::{
    job::{Reason, RefreshJob},
    status::{InboxStatus, inbox_status},
};

use super::bodies::StatusBody;
use crate::{
    auth::{Caller, authenticate},
    errors::{ApiError, parse_id},
    state::AppState,
};

pub async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, inbox)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<StatusBody>, ApiError> {
    let caller = authenticate(&state, &headers).await?;
    let (account_id, inbox_id) = (parse_id(&account, "account_id")?, parse_id(&inbox, "inbox_id")?);
    let check = match query.get("check").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(other) => return Err(ApiError::bad_request(format!("check must be true or false, got {other:?}"))),
    };
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
