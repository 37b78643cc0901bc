//! Injected faults: a list of active faults, the first one matching a request applies.

use std::time::Duration;

use serde_json::Value;

use super::{
    errors::{GraphError, with_trace_id},
    reply::{JSON_CT, Reply, ReplyBody},
};

/// One injected fault.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub kind: FaultKind,
    pub matcher: Matcher,
    /// How many matching requests it still applies to; `None` = until cleared.
    pub remaining: Option<usize>,
}

impl Fault {
    /// A fault that applies until cleared.
    pub fn new(kind: FaultKind, matcher: Matcher) -> Self {
        Self { kind, matcher, remaining: None }
    }

    /// A fault for the next `n` matching requests.
    pub fn times(kind: FaultKind, matcher: Matcher, n: usize) -> Self {
        Self { kind, matcher, remaining: Some(n) }
    }

    /// A fault for the next matching request only.
    pub fn once(kind: FaultKind, matcher: Matcher) -> Self {
        Self::times(kind, matcher, 1)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// HTTP 500, code 1 "An unknown error has occurred.", `is_transient: true`.
    ServerError,
    /// HTTP 503, code 2 "Service temporarily unavailable", `is_transient: true`.
    ServiceUnavailable,
    /// HTTP 502 with an HTML body (a proxy error page).
    Html,
    /// Never answers (until the simulator shuts down); other requests go on.
    Hang,
    /// Headers and part of the body, then the connection breaks (Content-Length larger than the body).
    Drop,
    /// Answer normally after this extra delay.
    Latency(Duration),
    /// This HTTP status and JSON body (an `fbtrace_id` is added to an `error` object lacking one).
    Error { http_status: u16, body: Value },
    /// A valid JSON document of exactly this many bytes, HTTP 200.
    Huge(usize),
    /// HTTP 200, `Content-Type: application/json`, body not JSON.
    NotJson,
    /// HTTP 400, code 190 "Malformed access token <token>", quoting the token the call presented
    /// (a batch item's own, the batch request's fallback, the app token of `debug_token`).
    EchoToken,
}

/// Which requests a fault applies to. Batch items are matched on their own; the batch request
/// itself has the path `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Matcher {
    Any,
    /// The path without version prefix or query (`/me/accounts`, `/123`, `/` for a batch) contains
    /// this text.
    PathContains(String),
    /// The path has this page id as one of its segments (`/123`, `/123/feed`).
    Page(String),
}

impl Matcher {
    fn matches(&self, path: &str) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::PathContains(s) => path.contains(s.as_str()),
            Matcher::Page(id) => path.split('/').any(|seg| seg == id),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FaultId(pub u64);

#[derive(Debug, Default)]
pub(crate) struct FaultStack {
    next_id: u64,
    active: Vec<(FaultId, Fault)>,
}

impl FaultStack {
    pub fn push(&mut self, fault: Fault) -> FaultId {
        self.next_id += 1;
        let id = FaultId(self.next_id);
        self.active.push((id, fault));
        id
    }

    pub fn remove(&mut self, id: FaultId) -> bool {
        let before = self.active.len();
        self.active.retain(|(i, _)| *i != id);
        self.active.len() != before
    }

    pub fn clear(&mut self) {
        self.active.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }

    /// The first active fault matching `path`, counted as used.
    pub fn take(&mut self, path: &str) -> Option<FaultKind> {
        let pos = self.active.iter().position(|(_, f)| f.remaining != Some(0) && f.matcher.matches(path))?;
        let (_, fault) = self.active.get_mut(pos)?;
        let kind = fault.kind.clone();
        if let Some(n) = fault.remaining.as_mut() {
            *n -= 1;
            if *n == 0 {
                self.active.remove(pos);
            }
        }
        Some(kind)
    }
}

/// What a fault answers to a call presenting `token`. `Latency` answers nothing itself (the
/// request goes on after the delay).
pub(crate) fn fault_reply(kind: &FaultKind, token: Option<&str>) -> Option<Reply> {
    Some(match kind {
        FaultKind::ServerError => Reply::error(&GraphError::server_error()),
        FaultKind::ServiceUnavailable => Reply::error(&GraphError::service_unavailable()),
        FaultKind::Html => Reply::raw(
            502,
            "text/html; charset=utf-8",
            "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><h1>Bad Gateway</h1>\
             <p>The server encountered a temporary error and could not complete your request.</p></body></html>\n"
                .into(),
        ),
        FaultKind::Hang => Reply::special(ReplyBody::Hang),
        FaultKind::Drop => Reply::special(ReplyBody::Drop),
        FaultKind::Latency(_) => return None,
        FaultKind::Error { http_status, body } => {
            let status = if (100..=999).contains(http_status) { *http_status } else { 500 };
            Reply::json(status, &with_trace_id(body.clone()))
        }
        FaultKind::Huge(n) => Reply::raw(200, JSON_CT, huge_json(*n)),
        FaultKind::NotJson => Reply::raw(200, JSON_CT, "<<garbage>> \u{1}\u{2} {\"id\": not json at all".into()),
        FaultKind::EchoToken => match token {
            Some(t) => Reply::error(&GraphError::malformed_token(t)),
            None => Reply::error(&GraphError::token_required()),
        },
    })
}

/// `{"padding":"xxx..."}` of exactly `n` bytes (whitespace-padded `{}` when too short for that).
pub(crate) fn huge_json(n: usize) -> String {
    const OPEN: &str = "{\"padding\":\"";
    const CLOSE: &str = "\"}";
    let frame = OPEN.len() + CLOSE.len();
    if n < frame {
        let mut s = String::from("{}");
        s.extend(std::iter::repeat_n(' ', n.saturating_sub(2)));
        return s;
    }
    let mut s = String::with_capacity(n);
    s.push_str(OPEN);
    s.extend(std::iter::repeat_n('x', n - frame));
    s.push_str(CLOSE);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_is_exact_and_valid() {
        for n in [0, 2, 5, 14, 15, 1000] {
            let s = huge_json(n);
            assert_eq!(s.len(), n.max(2), "{n}");
            assert!(serde_json::from_str::<Value>(&s).is_ok(), "{n}");
        }
    }

    #[test]
    fn first_matching_fault_applies_and_is_used_up() {
        let mut st = FaultStack::default();
        st.push(Fault::once(FaultKind::Html, Matcher::Page("42".into())));
        let any = st.push(Fault::new(FaultKind::ServerError, Matcher::Any));
        assert_eq!(st.take("/420"), Some(FaultKind::ServerError));
        assert_eq!(st.take("/42"), Some(FaultKind::Html));
        assert_eq!(st.take("/42"), Some(FaultKind::ServerError));
        assert!(st.remove(any));
        assert_eq!(st.take("/42"), None);
        assert!(st.is_empty());
    }
}
