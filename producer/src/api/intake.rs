//! `POST /api/v1/accounts/{account_id}/inboxes/{inbox_id}/facebook_auth_failures`

use axum::{Json, body::Bytes, extract::State, http::StatusCode};
use serde::Deserialize;
use serde_json::Value;
use shared::intake::{IntakeError, parse_report};

use super::{
    bodies::{Report, Reported},
    caller::Authenticated,
    params::InboxPath,
};
use crate::{
    errors::{ApiError, ErrorBody},
    state::AppState,
};

/// Report a send that failed with a Graph error
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account_id}/inboxes/{inbox_id}/facebook_auth_failures",
    params(InboxPath),
    request_body = Report,
    responses(
        (status = 202, description = "accepted: enqueued, coalesced, already_replaced, not_auth or deferred", body = Reported),
        (status = 400, description = "error", body = ErrorBody),
        (status = 401, description = "error", body = ErrorBody),
        (status = 403, description = "a Chatwoot user token without the administrator role in the account", body = ErrorBody),
        (status = 404, description = "error", body = ErrorBody),
        (status = 422, description = "error", body = ErrorBody),
        (status = 503, description = "error", body = ErrorBody),
    )
)]
pub async fn report_failure(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    InboxPath { account_id, inbox_id }: InboxPath,
    body: Bytes,
) -> Result<(StatusCode, Json<Reported>), ApiError> {
    // Read as JSON first: a body that is not JSON is a 400, a JSON one that is not a report a 422.
    let body: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))?;
    let error = parse_report(&body).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let Report { failed_at, .. } =
        Report::deserialize(&body).map_err(|_| ApiError::unprocessable("failed_at must be an RFC 3339 time"))?;
    // A report starts a refresh, so it needs the rights a refresh needs.
    caller.require_refresh(account_id)?;
    let channel_id = facebook_channel_of(&state, account_id, inbox_id).await?;
    let decision = state.intake.report(channel_id, &error, failed_at).await.map_err(|e| match e {
        IntakeError::BadReport(m) => ApiError::unprocessable(m),
        other => ApiError::internal(other),
    })?;
    Ok((StatusCode::ACCEPTED, Json(Reported::new(decision, channel_id, error.kind.as_str()))))
}

/// The channel behind a Facebook inbox of this account; anything else is a 404 (no existence leak).
pub async fn facebook_channel_of(state: &AppState, account_id: i64, inbox_id: i64) -> Result<i64, ApiError> {
    let channel =
        shared::store::facebook_channel_of_inbox(&state.db, account_id, inbox_id).await.map_err(ApiError::internal)?;
    channel.ok_or_else(|| ApiError::not_found("inbox"))
}
