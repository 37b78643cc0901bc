//! One Graph call (a top-level request or a batch item) through the checks every call passes:
//! faults, app limit, appsecret_proof, page limit; then the route.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use super::{
    errors::GraphError,
    faults::{FaultKind, fault_reply},
    limits::{APP_USAGE, BUC_USAGE},
    log::LoggedRequest,
    reply::Reply,
    routes,
    sim::{Sim, lock},
    state::TokenKind,
};

pub(crate) type Params = BTreeMap<String, String>;

/// Adds `a=b&c=d` pairs (percent-decoded, lossy on bad UTF-8; never fails) to `into`.
pub(crate) fn parse_pairs(input: &[u8], into: &mut Params) {
    for (k, v) in url::form_urlencoded::parse(input) {
        into.insert(k.into_owned(), v.into_owned());
    }
}

/// A request path split into the optional version prefix and the segments after it.
#[derive(Debug, Clone)]
pub(crate) struct GraphPath {
    pub version: Option<String>,
    pub segments: Vec<String>,
    /// `/` + segments: what the log shows and matchers see.
    pub logged: String,
}

pub(crate) fn split_path(raw: &str) -> GraphPath {
    let mut segments: Vec<String> = raw.split('/').filter(|s| !s.is_empty()).map(str::to_owned).collect();
    let version = match segments.first() {
        Some(first) if is_version(first) => Some(segments.remove(0)),
        _ => None,
    };
    let logged = format!("/{}", segments.join("/"));
    GraphPath { version, segments, logged }
}

fn is_version(s: &str) -> bool {
    s.strip_prefix('v').is_some_and(|rest| {
        rest.starts_with(|c: char| c.is_ascii_digit()) && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// A call ready to be answered.
#[derive(Debug)]
pub(crate) struct Call {
    pub method: String,
    pub path: GraphPath,
    pub params: Params,
    /// The token it carries (its own or the batch's fallback).
    pub token: Option<String>,
    pub proof: Option<String>,
    pub batch_item: bool,
}

impl Call {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

pub(crate) struct Outcome {
    pub reply: Reply,
    /// Extra wait before answering (a `Latency` fault).
    pub delay: Duration,
    pub entry: LoggedRequest,
}

pub(crate) fn process(sim: &Sim, call: Call, at: Instant) -> Outcome {
    let proof_valid = match (&call.token, &call.proof) {
        (Some(t), Some(p)) => sim.proof_ok(t, p),
        _ => None,
    };
    let mut delay = Duration::ZERO;
    let reply = with_page_usage(sim, &call, with_usage(sim, respond(sim, &call, proof_valid, &mut delay)));
    let entry = LoggedRequest {
        method: call.method,
        path: call.path.logged,
        query: call.params,
        access_token: call.token,
        appsecret_proof: call.proof,
        proof_valid,
        batch_items: 0,
        batch_item: call.batch_item,
        status: reply.logged_status(),
        at,
    };
    Outcome { reply, delay, entry }
}

fn respond(sim: &Sim, call: &Call, proof_valid: Option<bool>, delay: &mut Duration) -> Reply {
    if let Some(reply) = apply_fault(sim, &call.path.logged, call.token.as_deref(), delay) {
        return reply;
    }
    if let Some(reply) = lock(&sim.limits).app_check() {
        return reply;
    }
    if let Some(err) = proof_error(sim, call.token.as_deref(), call.proof.as_deref(), proof_valid) {
        return err.into();
    }
    if let Some(reply) = page_limit(sim, call) {
        return reply;
    }
    routes::route(sim, call)
}

/// The answer of the first fault matching `path`, if any (`Latency` adds to `delay` instead), to
/// a call presenting `token`.
pub(crate) fn apply_fault(sim: &Sim, path: &str, token: Option<&str>, delay: &mut Duration) -> Option<Reply> {
    let kind = {
        let mut faults = lock(&sim.faults);
        if faults.is_empty() {
            return None;
        }
        faults.take(path)?
    };
    if let FaultKind::Latency(d) = kind {
        *delay = delay.saturating_add(d);
        return None;
    }
    fault_reply(&kind, token)
}

/// Missing or wrong `appsecret_proof` for a call carrying a token. App tokens (`ID|SECRET`) carry
/// the secret itself and need no proof; a proof that comes with one is still checked.
pub(crate) fn proof_error(
    sim: &Sim,
    token: Option<&str>,
    proof: Option<&str>,
    valid: Option<bool>,
) -> Option<GraphError> {
    let token = token?;
    if valid == Some(false) {
        return Some(GraphError::proof_wrong());
    }
    let required = sim.opts.require_proof && sim.opts.app_secret.is_some();
    if required && proof.is_none() && !sim.is_app_token(token) {
        return Some(GraphError::proof_missing());
    }
    None
}

fn page_limit(sim: &Sim, call: &Call) -> Option<Reply> {
    if !lock(&sim.limits).any_page_limited() {
        return None;
    }
    let page_id = page_of(sim, call)?;
    lock(&sim.limits).page_check(&page_id)
}

/// Adds the `X-Business-Use-Case-Usage` header `set_page_usage` asked for to a successful answer
/// about that page.
fn with_page_usage(sim: &Sim, call: &Call, reply: Reply) -> Reply {
    if reply.status != 200 || reply.has_header(BUC_USAGE) || !lock(&sim.limits).any_page_usage() {
        return reply;
    }
    let header = page_of(sim, call).and_then(|page_id| lock(&sim.limits).page_usage_header(&page_id));
    match header {
        Some(h) => reply.with_header(BUC_USAGE, h),
        None => reply,
    }
}

/// The page this call is about: the id in the path, or the page of the page token calling `/me`.
fn page_of(sim: &Sim, call: &Call) -> Option<String> {
    let first = call.path.segments.first()?;
    let page_id = if first == "me" {
        let token = call.token.as_deref()?;
        match &lock(&sim.world).token(token)?.kind {
            TokenKind::Page { page_id } => page_id.clone(),
            TokenKind::User => return None,
        }
    } else {
        first.clone()
    };
    Some(page_id)
}

/// Adds the `X-App-Usage` header `set_usage_headers` asked for.
pub(crate) fn with_usage(sim: &Sim, reply: Reply) -> Reply {
    match lock(&sim.limits).usage_header() {
        Some(h) if !reply.has_header(APP_USAGE) => reply.with_header(APP_USAGE, h),
        _ => reply,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_lose_their_version() {
        let p = split_path("/v24.0/me/accounts");
        assert_eq!((p.version.as_deref(), p.logged.as_str()), (Some("v24.0"), "/me/accounts"));
        let p = split_path("/123");
        assert_eq!((p.version, p.logged.as_str()), (None, "/123"));
        assert_eq!(split_path("/v19.0/").logged, "/");
        assert_eq!(split_path("//").logged, "/");
        assert_eq!(split_path("/vx/1").logged, "/vx/1");
    }

    #[test]
    fn garbage_pairs_do_not_fail() {
        let mut p = Params::new();
        parse_pairs(b"a=%zz&&=&b=%FF%FE&c", &mut p);
        assert_eq!(p.get("c").map(String::as_str), Some(""));
        assert!(p.contains_key("a"));
    }
}
