//! Reading one Graph answer: a JSON body, or a classified error. This is where Graph's text enters
//! the system, so it is scrubbed here (see `scrub`) and its announced wait capped here, once, for
//! every consumer after it.

use std::time::Duration;

use reqwest::{StatusCode, header::HeaderMap};
use serde_json::Value;

use super::{
    error::{ErrorKind, GraphError, classify},
    scrub,
    usage::{app_usage_percent, page_usage_percent, retry_after_from_headers},
};

/// The longest wait an answer read without a configuration may announce: the upper bound
/// `RATE_LIMIT_MAX_WAIT_SECS` accepts.
pub(crate) const MAX_ANNOUNCED_WAIT: Duration = Duration::from_secs(7 * 86_400);

/// How much of Graph's message is kept.
const MAX_MESSAGE_CHARS: usize = 1_000;

/// What an answer is read with: the secrets its call presented (Graph may quote them back) and the
/// longest wait it may impose.
pub(crate) struct Presented<'a> {
    secrets: Vec<&'a str>,
    max_wait: Duration,
}

impl<'a> Presented<'a> {
    pub fn new(secrets: Vec<&'a str>, max_wait: Duration) -> Self {
        Self { secrets, max_wait }
    }

    /// For error objects that did not come from a call of ours (send-failure reports): only the
    /// token-shape backstop applies.
    pub fn nothing() -> Self {
        Self::new(Vec::new(), MAX_ANNOUNCED_WAIT)
    }

    pub fn scrub(&self, text: &str) -> String {
        scrub::scrub(text, &self.secrets)
    }
}

/// Turns one HTTP answer into a JSON body or a classified error.
pub(crate) fn interpret(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    presented: &Presented<'_>,
) -> Result<Value, GraphError> {
    if status.is_redirection() {
        // Never followed: a redirect would hand the query (tokens, proofs) and a batch's form body
        // to another host. Graph does not redirect API calls, so this is a proxy or a wrong URL.
        let mut err = GraphError::transport(format!(
            "Graph answered with a redirect (HTTP {}), which is not followed: check FB_GRAPH_URL",
            status.as_u16()
        ));
        err.http_status = Some(status.as_u16());
        return Err(err);
    }
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(error) = json.as_ref().and_then(|j| j.get("error")).filter(|e| e.is_object()) {
        return Err(error_object(error, Some(status.as_u16()), headers, presented));
    }
    if !status.is_success() {
        let kind = classify(None, None, false, Some(status.as_u16()));
        let mut err = GraphError::transport(format!("Graph answered HTTP {} without an error object", status.as_u16()));
        err.kind = kind;
        err.http_status = Some(status.as_u16());
        if kind == ErrorKind::RateLimited {
            err.retry_after = retry_after_from_headers(headers, presented.max_wait);
        }
        return Err(err);
    }
    match json {
        Some(v) if v.is_object() || v.is_array() => Ok(v),
        _ => {
            let mut err = GraphError::transport("Graph answered with a body that is not JSON");
            err.http_status = Some(status.as_u16());
            Err(err)
        }
    }
}

/// A Graph error object (`{"message", "type", "code", "error_subcode", "is_transient", ...}`)
/// that did not come from a call of ours: its message gets the token-shape backstop.
pub fn from_error_object(error: &Value, http_status: Option<u16>, headers: &HeaderMap) -> GraphError {
    error_object(error, http_status, headers, &Presented::nothing())
}

pub(crate) fn error_object(
    error: &Value,
    http_status: Option<u16>,
    headers: &HeaderMap,
    presented: &Presented<'_>,
) -> GraphError {
    let code = error.get("code").and_then(int);
    let subcode = error.get("error_subcode").and_then(int);
    let is_transient = error.get("is_transient").and_then(Value::as_bool).unwrap_or(false);
    let message = error.get("message").and_then(Value::as_str).unwrap_or("Graph error without a message");
    let kind = classify(code, subcode, is_transient, http_status);
    let app_level = matches!(code, Some(4)) || (kind == ErrorKind::RateLimited && app_usage_exhausted(headers));
    GraphError {
        kind,
        code,
        subcode,
        // Scrubbed whole, then cut: a token split by the cut would escape the exact match.
        message: presented.scrub(message).chars().take(MAX_MESSAGE_CHARS).collect(),
        http_status,
        retry_after: if kind == ErrorKind::RateLimited {
            retry_after_from_headers(headers, presented.max_wait)
        } else {
            None
        },
        app_level,
    }
}

/// `X-App-Usage` at 100 % with no page-level header: the app, not a page, is throttled.
fn app_usage_exhausted(headers: &HeaderMap) -> bool {
    page_usage_percent(headers).is_none() && app_usage_percent(headers).is_some_and(|p| p >= 100)
}

/// Graph sends integers, but some proxies and old SDKs send them as strings.
fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use serde_json::json;

    use super::*;

    fn read(status: u16, headers: &HeaderMap, body: &str) -> GraphError {
        let status = StatusCode::from_u16(status).expect("status");
        interpret(status, headers, body.as_bytes(), &Presented::nothing()).expect_err("error")
    }

    #[test]
    fn error_object_is_classified_with_wait() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"1":[{"type":"pages","call_count":100,"estimated_time_to_regain_access":3}]}"#,
            ),
        );
        let body = json!({"error": {"message": "Page request limit reached", "type": "OAuthException", "code": 32}});
        let e = read(400, &h, &body.to_string());
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(180)));
        assert!(!e.app_level);
    }

    #[test]
    fn announced_wait_is_capped_by_the_caller() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(r#"{"1":[{"type":"pages","estimated_time_to_regain_access":200000000000}]}"#),
        );
        let body = json!({"error": {"message": "Page request limit reached", "code": 32}}).to_string();
        let presented = Presented::new(vec![], Duration::from_secs(600));
        let e = interpret(StatusCode::BAD_REQUEST, &h, body.as_bytes(), &presented).expect_err("error");
        assert_eq!(e.retry_after, Some(Duration::from_secs(600)));
        assert_eq!(read(400, &h, &body).retry_after, Some(MAX_ANNOUNCED_WAIT));
    }

    #[test]
    fn quoted_secrets_never_leave_the_reader() {
        let token = "presented-token-not-shaped-like-facebook";
        let body = json!({"error": {"message": format!("Malformed access token {token} (app 1|s3cret, s3cret)"), "code": 190}});
        let presented = Presented::new(vec![token, "s3cret", "1|s3cret"], MAX_ANNOUNCED_WAIT);
        let e = interpret(StatusCode::BAD_REQUEST, &HeaderMap::new(), body.to_string().as_bytes(), &presented)
            .expect_err("error");
        assert_eq!(e.message, "Malformed access token [redacted] (app [redacted], [redacted])");
        assert_eq!(e.kind, ErrorKind::Auth);
        let shaped = json!({"message": format!("Malformed access token EAAG{}", "x".repeat(40)), "code": 190});
        assert_eq!(from_error_object(&shaped, None, &HeaderMap::new()).message, "Malformed access token [redacted]");
    }

    #[test]
    fn a_long_message_is_scrubbed_before_it_is_cut() {
        let token = "t".repeat(30);
        let message = format!("{}{token}", "a".repeat(MAX_MESSAGE_CHARS - 10));
        let body = json!({"error": {"message": message, "code": 190}}).to_string();
        let presented = Presented::new(vec![&token], MAX_ANNOUNCED_WAIT);
        let e = interpret(StatusCode::BAD_REQUEST, &HeaderMap::new(), body.as_bytes(), &presented).expect_err("e");
        assert!(!e.message.contains("tttttttttt"), "{}", e.message);
    }

    #[test]
    fn unusual_190_message_is_still_auth() {
        let body =
            json!({"error": {"message": "Something nobody has seen before", "code": 190, "error_subcode": "460"}});
        let e = read(400, &HeaderMap::new(), &body.to_string());
        assert_eq!((e.kind, e.code, e.subcode), (ErrorKind::Auth, Some(190), Some(460)));
    }

    #[test]
    fn html_and_empty_bodies_are_transient() {
        for (status, body) in
            [(502u16, "<html>Bad Gateway</html>"), (200, "<html>ok</html>"), (200, ""), (200, "\"a string\"")]
        {
            assert_eq!(read(status, &HeaderMap::new(), body).kind, ErrorKind::Transient, "{status} {body}");
        }
    }

    #[test]
    fn redirects_are_transient_and_say_so() {
        for status in [301u16, 302, 303, 307, 308] {
            let body = json!({"error": {"message": "x", "code": 190}}).to_string();
            let e = read(status, &HeaderMap::new(), &body);
            assert_eq!(e.kind, ErrorKind::Transient, "{status}");
            assert!(e.message.contains("redirect") && e.message.contains("not followed"), "{}", e.message);
        }
    }

    #[test]
    fn http_429_without_body_is_rate_limited() {
        assert_eq!(read(429, &HeaderMap::new(), "").kind, ErrorKind::RateLimited);
    }

    #[test]
    fn app_limit_is_app_level() {
        let body = json!({"error": {"message": "Application request limit reached", "code": 4}});
        assert!(read(403, &HeaderMap::new(), &body.to_string()).app_level);
    }
}
