//! `api_access_token` checking. Compared in constant time so response timing does not leak how
//! much of a guess was right.

use axum::http::HeaderMap;

use super::{ApiError, AppState};

/// Who the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Admin,
}

pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(given) = headers.get("api_access_token").and_then(|v| v.to_str().ok()) else {
        return Err(ApiError::unauthorized());
    };
    match &state.config.admin_api_token {
        Some(admin) if constant_time_eq(admin.expose().as_bytes(), given.as_bytes()) => Ok(Caller::Admin),
        _ => Err(ApiError::unauthorized()),
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_only_when_equal() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
