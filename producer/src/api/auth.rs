//! `api_access_token` checking: `ADMIN_API_TOKEN` for every account (compared in constant time), or
//! a per-account token (looked up by its hash). Checked before anything else.

use axum::http::HeaderMap;

use super::{ApiError, AppState};

/// Who the caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Account(i64),
}

impl Caller {
    /// The account filter for queries: `None` sees every account.
    pub fn scope(self) -> Option<i64> {
        match self {
            Self::Admin => None,
            Self::Account(a) => Some(a),
        }
    }

    /// Whether the caller may see `account_id`; the answer for "no" is a 404, never a 403, so an
    /// inbox's existence does not leak.
    pub fn sees(self, account_id: i64) -> bool {
        self.scope().is_none_or(|a| a == account_id)
    }
}

pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let given = headers.get("api_access_token").and_then(|v| v.to_str().ok()).unwrap_or_default();
    token_caller(state, given).await
}

/// The caller a token stands for (the dashboard's login uses it too).
pub async fn token_caller(state: &AppState, given: &str) -> Result<Caller, ApiError> {
    if given.is_empty() || given.len() > 512 {
        return Err(ApiError::unauthorized());
    }
    if let Some(admin) = &state.config.admin_api_token
        && constant_time_eq(admin.expose().as_bytes(), given.as_bytes())
    {
        return Ok(Caller::Admin);
    }
    match shared::store::account_of_token(&state.db, given).await.map_err(ApiError::internal)? {
        Some(account) => Ok(Caller::Account(account)),
        None => Err(ApiError::unauthorized()),
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

    #[test]
    fn accounts_see_only_themselves() {
        assert!(Caller::Admin.sees(7));
        assert!(Caller::Account(7).sees(7));
        assert!(!Caller::Account(7).sees(8));
    }
}
