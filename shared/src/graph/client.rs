//! The Graph API client: page-token validation and finding a page's new token through the user
//! token. Every call carries `appsecret_proof` when the app secret is known; tokens go in the query
//! string as Graph expects, and never into an error: reqwest errors are stripped of their URL, and
//! Graph's own text is scrubbed of every secret the call presented (`answer::Presented`).

use std::{sync::Arc, time::Duration};

use serde_json::Value;

use super::{
    answer::{Presented, interpret},
    error::{ErrorKind, GraphError},
    proof::appsecret_proof,
    usage::Usage,
};
use crate::{config::Config, secret::Secret};

/// A larger answer is not one Graph gives for these calls; refuse it rather than buffer it.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// `/me/accounts` pages to follow at most: a user with more than this many pages is not real, a
/// loop in `paging.next` might be.
const MAX_ACCOUNT_PAGES: usize = 1_000;
/// `/me/accounts`'s largest page size (`limit` is a maximum; pages may come back shorter).
const ACCOUNTS_PAGE_LIMIT: &str = "100";

#[derive(Debug, Clone)]
pub struct GraphSettings {
    /// Base URL with the version, no trailing slash: `https://graph.facebook.com/v24.0`.
    pub base_url: String,
    pub app_id: Option<String>,
    pub app_secret: Option<Secret>,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The longest wait Graph may announce (`RATE_LIMIT_MAX_WAIT_SECS`); longer ones are cut to it.
    pub max_wait: Duration,
}

impl GraphSettings {
    pub fn from_config(config: &Config) -> Self {
        Self {
            base_url: config.fb_graph_url.clone(),
            app_id: config.fb_app_id.clone(),
            app_secret: config.fb_app_secret.clone(),
            timeout: config.fb_http_timeout,
            connect_timeout: config.fb_connect_timeout,
            max_wait: config.rate_limit_max_wait,
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
    /// `APP_ID|APP_SECRET`, when both are known.
    app_token: Option<Secret>,
}

impl GraphClient {
    pub fn new(settings: GraphSettings) -> Result<Self, GraphError> {
        if is_plaintext_remote(&settings.base_url) {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!(
                    "FB_GRAPH_URL is plain http:// to a host that is not loopback: tokens and app secret proofs cross the network unencrypted"
                );
            });
        }
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .pool_max_idle_per_host(256)
            .user_agent(concat!("fb-token-refresh/", env!("CARGO_PKG_VERSION")))
            // A redirect would replay tokens, proofs and a batch's form body to wherever it
            // points, and reqwest's Referer carries the query; `answer::interpret` reports a 3xx.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| GraphError::transport(format!("cannot build HTTP client: {}", describe(e))))?;
        let app_token = match (&settings.app_id, &settings.app_secret) {
            (Some(id), Some(secret)) => Some(Secret::new(format!("{id}|{}", secret.expose()))),
            _ => None,
        };
        Ok(Self { http, settings: Arc::new(settings), app_token })
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

    pub(crate) fn app_token(&self) -> Option<&Secret> {
        self.app_token.as_ref()
    }

    /// How a call's answers are read: `tokens` are what it sent, and the app's own secrets go
    /// with every call (as proofs, the app token or the client secret).
    pub(crate) fn presented<'a>(&'a self, tokens: &[&'a Secret]) -> Presented<'a> {
        let mut secrets: Vec<&str> = tokens.iter().map(|t| t.expose()).collect();
        secrets.extend(self.app_token.iter().chain(&self.settings.app_secret).map(Secret::expose));
        Presented::new(secrets, self.settings.max_wait)
    }

    /// `GET /{page_id}?fields=id,name` with the page token: is the token alive?
    pub async fn validate_page(&self, page_id: &str, page_token: &Secret) -> Result<PageInfo, GraphError> {
        check_page_id(page_id)?;
        let url = format!("{}/{page_id}", self.settings.base_url);
        let (body, usage) = self.get_with_usage(&url, page_token, &[("fields", "id,name")], &[]).await?;
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
        self.sweep(user_token, Some(page_ids)).await
    }

    /// Every page of the user, from one sweep to the end of the list (the sweeps module shares it
    /// between the jobs of several of the user's pages).
    pub async fn all_page_tokens(
        &self,
        user_token: &Secret,
    ) -> Result<std::collections::HashMap<String, PageLookup>, GraphError> {
        self.sweep(user_token, None).await
    }

    /// `wanted`: stop once these showed up (and name the missing ones `NotManaged`); `None`: all.
    async fn sweep(
        &self,
        user_token: &Secret,
        wanted: Option<&[String]>,
    ) -> Result<std::collections::HashMap<String, PageLookup>, GraphError> {
        let all = wanted.is_none();
        let mut left: std::collections::HashSet<&str> = wanted.unwrap_or_default().iter().map(String::as_str).collect();
        let mut found = std::collections::HashMap::new();
        let mut url = format!("{}/me/accounts", self.settings.base_url);
        // The largest page Graph serves, not its default 25: a user who connected many pages (an
        // agency) is then one call per hundred pages instead of four.
        let mut params: Vec<(String, String)> =
            vec![("fields".into(), "id,name,access_token".into()), ("limit".into(), ACCOUNTS_PAGE_LIMIT.into())];
        for _ in 0..MAX_ACCOUNT_PAGES {
            let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let body = self.get(&url, user_token, &borrowed).await?;
            let data = body
                .get("data")
                .and_then(Value::as_array)
                .ok_or_else(|| malformed("/me/accounts answer has no data array"))?;
            for page in data {
                // An entry we cannot read might be the page we look for: reading it as "not
                // there" would count a failure against a token on no evidence.
                let id =
                    page.get("id").and_then(id_string).ok_or_else(|| malformed("a /me/accounts entry has no id"))?;
                if all || left.remove(id.as_str()) {
                    found.insert(id, page_lookup(page)?);
                }
            }
            let next = body.pointer("/paging/next").and_then(Value::as_str);
            match next {
                Some(next) if all || !left.is_empty() => (url, params) = self.split_next(next)?,
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
        page_lookup(&body)
    }

    /// `paging.next` is an absolute URL carrying the token; keep its cursor parameters, drop its
    /// token and proof (we add ours), and refuse to follow it anywhere but Graph.
    pub(crate) fn split_next(&self, next: &str) -> Result<(String, Vec<(String, String)>), GraphError> {
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

    /// A call with an app token (debug_token): the same as any call, proof included; `quoted` are
    /// the tokens among `params` Graph might quote back.
    pub(crate) async fn get_token_call(
        &self,
        url: &str,
        token: &Secret,
        params: &[(&str, &str)],
        quoted: &[&Secret],
    ) -> Result<Value, GraphError> {
        Ok(self.get_with_usage(url, token, params, quoted).await?.0)
    }

    /// A call that carries its credentials in its own parameters (the token exchange); `tokens`
    /// are the ones among them Graph might quote back.
    pub(crate) async fn get_public(
        &self,
        url: &str,
        params: &[(&str, &str)],
        tokens: &[&Secret],
    ) -> Result<Value, GraphError> {
        let response = self.http.get(url).query(params).send().await.map_err(|e| GraphError::transport(describe(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_limited(response).await?;
        interpret(status, &headers, &bytes, &self.presented(tokens))
    }

    async fn get(&self, url: &str, token: &Secret, params: &[(&str, &str)]) -> Result<Value, GraphError> {
        Ok(self.get_with_usage(url, token, params, &[]).await?.0)
    }

    async fn get_with_usage(
        &self,
        url: &str,
        token: &Secret,
        params: &[(&str, &str)],
        quoted: &[&Secret],
    ) -> Result<(Value, Usage), GraphError> {
        let mut request = self.http.get(url).query(params).query(&[("access_token", token.expose())]);
        if let Some(secret) = &self.settings.app_secret {
            request = request.query(&[("appsecret_proof", appsecret_proof(secret, token.expose()))]);
        }
        let response = request.send().await.map_err(|e| GraphError::transport(describe(e)))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = read_limited(response).await?;
        let presented: Vec<&Secret> = std::iter::once(token).chain(quoted.iter().copied()).collect();
        let body = interpret(status, &headers, &bytes, &self.presented(&presented))?;
        Ok((body, Usage::from_headers(&headers, self.settings.max_wait)))
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

/// What a page object says about its token: none (the user is not admin), or a token. Anything
/// else is a broken answer, not a verdict on the user.
fn page_lookup(page: &Value) -> Result<PageLookup, GraphError> {
    match page.get("access_token") {
        None => Ok(PageLookup::NotManaged),
        Some(Value::String(token)) if !token.is_empty() => Ok(PageLookup::Found(Secret::new(token.as_str()))),
        Some(_) => Err(malformed("a page's access_token is not a token")),
    }
}

/// `http://` to anything but this machine: the tokens in every query would cross the network in
/// the clear. (The simulator and local proxies are loopback.)
pub(crate) fn is_plaintext_remote(base_url: &str) -> bool {
    let Ok(url) = url::Url::parse(base_url) else { return false };
    if url.scheme() != "http" {
        return false;
    }
    match url.host() {
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        Some(url::Host::Domain(d)) => {
            !(d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost"))
        }
        None => true,
    }
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
    use super::*;

    #[test]
    fn page_ids_are_checked_before_any_call() {
        for bad in ["", "12a", "../me", "1/2", "1?x=1"] {
            assert_eq!(check_page_id(bad).expect_err(bad).kind, ErrorKind::Invalid);
        }
        assert!(check_page_id("1234567890").is_ok());
    }

    #[test]
    fn page_objects_with_tokens_of_the_wrong_type_are_malformed() {
        use serde_json::json;
        assert_eq!(page_lookup(&json!({"id": "1"})), Ok(PageLookup::NotManaged));
        assert_eq!(
            page_lookup(&json!({"id": "1", "access_token": "EAAP1"})),
            Ok(PageLookup::Found(Secret::new("EAAP1")))
        );
        for bad in [json!(12345), json!(null), json!(""), json!({"t": "x"}), json!(["EAAP1"]), json!(true)] {
            let e = page_lookup(&json!({"id": "1", "access_token": bad})).expect_err("malformed");
            assert_eq!(e.kind, ErrorKind::Transient, "{bad}");
            assert!(!e.kind.is_confirmed_failure());
        }
    }

    #[test]
    fn plain_http_is_flagged_only_off_this_machine() {
        for remote in ["http://graph.example.com/v24.0", "http://10.0.0.5:8080/v24.0", "http://[2001:db8::1]/v1"] {
            assert!(is_plaintext_remote(remote), "{remote}");
        }
        for local in [
            "https://graph.facebook.com/v24.0",
            "http://127.0.0.1:9/v24.0",
            "http://127.8.0.1/v24.0",
            "http://[::1]:80/v24.0",
            "http://localhost:8080",
            "http://sim.localhost/v24.0",
        ] {
            assert!(!is_plaintext_remote(local), "{local}");
        }
    }
}
