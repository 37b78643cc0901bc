//! `POST /api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}[?wait=SECS]` and
//! the job status URL it hands out when the wait runs out.

use std::{collections::HashMap, time::Duration};

use axum::{
    Json,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use shared::{job::JobOutcome, pending, queue};
use uuid::Uuid;

use super::{
    bodies::{Accepted, Job, JobState, StatusBody},
    status::load,
};
use crate::{
    auth::authenticate,
    errors::{ApiError, parse_id},
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

const DEFAULT_WAIT: u64 = 10;
const MAX_WAIT: u64 = 60;

pub async fn post(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, inbox)): Path<(String, String)>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Refresh, ApiError> {
    let caller = authenticate(&state, &headers).await?;
    let (account_id, inbox_id) = (parse_id(&account, "account_id")?, parse_id(&inbox, "inbox_id")?);
    let wait = match query.get("wait") {
        None => DEFAULT_WAIT,
        Some(w) => match w.parse::<u64>() {
            Ok(secs) if secs <= MAX_WAIT => secs,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "wait must be whole seconds from 0 to {MAX_WAIT}, got {w:?}"
                )));
            }
        },
    };
    caller.require_refresh(account_id)?;
    let status = load(&state, &caller, account_id, inbox_id).await?;
    let outcome = refresh_and_wait(&state, status.account_id, status.channel_id, Duration::from_secs(wait)).await?;
    match outcome {
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

/// `GET .../refresh_facebook_token/{inbox_id}/jobs/{job_id}`: where a refresh stands.
pub async fn job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((account, inbox, job)): Path<(String, String, String)>,
) -> Result<Json<Job>, ApiError> {
    let caller = authenticate(&state, &headers).await?;
    let (account_id, inbox_id) = (parse_id(&account, "account_id")?, parse_id(&inbox, "inbox_id")?);
    let job_id: Uuid = job.parse().map_err(|_| ApiError::bad_request(format!("job id must be a UUID, got {job:?}")))?;
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
