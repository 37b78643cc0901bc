//! Who calls an `/api/v1` route, from its `api_access_token` header. A handler takes one of these
//! as its first extractor, so the token is checked before anything else of the request is read:
//! a bad token and a bad id is a 401, not a 400.

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::{
    auth::{self, Caller},
    errors::ApiError,
    state::AppState,
};

/// A caller whose token is valid; 401 otherwise.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        auth::authenticate(state, &parts.headers).await.map(Self)
    }
}

/// The admin token; 401 for no valid token, 403 for any other (the queue spans every account).
#[derive(Debug, Clone, Copy)]
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match Authenticated::from_request_parts(parts, state).await? {
            Authenticated(Caller::Admin) => Ok(Self),
            // Only the queue asks for the admin token, so its refusal says so.
            Authenticated(_) => Err(ApiError::forbidden("the queue is visible to the admin token only")),
        }
    }
}
