use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use tracing::error;
use utoipa::ToSchema;

/// An API error: status, a stable machine name, and a human message. Internal causes are logged,
/// not returned.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn unauthorized() -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            message: "missing or invalid api_access_token".into(),
            retry_after: None,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, error: "forbidden", message: message.into(), retry_after: None }
    }

    pub fn not_found(what: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            message: format!("{what} not found"),
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: "bad_request", message: message.into(), retry_after: None }
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error: "unprocessable_entity",
            message: message.into(),
            retry_after: None,
        }
    }

    /// A backing service does not answer, and saying which is the point (`/readyz`).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "unavailable",
            message: message.into(),
            retry_after: None,
        }
    }

    /// What axum answers in plain text when one of its extractors refuses a request (a path
    /// segment that is not UTF-8, a body too large), as the API's JSON error.
    pub fn rejected(status: StatusCode, text: &str) -> Self {
        let error = match status.as_u16() {
            405 => "method_not_allowed",
            413 => "payload_too_large",
            415 => "unsupported_media_type",
            422 => "unprocessable_entity",
            _ => "bad_request",
        };
        Self { status, error, message: text.chars().take(300).collect(), retry_after: None }
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        error!(error = %cause, "request failed");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "unavailable",
            message: "a backing service is unavailable; try again".into(),
            retry_after: None,
        }
    }

    /// The account used its front-of-queue refreshes for this window.
    pub fn rate_limited(retry_after: std::time::Duration) -> Self {
        let secs = retry_after.as_secs().max(1);
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: "rate_limited",
            message: format!("too many refresh requests for this account; try again in {secs} s"),
            retry_after: Some(secs),
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { error: self.error, message: self.message };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

/// Parses a path id; a malformed one is a 400.
pub fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 && id <= i64::from(i32::MAX) => Ok(id),
        _ => Err(ApiError::bad_request(format!("{what} must be a positive integer, got {raw:?}"))),
    }
}
