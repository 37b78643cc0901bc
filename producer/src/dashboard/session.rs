//! Dashboard sessions: a random cookie (32 bytes, hex) whose SHA-256 names a Redis key
//! `{prefix}fb_token_refresh:session:<sha256>` that lives 12 hours. The key holds who signed in and
//! the SHA-256 of the token used, never the token: every request checks that the token is still
//! valid (an account token revoked, the admin token changed, a Chatwoot user's token reset ends
//! the session), and a Chatwoot user's rights are read again, so a changed role counts at once.

use axum::http::{HeaderMap, HeaderValue, header};
use redis::AsyncCommands;
use shared::store::token_hash;

use crate::{
    auth::{Caller, constant_time_eq, user_caller},
    errors::ApiError,
    state::AppState,
};
use shared::store::chatwoot_users;

pub const COOKIE: &str = "fbtr_session";
pub const TTL_SECS: u64 = 12 * 3600;

fn key(state: &AppState, cookie: &str) -> String {
    shared::keys::RedisKeys::of(&state.config).session(&token_hash(cookie))
}

/// Starts a session for `caller`, who signed in with `api_token`; returns the cookie value.
pub async fn create(state: &AppState, caller: &Caller, api_token: &str) -> Result<String, ApiError> {
    let bytes: [u8; 32] = rand::random();
    let cookie: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let value = match caller {
        Caller::Admin => format!("admin:{}", token_hash(api_token)),
        Caller::Account(a) => format!("account:{a}:{}", token_hash(api_token)),
        Caller::User { user_id, .. } => format!("user:{user_id}:{}", token_hash(api_token)),
    };
    let mut redis = state.redis.clone();
    let _: () = redis.set_ex(key(state, &cookie), value, TTL_SECS).await.map_err(ApiError::internal)?;
    Ok(cookie)
}

/// The caller of a live session, or None (no cookie, unknown or expired session, token no longer
/// valid).
pub async fn current(state: &AppState, headers: &HeaderMap) -> Result<Option<Caller>, ApiError> {
    let Some(cookie) = cookie_value(headers) else { return Ok(None) };
    let mut redis = state.redis.clone();
    let stored: Option<String> = redis.get(key(state, cookie)).await.map_err(ApiError::internal)?;
    let Some(stored) = stored else { return Ok(None) };
    let still_valid = match stored.split(':').collect::<Vec<_>>()[..] {
        ["admin", hash] => state
            .config
            .admin_api_token
            .as_ref()
            .is_some_and(|t| constant_time_eq(token_hash(t.expose()).as_bytes(), hash.as_bytes()))
            .then_some(Caller::Admin),
        ["account", account, hash] => {
            let live = shared::store::account_of_token_hash(&state.db, hash).await.map_err(ApiError::internal)?;
            live.filter(|a| Some(*a) == account.parse().ok()).map(Caller::Account)
        }
        ["user", user, hash] if state.chatwoot_users => match user.parse::<i64>() {
            Ok(user_id) => {
                let live =
                    chatwoot_users::user_has_token_hash(&state.db, user_id, hash).await.map_err(ApiError::internal)?;
                if live { Some(user_caller(state, user_id).await?) } else { None }
            }
            Err(_) => None,
        },
        _ => None,
    };
    if still_valid.is_none() {
        let _: Result<(), _> = redis.del(key(state, cookie)).await;
    }
    Ok(still_valid)
}

/// Ends the session of this request, if any.
pub async fn destroy(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(cookie) = cookie_value(headers) {
        let mut redis = state.redis.clone();
        let _: () = redis.del(key(state, cookie)).await.map_err(ApiError::internal)?;
    }
    Ok(())
}

/// `Set-Cookie` for a new session; `Secure` when the request came over HTTPS (behind a proxy).
pub fn set_cookie(value: &str, headers: &HeaderMap) -> HeaderValue {
    let secure = headers.get("x-forwarded-proto").is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={TTL_SECS}{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static("fbtr_session=; Max-Age=0"))
}

pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("fbtr_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The form token of this request's session: derived from the cookie (which a page of another
/// site can neither read nor send, `SameSite=Strict`), so a form posted without the page's hidden
/// field is refused even from a browser that sends no `Sec-Fetch-Site` or `Origin`. `None` without
/// a session cookie.
pub fn csrf_token(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers).map(|cookie| token_hash(&format!("csrf:{cookie}")))
}

/// Whether `sent` is this session's form token (compared in constant time).
pub fn csrf_ok(headers: &HeaderMap, sent: Option<&str>) -> bool {
    match (csrf_token(headers), sent) {
        (Some(want), Some(sent)) => constant_time_eq(want.as_bytes(), sent.as_bytes()),
        _ => false,
    }
}

/// A short, stable name of this request's session for the audit trail: the first 8 hex digits of
/// the SHA-256 of the cookie's SHA-256 (its Redis key names the latter; neither can be turned back
/// into the cookie).
pub fn audit_name(headers: &HeaderMap) -> Option<String> {
    cookie_value(headers).map(|cookie| token_hash(&token_hash(cookie)).chars().take(8).collect())
}

/// Our cookie's value when it has the shape we hand out (64 hex digits).
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Browsers say where a request came from; refuse state changes started by another site
/// (`SameSite=Strict` already keeps the cookie off them; this also covers the login form).
pub fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|site| !matches!(site, "same-origin" | "none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookies(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn finds_only_a_well_formed_session_cookie() {
        let good = "ab".repeat(32);
        assert_eq!(cookie_value(&cookies(&format!("a=1; fbtr_session={good}; b=2"))), Some(good.as_str()));
        assert_eq!(cookie_value(&cookies("fbtr_session=short")), None);
        assert_eq!(cookie_value(&cookies(&format!("fbtr_session={}", "zz".repeat(32)))), None);
        assert_eq!(cookie_value(&HeaderMap::new()), None);
    }

    #[test]
    fn cookie_attributes() {
        let v = set_cookie(&"ab".repeat(32), &HeaderMap::new());
        let v = v.to_str().expect("ascii");
        assert!(v.contains("HttpOnly") && v.contains("SameSite=Strict") && v.contains("Path=/"), "{v}");
        assert!(!v.contains("Secure"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(set_cookie("x", &h).to_str().expect("ascii").ends_with("; Secure"));
    }

    #[test]
    fn cross_site_requests_are_told_apart() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("sec-fetch-site", HeaderValue::from_static(v));
            h
        };
        assert!(!cross_site(&HeaderMap::new()));
        assert!(!cross_site(&with("same-origin")));
        assert!(!cross_site(&with("none")));
        assert!(cross_site(&with("cross-site")));
        assert!(cross_site(&with("same-site")));
    }
}
