//! `POST /api/v1/accounts/{account_id}/inboxes/{inbox_id}/facebook_auth_failures`

use axum::{
    Json,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use shared::intake::{IntakeError, parse_report};

use crate::{
    auth::authenticate,
    errors::{ApiError, parse_id},
    state::AppState,
};

pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, inbox)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = authenticate(&state, &headers).await?;
    let account_id = parse_id(&account, "account_id")?;
    let inbox_id = parse_id(&inbox, "inbox_id")?;
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let error = parse_report(&body).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let failed_at = match body.get("failed_at") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_str()
                .and_then(|s| s.parse::<DateTime<Utc>>().ok())
                .ok_or_else(|| ApiError::unprocessable("failed_at must be an RFC 3339 time"))?,
        ),
    };
    // A report starts a refresh, so it needs the rights a refresh needs.
    caller.require_refresh(account_id)?;
    let channel_id = facebook_channel_of(&state, account_id, inbox_id).await?;
    let decision = state.intake.report(channel_id, &error, failed_at).await.map_err(|e| match e {
        IntakeError::BadReport(m) => ApiError::unprocessable(m),
        other => ApiError::internal(other),
    })?;
    let mut answer = serde_json::to_value(decision).unwrap_or_else(|_| json!({}));
    if let Some(obj) = answer.as_object_mut() {
        obj.insert("channel_id".into(), channel_id.into());
        obj.insert("error_class".into(), error.kind.as_str().into());
    }
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// The channel behind a Facebook inbox of this account; anything else is a 404 (no existence leak).
pub async fn facebook_channel_of(state: &AppState, account_id: i64, inbox_id: i64) -> Result<i64, ApiError> {
    let channel =
        shared::store::facebook_channel_of_inbox(&state.db, account_id, inbox_id).await.map_err(ApiError::internal)?;
    channel.ok_or_else(|| ApiError::not_found("inbox"))
}
