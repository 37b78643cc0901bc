//! The Graph API client: page-token validation and finding a page's new token through the user
//! token. Every call carries `appsecret_proof` when the app secret is known; tokens go in the query
//! string as Graph expects, and never into an error (reqwest errors are stripped of their URL).

use std::{sync::Arc, time::Duration};

use reqwest::{StatusCode, header::HeaderMap};
use serde_json::Value;

use super::{
    error::{ErrorKind, GraphError, classify},
    proof::appsecret_proof,
    usage::{retry_after_from_headers, usage_percent},
};
use crate::{config::Config, secret::Secret};

/// A larger answer is not one Graph gives for these calls; refuse it rather than buffer it.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// `/me/accounts` pages to follow at most: a user with more than this many pages is not real, a
/// loop in `paging.next` might be.
const MAX_ACCOUNT_PAGES: usize = 1_000;

#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Base URL with the version, no trailing slash: `https://graph.facebook.com/v24.0`.
    pub base_url: String,
    pub app_id: Option<String>,
    pub app_secret: Option<Secret>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

impl GraphSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            base_url: config.fb_graph_url.clone(),
            app_id: config.fb_app_id.clone(),
            app_secret: config.fb_app_secret.clone(),
            timeout: config.fb_http_timeout,
            connect_timeout: config.fb_connect_timeout,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageInfo {
    pub id: String,
    pub name: Option<String>,
    /// What the usage headers of this answer said: Graph's warning before it starts refusing.
    pub usage: Usage,
}

/// Rate-limit usage announced on a successful answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Highest percentage in `X-App-Usage` (app-wide).
    pub app_pct: Option<u64>,
    /// Highest percentage in `X-Business-Use-Case-Usage` (this page).
    pub page_pct: Option<u64>,
    /// `estimated_time_to_regain_access`, when announced.
    pub regain: Option<std::time::Duration>,
}

impl Usage {
    fn from_headers(headers: &HeaderMap) -> Self {
        let mut app_only = headers.clone();
        app_only.remove("x-business-use-case-usage");
        let mut page_only = headers.clone();
        page_only.remove("x-app-usage");
        Self {
            app_pct: usage_percent(&app_only),
            page_pct: usage_percent(&page_only),
            regain: retry_after_from_headers(headers),
        }
    }
}

/// What the user token says about a page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageLookup {
    Found(Secret),
    /// Absent from the user's pages, or present without an `access_token`: the user is no longer
    /// admin, or the page is gone.
    NotManaged,
}

#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    settings: Arc<GraphSettings>,
}

impl GraphClient {
    pub fn new(settings: GraphSettings) -> Result<Self, GraphError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(256)
            .user_agent(concat!("fb-token-refresh/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::transport(format!("cannot build HTTP client: {}", describe(e))))?;
        Ok(Self { http, settings: Arc::new(settings) })
    }

    pub fn from_config(config: &Config) -> Result<Self, GraphError> {
        Self::new(GraphSettings::from_config(config))
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn settings(&self) -> &GraphSettings {
        &self.settings
    }

    /// `GET /{page_id}?fields=id,name` with the page token: is the token alive?
    pub async fn validate_page(&self, page_id: &str, page_token: &Secret) -> Result<PageInfo, GraphError> {
        check_page_id(page_id)?;
        let url = format!("{}/{page_id}", self.settings.base_url);
        let (body, usage) = self.get_with_usage(&url, page_token, &[("fields", "id,name")]).await?;
        let id = body.get("id").and_then(id_string).ok_or_else(|| malformed("page validation answer has no id"))?;
        if id != page_id {
            return Err(malformed("page validation answered for another page"));
        }
        let name = body.get("name").and_then(Value::as_str).map(str::to_owned);
        Ok(PageInfo { id, name, usage })
    }

    /// Finds the page's current token among the user's pages, following `paging.next` until the
    /// page shows up or the list ends.
    pub async fn find_page_token(&self, user_token: &Secret, page_id: &str) -> Result<PageLookup, GraphError> {
        let mut found = self.find_page_tokens(user_token, &[page_id.to_owned()]).await?;
        Ok(found.remove(page_id).unwrap_or(PageLookup::NotManaged))
    }

    /// One `/me/accounts` sweep for several pages of one user: follows `paging.next` until every
    /// page showed up or the list ends. Pages never seen are `NotManaged`.
    pub async fn find_page_tokens(
        &self,
        user_token: &Secret,
        page_ids: &[String],
    ) -> Result<std::collections::HashMap<String, PageLookup>, GraphError> {
        for id in page_ids {
            check_page_id(id)?;
        }
        let mut left: std::collections::HashSet<&str> = page_ids.iter().map(String::as_str).collect();
        let mut found = std::collections::HashMap::new();
        let mut url = format!("{}/me/accounts", self.settings.base_url);
        let mut params: Vec<(String, String)> = vec![("fields".into(), "id,name,access_token".into())];
        for _ in 0..MAX_ACCOUNT_PAGES {
            let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let body = self.get(&url, user_token, &borrowed).await?;
            let data = body
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed("/me/accounts answer has no data array"))?;
            for page in data {
                let Some(id) = page.get("id").and_then(id_string) else { continue };
                if left.remove(id.as_str()) {
                    let lookup = match page.get("access_token").and_then(Value::as_str) {
                        Some(token) if !token.is_empty() => PageLookup::Found(Secret::new(token)),
                        _ => PageLookup::NotManaged,
                    };
                    found.insert(id, lookup);
                }
            }
            let next = body.pointer("/paging/next").and_then(Value::as_str);
            match next {
                Some(next) if !left.is_empty() => (url, params) = self.split_next(next)?,
                _ => {
                    for id in left {
                        found.insert(id.to_owned(), PageLookup::NotManaged);
                    }
                    return Ok(found);
                }
            }
        }
        Err(malformed("/me/accounts paging did not end"))
    }

    /// `GET /{page_id}?fields=access_token` with the user token: one call instead of a sweep.
    pub async fn page_token_lookup(&self, user_token: &Secret, page_id: &str) -> Result<PageLookup, GraphError> {
        check_page_id(page_id)?;
        let url = format!("{}/{page_id}", self.settings.base_url);
        let body = self.get(&url, user_token, &[("fields", "access_token")]).await?;
        Ok(match body.get("access_token").and_then(Value::as_str) {
            Some(token) if !token.is_empty() => PageLookup::Found(Secret::new(token)),
            _ => PageLookup::NotManaged,
        })
    }

    /// `paging.next` is an absolute URL carrying the token; keep its cursor parameters, drop its
    /// token and proof (we add ours), and refuse to follow it anywhere but Graph.
    fn split_next(&self, next: &str) -> Result<(String, Vec<(String, String)>), GraphError> {
        let parsed = url::Url::parse(next).map_err(|_| malformed("paging.next is not a URL"))?;
        let base = url::Url::parse(&self.settings.base_url).map_err(|_| malformed("bad base URL"))?;
        if parsed.origin() != base.origin() {
            return Err(malformed("paging.next points away from the Graph API host"));
        }
        let params = parsed
            .query_pairs()
            .filter(|(k, _)| k != "access_token" && k != "appsecret_proof")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut bare = parsed;
        bare.set_query(None);
        Ok((bare.to_string(), params))
    }

    /// A call with an app token (debug_token): the same as any call, proof included.
    pub(crate) async fn get_token_call(
        &self,
        url: &str,
        token: &Secret,
        params: &[(&str, &str)],
    ) -> Result<Value, GraphError> {
        self.get(url, token, params).await
    }

    /// A call that carries its credentials in its own parameters (the token exchange).
    pub(crate) async fn get_public(&self, url: &str, params: &[(&str, &str)]) -> Result<Value, GraphError> {
        let response = self.http.get(url).query(params).send().await.map_err(|e| GraphError::transport(describe(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_limited(response).await?;
        interpret(status, &headers, &bytes)
    }

    async fn get(&self, url: &str, token: &Secret, params: &[(&str, &str)]) -> Result<Value, GraphError> {
        Ok(self.get_with_usage(url, token, params).await?.0)
    }

    async fn get_with_usage(
        &self,
        url: &str,
        token: &Secret,
        params: &[(&str, &str)],
    ) -> Result<(Value, Usage), GraphError> {
        let mut request = self.http.get(url).query(params).query(&[("access_token", token.expose())]);
        if let Some(secret) = &self.settings.app_secret {
            request = request.query(&[("appsecret_proof", appsecret_proof(secret, token.expose()))]);
        }
        let response = request.send().await.map_err(|e| GraphError::transport(describe(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_limited(response).await?;
        Ok((interpret(status, &headers, &bytes)?, Usage::from_headers(&headers)))
    }
}

pub(crate) async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, GraphError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| GraphError::transport(describe(e)))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(GraphError::transport(format!("Graph answer larger than {MAX_BODY_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Turns one HTTP answer into a JSON body or a classified error.
pub(crate) fn interpret(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Result<Value, GraphError> {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(error) = json.as_ref().and_then(|j| j.get("error")).filter(|e| e.is_object()) {
        return Err(from_error_object(error, Some(status.as_u16()), headers));
    }
    if !status.is_success() {
        let kind = classify(None, None, false, Some(status.as_u16()));
        let mut err = GraphError::transport(format!("Graph answered HTTP {} without an error object", status.as_u16()));
        err.kind = kind;
        err.http_status = Some(status.as_u16());
        if kind == ErrorKind::RateLimited {
            err.retry_after = retry_after_from_headers(headers);
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

/// A Graph error object (`{"message", "type", "code", "error_subcode", "is_transient", ...}`).
pub fn from_error_object(error: &Value, http_status: Option<u16>, headers: &HeaderMap) -> GraphError {
    let code = error.get("code").and_then(int);
    let subcode = error.get("error_subcode").and_then(int);
    let is_transient = error.get("is_transient").and_then(Value::as_bool).unwrap_or(false);
    let message = error.get("message").and_then(Value::as_str).unwrap_or("Graph error without a message");
    let kind = classify(code, subcode, is_transient, http_status);
    let app_level = matches!(code, Some(4)) || (kind == ErrorKind::RateLimited && usage_percent_app(headers));
    GraphError {
        kind,
        code,
        subcode,
        message: message.chars().take(1_000).collect(),
        http_status,
        retry_after: if kind == ErrorKind::RateLimited { retry_after_from_headers(headers) } else { None },
        app_level,
    }
}

fn usage_percent_app(headers: &HeaderMap) -> bool {
    headers.contains_key("x-app-usage")
        && !headers.contains_key("x-business-use-case-usage")
        && usage_percent(headers).is_some_and(|p| p >= 100)
}

/// Graph sends integers, but some proxies and old SDKs send them as strings.
fn int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

fn id_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string()))
}

fn malformed(what: &str) -> GraphError {
    GraphError::transport(format!("malformed Graph answer: {what}"))
}

pub(crate) fn check_page_id(page_id: &str) -> Result<(), GraphError> {
    if page_id.is_empty() || page_id.len() > 64 || !page_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(GraphError {
            kind: ErrorKind::Invalid,
            code: None,
            subcode: None,
            message: "malformed page id (Graph page ids are digits)".into(),
            http_status: None,
            retry_after: None,
            app_level: false,
        });
    }
    Ok(())
}

/// A transport error's description without its URL (which carries the token).
pub(crate) fn describe(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else if e.is_builder() {
        "bad request"
    } else {
        "request failed"
    };
    let e = e.without_url();
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;
    use serde_json::json;

    use super::*;

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
        let e = interpret(StatusCode::BAD_REQUEST, &h, body.to_string().as_bytes()).expect_err("error");
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(Duration::from_secs(180)));
        assert!(!e.app_level);
    }

    #[test]
    fn unusual_190_message_is_still_auth() {
        let body =
            json!({"error": {"message": "Something nobody has seen before", "code": 190, "error_subcode": "460"}});
        let e = interpret(StatusCode::BAD_REQUEST, &HeaderMap::new(), body.to_string().as_bytes()).expect_err("error");
        assert_eq!((e.kind, e.code, e.subcode), (ErrorKind::Auth, Some(190), Some(460)));
    }

    #[test]
    fn html_and_empty_bodies_are_transient() {
        for (status, body) in
            [(502u16, "<html>Bad Gateway</html>"), (200, "<html>ok</html>"), (200, ""), (200, "\"a string\"")]
        {
            let e = interpret(StatusCode::from_u16(status).expect("status"), &HeaderMap::new(), body.as_bytes())
                .expect_err("error");
            assert_eq!(e.kind, ErrorKind::Transient, "{status} {body}");
        }
    }

    #[test]
    fn http_429_without_body_is_rate_limited() {
        let e = interpret(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b"").expect_err("error");
        assert_eq!(e.kind, ErrorKind::RateLimited);
    }

    #[test]
    fn app_limit_is_app_level() {
        let body = json!({"error": {"message": "Application request limit reached", "code": 4}});
        let e = interpret(StatusCode::FORBIDDEN, &HeaderMap::new(), body.to_string().as_bytes()).expect_err("error");
        assert!(e.app_level);
    }

    #[test]
    fn page_ids_are_checked_before_any_call() {
        for bad in ["", "12a", "../me", "1/2", "1?x=1"] {
            assert_eq!(check_page_id(bad).expect_err(bad).kind, ErrorKind::Invalid);
        }
        assert!(check_page_id("1234567890").is_ok());
    }
}
