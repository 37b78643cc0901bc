//! `api_access_token` checking: `ADMIN_API_TOKEN` for every account (compared in constant time), a
//! per-account token (looked up by its hash), or, on Chatwoot's database, a Chatwoot user's own
//! access token with the user's role in each of their accounts. Checked before anything else.

use axum::http::HeaderMap;
use shared::store::chatwoot_users::{self, Membership, Role, TokenOwner};

use crate::{errors::ApiError, state::AppState};

/// Who the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Account(i64),
    /// A Chatwoot user, with their accounts and role in each as `account_users` says at sign-in
    /// (API: at each request).
    User {
        user_id: i64,
        memberships: Vec<Membership>,
    },
}

impl Caller {
    /// The account filter for queries: `None` sees every account.
    pub fn accounts(&self) -> Option<Vec<i64>> {
        match self {
            Self::Admin => None,
            Self::Account(a) => Some(vec![*a]),
            Self::User { memberships, .. } => Some(memberships.iter().map(|m| m.account_id).collect()),
        }
    }

    /// Whether the caller may see `account_id`; the answer for "no" is a 404, never a 403, so an
    /// inbox's existence does not leak.
    pub fn sees(&self, account_id: i64) -> bool {
        self.accounts().is_none_or(|a| a.contains(&account_id))
    }

    /// Whether the caller may start a refresh (or report a failed send) in `account_id`: a
    /// Chatwoot agent may look, only an administrator acts, as in Chatwoot's own inbox settings.
    pub fn may_refresh(&self, account_id: i64) -> bool {
        match self {
            Self::Admin => true,
            Self::Account(a) => *a == account_id,
            Self::User { memberships, .. } => {
                memberships.iter().any(|m| m.account_id == account_id && m.role == Role::Administrator)
            }
        }
    }

    /// The caller sees more than one account, so the dashboard names each inbox's account.
    pub fn spans_accounts(&self) -> bool {
        self.accounts().is_none_or(|a| a.len() > 1)
    }

    /// Who signed in, for a log line.
    pub fn label(&self) -> String {
        match self {
            Self::Admin => "admin".to_owned(),
            Self::Account(a) => format!("account {a}"),
            Self::User { user_id, .. } => format!("chatwoot user {user_id}"),
        }
    }

    /// 404 when the caller does not see `account_id`, 403 when they see it but may not act in it.
    pub fn require_refresh(&self, account_id: i64) -> Result<(), ApiError> {
        if !self.sees(account_id) {
            return Err(ApiError::not_found("inbox"));
        }
        if !self.may_refresh(account_id) {
            return Err(ApiError::forbidden("this needs the administrator role in the account"));
        }
        Ok(())
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
    if let Some(account) = shared::store::account_of_token(&state.db, given).await.map_err(ApiError::internal)? {
        return Ok(Caller::Account(account));
    }
    if state.chatwoot_users {
        // Only a person has a role in an account; a bot's or a platform app's token opens nothing here.
        let owner = chatwoot_users::owner_of_access_token(&state.db, given).await.map_err(ApiError::internal)?;
        if let Some(TokenOwner::User(user_id)) = owner {
            return user_caller(state, user_id).await;
        }
    }
    Err(ApiError::unauthorized())
}

/// A Chatwoot user with their memberships as they are now.
pub async fn user_caller(state: &AppState, user_id: i64) -> Result<Caller, ApiError> {
    let memberships = chatwoot_users::memberships(&state.db, user_id).await.map_err(ApiError::internal)?;
    Ok(Caller::User { user_id, memberships })
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

    #[test]
    fn chatwoot_users_see_their_accounts_and_act_where_they_administer() {
        let user = Caller::User {
            user_id: 1,
            memberships: vec![
                Membership { account_id: 7, role: Role::Administrator },
                Membership { account_id: 8, role: Role::Agent },
            ],
        };
        assert!(user.sees(7) && user.sees(8) && !user.sees(9));
        assert!(user.may_refresh(7) && !user.may_refresh(8) && !user.may_refresh(9));
        assert!(user.require_refresh(7).is_ok());
        assert_eq!(user.require_refresh(8).map_err(|e| e.status.as_u16()), Err(403));
        assert_eq!(user.require_refresh(9).map_err(|e| e.status.as_u16()), Err(404));
        assert!(user.spans_accounts() && !Caller::Account(7).spans_accounts() && Caller::Admin.spans_accounts());
    }
}
