//! Token introspection and renewal: `debug_token` (expiry, data-access expiry, validity, scopes) and
//! the long-lived user-token exchange. Both need the app id and secret.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

use super::{ErrorKind, GraphClient, GraphError, answer::error_object};
use crate::secret::Secret;

/// What Chatwoot's Facebook channel sends with; its login asks for it (`channels/Facebook.vue`).
pub const MESSAGING_SCOPE: &str = "pages_messaging";

/// What `debug_token` says about a token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenInfo {
    pub is_valid: bool,
    /// `None` when it never expires (`expires_at: 0`).
    pub expires_at: Option<DateTime<Utc>>,
    pub data_access_expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
    /// Why it is invalid, when it is.
    pub error: Option<GraphError>,
}

fn needs_app() -> GraphError {
    GraphError {
        kind: ErrorKind::Invalid,
        ..GraphError::transport("FB_APP_ID and FB_APP_SECRET are needed for this call")
    }
}

fn when(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let secs = v.and_then(Value::as_i64).filter(|s| *s > 0)?;
    Utc.timestamp_opt(secs, 0).single()
}

impl GraphClient {
    /// `GET /debug_token?input_token=T` with the app token.
    pub async fn debug_token(&self, input: &Secret) -> Result<TokenInfo, GraphError> {
        let app = self.app_token().ok_or_else(needs_app)?.clone();
        let url = format!("{}/debug_token", self.settings().base_url);
        let body = self.get_token_call(&url, &app, &[("input_token", input.expose())], &[input]).await?;
        // `data.error` is Graph's text about the input token, which it may quote.
        let presented = self.presented(&[input]);
        let data =
            body.get("data").ok_or_else(|| GraphError::transport("malformed Graph answer: debug_token has no data"))?;
        Ok(TokenInfo {
            is_valid: data.get("is_valid").and_then(Value::as_bool).unwrap_or(false),
            expires_at: when(data.get("expires_at")),
            data_access_expires_at: when(data.get("data_access_expires_at")),
            scopes: data
                .get("scopes")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                .unwrap_or_default(),
            error: data
                .get("error")
                .filter(|e| e.is_object())
                .map(|e| error_object(e, None, &Default::default(), &presented)),
        })
    }

    /// Exchanges a (still valid) user token for a fresh long-lived one.
    pub async fn exchange_user_token(&self, user_token: &Secret) -> Result<Secret, GraphError> {
        let s = self.settings();
        let (Some(id), Some(secret)) = (&s.app_id, &s.app_secret) else { return Err(needs_app()) };
        let url = format!("{}/oauth/access_token", s.base_url);
        let params = [
            ("grant_type", "fb_exchange_token"),
            ("client_id", id.as_str()),
            ("client_secret", secret.expose()),
            ("fb_exchange_token", user_token.expose()),
        ];
        let body = self.get_public(&url, &params, &[user_token]).await?;
        match body.get("access_token").and_then(Value::as_str) {
            Some(t) if !t.is_empty() => Ok(Secret::new(t)),
            _ => Err(GraphError::transport("malformed Graph answer: the exchange gave no access_token")),
        }
    }
}
