//! Graph-style error objects: `{"error": {"message", "type", "code", "error_subcode", "is_transient",
//! "fbtrace_id"}}`, with the HTTP status Facebook answers them with.

use rand::{Rng, distr::Alphanumeric};
use serde_json::{Map, Value, json};

/// One Graph error, before it becomes a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphError {
    pub status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub kind: &'static str,
    pub transient: bool,
}

impl GraphError {
    pub fn new(status: u16, code: i64, subcode: Option<i64>, kind: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, subcode, message: message.into(), kind, transient: false }
    }

    /// An error set on a token by the world (`kill_*`): type OAuthException, HTTP status by code.
    pub fn from_code(code: i64, subcode: Option<i64>, message: &str) -> Self {
        let mut e = Self::new(status_for_code(code), code, subcode, "OAuthException", message);
        e.transient = matches!(code, 1 | 2);
        e
    }

    pub fn transient(mut self) -> Self {
        self.transient = true;
        self
    }

    pub fn body(&self) -> Value {
        let mut err = Map::new();
        err.insert("message".into(), Value::from(self.message.clone()));
        err.insert("type".into(), Value::from(self.kind));
        err.insert("code".into(), Value::from(self.code));
        if let Some(sub) = self.subcode {
            err.insert("error_subcode".into(), Value::from(sub));
        }
        err.insert("is_transient".into(), Value::from(self.transient));
        if let Some((title, msg)) = user_texts(self.code, self.subcode) {
            err.insert("error_user_title".into(), Value::from(title));
            err.insert("error_user_msg".into(), Value::from(msg));
        }
        err.insert("fbtrace_id".into(), Value::from(fbtrace_id()));
        json!({ "error": err })
    }

    /// The `{"code", "message", "subcode"}` object `debug_token` shows for an invalid token.
    pub fn debug_object(&self) -> Value {
        let mut o = Map::new();
        o.insert("code".into(), Value::from(self.code));
        o.insert("message".into(), Value::from(self.message.clone()));
        if let Some(sub) = self.subcode {
            o.insert("subcode".into(), Value::from(sub));
        }
        Value::Object(o)
    }

    // ---- the errors the simulator answers with ----

    pub fn cannot_parse_token() -> Self {
        Self::new(400, 190, None, "OAuthException", "Invalid OAuth access token - Cannot parse access token")
    }

    /// What Graph answers for a token it cannot parse, quoting it: why Graph's text is scrubbed.
    pub fn malformed_token(token: &str) -> Self {
        Self::new(400, 190, None, "OAuthException", format!("Malformed access token {token}"))
    }

    pub fn bad_app_token_signature() -> Self {
        Self::new(400, 190, None, "OAuthException", "Invalid OAuth access token signature.")
    }

    pub fn token_required() -> Self {
        Self::new(400, 104, None, "OAuthException", "An access token is required to request this resource.")
    }

    pub fn active_token_required() -> Self {
        Self::new(
            400,
            2500,
            None,
            "OAuthException",
            "An active access token must be used to query information about the current user.",
        )
    }

    pub fn no_such_object(method: &str, id: &str) -> Self {
        Self::new(
            400,
            100,
            Some(33),
            "GraphMethodException",
            format!(
                "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to missing \
                 permissions, or does not support this operation. Please read the Graph API documentation at \
                 https://developers.facebook.com/docs/graph-api",
                method.to_ascii_lowercase()
            ),
        )
    }

    pub fn unsupported(method: &str) -> Self {
        Self::new(
            400,
            100,
            None,
            "GraphMethodException",
            format!("Unsupported {} request.", method.to_ascii_lowercase()),
        )
    }

    pub fn unknown_path(path: &str) -> Self {
        Self::new(400, 2500, None, "OAuthException", format!("Unknown path components: {path}"))
    }

    pub fn nonexisting_field(field: &str, node: &str) -> Self {
        Self::new(
            400,
            100,
            None,
            "OAuthException",
            format!("(#100) Tried accessing nonexisting field ({field}) on node type ({node})"),
        )
    }

    pub fn param(message: impl Into<String>) -> Self {
        Self::new(400, 100, None, "OAuthException", message)
    }

    pub fn proof_missing() -> Self {
        Self::new(
            400,
            100,
            None,
            "GraphMethodException",
            "API calls from the server require an appsecret_proof argument",
        )
    }

    pub fn proof_wrong() -> Self {
        Self::new(400, 100, None, "GraphMethodException", "Invalid appsecret_proof provided in the API argument")
    }

    pub fn no_role_on_page() -> Self {
        Self::from_code(
            190,
            Some(492),
            "Error validating access token: The user must be an administrator, editor, or moderator of the page \
             in order to impersonate it.",
        )
    }

    pub fn session_expired(expired_at: i64, now: i64) -> Self {
        Self::from_code(
            190,
            Some(463),
            &format!(
                "Error validating access token: Session has expired on {}. The current time is {}.",
                human_time(expired_at),
                human_time(now)
            ),
        )
    }

    pub fn data_access_expired() -> Self {
        Self::from_code(
            190,
            Some(493),
            "Error validating access token: Data access has expired for this user because they have not used \
             the app in 90 days.",
        )
    }

    pub fn bad_client_secret() -> Self {
        Self::new(400, 1, None, "OAuthException", "Error validating client secret.")
    }

    pub fn bad_client_id() -> Self {
        Self::new(400, 101, None, "OAuthException", "Error validating application. Invalid application ID.")
    }

    pub fn rate_limited(code: i64) -> Self {
        let message = match code {
            4 => "Application request limit reached",
            17 => "User request limit reached",
            32 => "Page request limit reached",
            613 => "Calls to this api have exceeded the rate limit.",
            80000..=80014 => {
                "There have been too many calls to this Page account. Wait a bit and try again. For more info, \
                 please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting."
            }
            _ => "Request limit reached",
        };
        Self::new(400, code, None, "OAuthException", message).transient()
    }

    pub fn server_error() -> Self {
        Self::new(500, 1, None, "OAuthException", "An unknown error has occurred.").transient()
    }

    pub fn service_unavailable() -> Self {
        Self::new(503, 2, None, "OAuthException", "Service temporarily unavailable").transient()
    }
}

/// Permission errors come back as 403, temporary ones as 500, the rest as 400.
pub(crate) fn status_for_code(code: i64) -> u16 {
    match code {
        10 | 200..=299 => 403,
        1 | 2 => 500,
        _ => 400,
    }
}

fn user_texts(code: i64, subcode: Option<i64>) -> Option<(&'static str, &'static str)> {
    match (code, subcode?) {
        (190, 460) => Some(("Password changed", "Your password has been changed. Please log out and log in again.")),
        (190, 463) => Some(("Session expired", "Your session has expired. Please log in again.")),
        (190, 458) => Some(("App not installed", "The app has been removed. Please log in again.")),
        _ => None,
    }
}

/// A random trace id like Facebook's (`AbC1dEf2GhI3jKl4MnO5pQr`).
pub(crate) fn fbtrace_id() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(23).map(char::from).collect()
}

/// Adds a fresh `fbtrace_id` to a caller-supplied error body that lacks one.
pub(crate) fn with_trace_id(mut body: Value) -> Value {
    if let Some(err) = body.get_mut("error").and_then(Value::as_object_mut)
        && !err.contains_key("fbtrace_id")
    {
        err.insert("fbtrace_id".into(), Value::from(fbtrace_id()));
    }
    body
}

fn human_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%A, %d-%b-%y %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}
