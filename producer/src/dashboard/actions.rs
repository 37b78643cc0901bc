//! `POST /dashboard/inboxes/{inbox_id}/refresh`: "Try auto refresh", authorized by the session
//! cookie. Runs the refresh through the queue (ahead of the backlog) and waits up to 20 s. The
//! inline script asks for JSON (`Accept: application/json`) and gets the inbox's new rows to swap
//! in; a plain form post is redirected back to `/` where the outcome shows under the inbox.

use std::{collections::HashMap, time::Duration};

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use chrono::Utc;
use serde_json::json;
use shared::status::{InboxStatus, inbox_status};

use super::{
    layout::no_store,
    locale::Locale,
    rows::{Notice, Table},
    session,
};
use crate::{
    auth::Caller,
    errors::{ApiError, parse_id},
    manual_refresh::{RefreshAnswer, refresh_and_wait},
    state::AppState,
};

pub const WAIT: Duration = Duration::from_secs(20);

pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(inbox): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let locale = Locale::negotiate(query.get("lang").map(String::as_str), &headers);
    let json =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("application/json"));
    let mut resp = match run(&state, &headers, &inbox, locale).await {
        Ok((caller, status, notice)) if json => {
            let table = table(&state, locale, &caller);
            Json(json!({
                "inbox_id": status.inbox_id,
                "result": notice.name(),
                "message": notice.text(locale),
                "status": status.status,
                "reauthorization_required": status.reauthorization_required,
                "html": table.block(&status, Some(notice)).into_string(),
            }))
            .into_response()
        }
        Ok((_, status, notice)) => {
            let to = locale.link(&format!("/?done={}:{}", status.inbox_id, notice.name()));
            Redirect::to(&format!("{to}#inbox-{}", status.inbox_id)).into_response()
        }
        Err(e) if json => {
            let message = match e.status {
                StatusCode::UNAUTHORIZED => locale.t().session_ended.to_owned(),
                StatusCode::SERVICE_UNAVAILABLE => locale.t().unavailable.to_owned(),
                _ => e.message.clone(),
            };
            ApiError { message, ..e }.into_response()
        }
        // Without a session the form post lands on the login form.
        Err(e) if e.status == StatusCode::UNAUTHORIZED => Redirect::to(&locale.link("/")).into_response(),
        Err(e) => (e.status, e.message).into_response(),
    };
    no_store(&mut resp);
    resp
}

fn table<'a>(state: &'a AppState, locale: Locale, caller: &'a Caller) -> Table<'a> {
    Table {
        locale,
        now: Utc::now(),
        show_account: caller.spans_accounts(),
        reconnect_template: &state.config.reconnect_url_template,
        caller,
    }
}

async fn run(
    state: &AppState,
    headers: &HeaderMap,
    inbox: &str,
    locale: Locale,
) -> Result<(Caller, InboxStatus, Notice), ApiError> {
    if session::cross_site(headers) {
        return Err(ApiError::forbidden("cross-site request refused"));
    }
    let caller = session::current(state, headers).await?.ok_or_else(ApiError::unauthorized)?;
    let inbox_id = parse_id(inbox, "inbox_id")?;
    let before = load(state, &caller, inbox_id).await?;
    // A Chatwoot agent sees the inbox but the button is an administrator's, as on the API.
    if !caller.may_refresh(before.account_id) {
        return Err(ApiError::forbidden(locale.t().refresh_needs_admin));
    }
    let notice = match refresh_and_wait(state, before.account_id, before.channel_id, WAIT).await {
        Ok(RefreshAnswer::Settled { refreshed }) => {
            let after = load(state, &caller, inbox_id).await?;
            let notice = if after.reauthorization_required || after.token_valid == Some(false) {
                Notice::StillFailing
            } else if refreshed {
                Notice::Refreshed
            } else {
                Notice::Healthy
            };
            return Ok((caller, after, notice));
        }
        Ok(RefreshAnswer::Pending { .. }) => Notice::Pending,
        // Said as it is: a person clicking again soon needs to know to wait.
        Err(e) if e.status == StatusCode::TOO_MANY_REQUESTS => return Err(e),
        Err(e) => {
            tracing::warn!(inbox.id = inbox_id, error = %e.message, "dashboard refresh could not start");
            Notice::Error
        }
    };
    let status = load(state, &caller, inbox_id).await?;
    Ok((caller, status, notice))
}

/// The inbox if the caller may see it; 404 otherwise (another account's, not Facebook, absent).
async fn load(state: &AppState, caller: &Caller, inbox_id: i64) -> Result<InboxStatus, ApiError> {
    let mut redis = state.redis.clone();
    inbox_status(&state.db, &mut redis, &state.pipeline.keys, caller.accounts().as_deref(), inbox_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("inbox"))
}
