//! Graph errors, classified by code and subcode into what the caller must do. Never by message
//! text: Chatwoot matched on text and flagged healthy pages (its issues #3133, #14729).

use std::{fmt, time::Duration};

/// What a failed Graph call means for the token and the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The token is dead (190 any subcode, 102).
    Auth,
    /// The token lacks or lost a permission (10, 200-299).
    Permission,
    /// The object does not exist or cannot be seen (100 / subcode 33).
    NotFound,
    /// Throttled; `retry_after` says for how long when Graph announced it.
    RateLimited,
    /// Try again later: 1, 2, `is_transient`, HTTP 5xx, timeouts, connection errors, bodies that are
    /// not Graph JSON.
    Transient,
    /// A request Graph refused for another reason (a missing appsecret_proof, a bad parameter):
    /// a fault of ours or of the configuration, never evidence against the token.
    Invalid,
}

impl ErrorKind {
    /// Confirmed failures count toward the reauthorization flag; nothing else may.
    pub fn is_confirmed_failure(self) -> bool {
        matches!(self, Self::Auth | Self::Permission | Self::NotFound)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Permission => "permission",
            Self::NotFound => "not_found",
            Self::RateLimited => "rate_limited",
            Self::Transient => "transient",
            Self::Invalid => "invalid",
        }
    }
}

/// Rate-limit codes: 4 app, 17 user, 32 page, 613 custom, 341 app limit, 80000-80014 business use case.
fn is_rate_limit_code(code: i64) -> bool {
    matches!(code, 4 | 17 | 32 | 341 | 613 | 80_000..=80_014)
}

/// The class of a Graph error object (code, error_subcode, is_transient) seen with an HTTP status.
pub fn classify(code: Option<i64>, subcode: Option<i64>, is_transient: bool, http_status: Option<u16>) -> ErrorKind {
    // Graph marks its rate limits `is_transient`; they still need the rate-limit handling.
    if code.is_some_and(is_rate_limit_code) {
        return ErrorKind::RateLimited;
    }
    // A false flag silences an inbox until a person acts, so anything else Graph itself calls
    // temporary is temporary, whatever the code.
    if is_transient {
        return ErrorKind::Transient;
    }
    match code {
        Some(190 | 102) => return ErrorKind::Auth,
        Some(10 | 200..=299) => return ErrorKind::Permission,
        Some(100) if subcode == Some(33) => return ErrorKind::NotFound,
        Some(1 | 2) => return ErrorKind::Transient,
        _ => {}
    }
    match http_status {
        Some(429) => ErrorKind::RateLimited,
        Some(s) if s >= 500 => ErrorKind::Transient,
        // Graph answers errors with a JSON error object; a 4xx without a known code is a request
        // we should not have made, not a verdict on the token.
        Some(_) if code.is_some() => ErrorKind::Invalid,
        _ => ErrorKind::Transient,
    }
}

/// A failed Graph call: the Graph error object when there was one, else a description of what went
/// wrong on the way (timeout, connection, body). Never carries a token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct GraphError {
    pub kind: ErrorKind,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub message: String,
    pub http_status: Option<u16>,
    /// How long Graph asked us to stay away (rate limits), when it said.
    pub retry_after: Option<Duration>,
    /// An app-wide limit (code 4 or `X-App-Usage` at 100%) rather than one page's.
    pub app_level: bool,
}

impl GraphError {
    pub fn transport(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            code: None,
            subcode: None,
            message: message.into(),
            http_status: None,
            retry_after: None,
            app_level: false,
        }
    }

    /// The user is not (or no longer) an admin of the page: a confirmed failure without a Graph code.
    pub fn page_not_managed(page_id: &str) -> Self {
        Self {
            kind: ErrorKind::NotFound,
            code: None,
            subcode: None,
            message: format!("page {page_id} is not among the user's pages (no longer admin, or page deleted)"),
            http_status: None,
            retry_after: None,
            app_level: false,
        }
    }
}

impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        match (self.code, self.subcode) {
            (Some(c), Some(s)) => write!(f, " (code {c}, subcode {s})"),
            (Some(c), None) => write!(f, " (code {c})"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ErrorKind::*, *};

    #[test]
    fn every_row_of_the_table() {
        type Row = (Option<i64>, Option<i64>, bool, Option<u16>, ErrorKind);
        let rows: &[Row] = &[
            (Some(190), None, false, Some(400), Auth),
            (Some(190), Some(458), false, Some(400), Auth),
            (Some(190), Some(459), false, Some(400), Auth),
            (Some(190), Some(460), false, Some(400), Auth),
            (Some(190), Some(463), false, Some(400), Auth),
            (Some(190), Some(464), false, Some(400), Auth),
            (Some(190), Some(467), false, Some(400), Auth),
            (Some(190), Some(492), false, Some(400), Auth),
            (Some(190), Some(493), false, Some(400), Auth),
            (Some(190), Some(12345), false, Some(400), Auth),
            (Some(102), None, false, Some(400), Auth),
            (Some(10), None, false, Some(403), Permission),
            (Some(200), None, false, Some(403), Permission),
            (Some(230), None, false, Some(400), Permission),
            (Some(299), None, false, Some(400), Permission),
            (Some(100), Some(33), false, Some(400), NotFound),
            (Some(100), None, false, Some(400), Invalid),
            (Some(100), Some(2018001), false, Some(400), Invalid),
            (Some(4), None, false, Some(400), RateLimited),
            (Some(17), None, false, Some(400), RateLimited),
            (Some(32), None, false, Some(400), RateLimited),
            (Some(613), None, false, Some(400), RateLimited),
            (Some(341), None, false, Some(400), RateLimited),
            (Some(80000), None, false, Some(400), RateLimited),
            (Some(80001), None, false, Some(400), RateLimited),
            (Some(80014), None, false, Some(403), RateLimited),
            (Some(80015), None, false, Some(400), Invalid),
            (None, None, false, Some(429), RateLimited),
            (Some(1), None, false, Some(500), Transient),
            (Some(2), None, false, Some(503), Transient),
            (Some(190), None, true, Some(400), Transient),
            (Some(999), None, true, Some(400), Transient),
            (Some(32), None, true, Some(400), RateLimited),
            (Some(4), None, true, Some(403), RateLimited),
            (None, None, false, Some(500), Transient),
            (None, None, false, Some(502), Transient),
            (None, None, false, Some(503), Transient),
            (Some(999), None, false, Some(500), Transient),
            (None, None, false, None, Transient),
            (None, None, false, Some(400), Transient),
        ];
        for &(code, sub, transient, status, want) in rows {
            assert_eq!(
                classify(code, sub, transient, status),
                want,
                "code {code:?} sub {sub:?} transient {transient} status {status:?}"
            );
        }
    }

    #[test]
    fn only_auth_permission_and_not_found_are_confirmed() {
        for k in [Auth, Permission, NotFound] {
            assert!(k.is_confirmed_failure());
        }
        for k in [RateLimited, Transient, Invalid] {
            assert!(!k.is_confirmed_failure());
        }
    }
}
