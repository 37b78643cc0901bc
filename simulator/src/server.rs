//! The HTTP side: one fallback handler that parses any request, answers it through `call` or
//! `batch`, logs it, waits the configured latency (holding no lock) and writes the answer.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::Response,
};
use serde_json::Value;

use super::{
    batch,
    call::{self, Call, Params, parse_pairs, split_path},
    reply::{JSON_CT, Reply, ReplyBody},
    sim::Sim,
};

/// How long a `Hang` waits: far past any client timeout (it ends early on shutdown).
const HANG_FOR: Duration = Duration::from_secs(3600);
/// What a `Drop` sends before breaking the connection, and the length it announces.
const DROP_PREFIX: &[u8] = b"{\"data\":[{\"id\":\"";
const DROP_ANNOUNCED_LEN: usize = 4096;

pub(crate) async fn handle(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let mut params = Params::new();
    parse_pairs(uri.query().unwrap_or("").as_bytes(), &mut params);
    if !body.is_empty() {
        body_params(&headers, &body, &mut params);
    }
    let token = params.get("access_token").filter(|t| !t.is_empty()).cloned().or_else(|| header_token(&headers));
    let method_name = method.as_str().to_ascii_uppercase();
    let path = split_path(uri.path());

    let (reply, delay) = if path.segments.is_empty() && method == Method::POST {
        let out = batch::handle(&sim, &method_name, params, token, at);
        sim.record(out.entries);
        (out.reply, out.delay)
    } else {
        let proof = params.get("appsecret_proof").cloned();
        let c = Call { method: method_name, path, params, token, proof, batch_item: false };
        let out = call::process(&sim, c, at);
        sim.record(vec![out.entry]);
        (out.reply, out.delay)
    };

    let wait = sim.latency().saturating_add(delay);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    respond(&sim, reply).await
}

/// Form fields (or a JSON object's members) of a POST body join the query parameters.
fn body_params(headers: &HeaderMap, body: &[u8], params: &mut Params) {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if content_type.starts_with("application/json") {
        if let Ok(Value::Object(map)) = serde_json::from_slice::<Value>(body) {
            for (k, v) in map {
                let v = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                params.insert(k, v);
            }
        }
    } else if !content_type.starts_with("multipart/") {
        parse_pairs(body, params);
    }
}

/// `Authorization: OAuth TOKEN` / `Bearer TOKEN`, which Graph accepts too.
fn header_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("oauth") || scheme.eq_ignore_ascii_case("bearer")).then(|| token.trim().to_owned())
}

async fn respond(sim: &Sim, reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (content_type, body, length) = match reply.body {
        ReplyBody::Json(text) => (JSON_CT, Body::from(text), None),
        ReplyBody::Raw { content_type, text } => (content_type, Body::from(text), None),
        ReplyBody::Hang => {
            let mut stop = sim.stop.clone();
            tokio::select! {
                _ = tokio::time::sleep(HANG_FOR) => {}
                _ = stop.wait_for(|s| *s) => {}
            }
            return plain(sim, StatusCode::GATEWAY_TIMEOUT, Body::empty(), JSON_CT, &[], None);
        }
        ReplyBody::Drop => {
            let chunks: [Result<Bytes, std::io::Error>; 2] = [
                Ok(Bytes::from_static(DROP_PREFIX)),
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "simulated connection drop")),
            ];
            let body = Body::from_stream(futures::stream::iter(chunks));
            return plain(sim, StatusCode::OK, body, JSON_CT, &reply.headers, Some(DROP_ANNOUNCED_LEN));
        }
    };
    plain(sim, status, body, content_type, &reply.headers, length)
}

fn plain(
    sim: &Sim,
    status: StatusCode,
    body: Body,
    content_type: &str,
    extra: &[(&str, String)],
    length: Option<usize>,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&sim.opts.version) {
        h.insert(HeaderName::from_static("facebook-api-version"), v);
    }
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    for (name, value) in extra {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            h.insert(n, v);
        }
    }
    response
}
