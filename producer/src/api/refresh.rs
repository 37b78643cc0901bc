//! `POST /api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}[?wait=SECS]` and
//! the job status URL it hands out when the wait runs out.

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use shared::{job::JobOutcome, pending, queue};

use super::{
    bodies::{Accepted, Job, JobState, StatusBody},
    caller::Authenticated,
    params::{InboxPath, JobPath, Wait},
    status::load,
};
use crate::{
    errors::{ApiError, ErrorBody},
    manual_refresh::{RefreshAnswer, refresh_and_wait},
    state::AppState,
};

/// A refresh's answer: settled within the wait, or still on its way.
#[derive(Debug)]
pub enum Refresh {
    Settled(Box<StatusBody>),
    Pending(Accepted),
}

impl IntoResponse for Refresh {
    fn into_response(self) -> Response {
        match self {
            Self::Settled(status) => (StatusCode::OK, Json(*status)).into_response(),
            Self::Pending(accepted) => (StatusCode::ACCEPTED, Json(accepted)).into_response(),
        }
    }
}

/// Refresh through the queue, ahead of the cron backlog, and wait
#[utoipa::path(
    post,
    path = "/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}",
    params(InboxPath, Wait),
    responses(
        (status = 200, description = "token status", body = StatusBody),
        (status = 202, body = Accepted,
            description = "not settled in time, or API_MAX_WAITERS requests already waiting (answered at once)"),
        (status = 429, body = ErrorBody,
            description = "the account used its API_REFRESH_PER_MINUTE pushes to the head of the queue; see Retry-After",
            headers(("Retry-After" = u64))),
        (status = 403, description = "a Chatwoot user token without the administrator role in the account", body = ErrorBody),
        (status = 400, description = "error", body = ErrorBody),
        (status = 401, description = "error", body = ErrorBody),
        (status = 404, description = "error", body = ErrorBody),
        (status = 503, description = "error", body = ErrorBody),
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    InboxPath { account_id, inbox_id }: InboxPath,
    Wait(wait): Wait,
) -> Result<Refresh, ApiError> {
    caller.require_refresh(account_id)?;
    let status = load(&state, &caller, account_id, inbox_id).await?;
    match refresh_and_wait(&state, status.account_id, status.channel_id, wait).await? {
        RefreshAnswer::Settled { refreshed } => {
            let status = load(&state, &caller, account_id, inbox_id).await?;
            Ok(Refresh::Settled(Box::new(StatusBody { refreshed: Some(refreshed), ..StatusBody::from(&status) })))
        }
        RefreshAnswer::Pending { job_id } => Ok(Refresh::Pending(Accepted {
            job_id,
            status_url: format!(
                "/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}/jobs/{job_id}"
            ),
        })),
    }
}

/// Where a refresh job stands (the status_url of a 202)
#[utoipa::path(
    get,
    path = "/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}/jobs/{job_id}",
    params(JobPath),
    responses(
        (status = 200, description = "job state: queued, retrying or settled, with the inbox status", body = Job),
        (status = 400, description = "error", body = ErrorBody),
        (status = 401, description = "error", body = ErrorBody),
        (status = 404, description = "error", body = ErrorBody),
        (status = 422, description = "error", body = ErrorBody),
        (status = 503, description = "error", body = ErrorBody),
    )
)]
pub async fn job_status(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    JobPath { inbox: InboxPath { account_id, inbox_id }, job_id }: JobPath,
) -> Result<Json<Job>, ApiError> {
    let status = load(&state, &caller, account_id, inbox_id).await?;
    let mut redis = state.redis.clone();
    let report = queue::latest_report(&mut redis, &state.config, job_id).await.map_err(ApiError::internal)?;
    let keys = shared::keys::RedisKeys::of(&state.config);
    let owner = pending::owner(&mut redis, &keys, status.channel_id).await.map_err(ApiError::internal)?;
    let (job_state, refreshed) = match &report {
        Some(r) if r.channel_id != status.channel_id => return Err(ApiError::not_found("job")),
        Some(r) if r.settled => (JobState::Settled, Some(r.outcome == JobOutcome::Refreshed)),
        Some(_) => (JobState::Retrying, None),
        None if owner == Some(job_id) => (JobState::Queued, None),
        None => return Err(ApiError::not_found("job")),
    };
    Ok(Json(Job {
        job_id,
        state: job_state,
        outcome: report.as_ref().map(|r| r.outcome),
        next_attempt_at: report.as_ref().and_then(|r| r.next_attempt_at),
        refreshed,
        inbox: StatusBody::from(&status),
    }))
}
