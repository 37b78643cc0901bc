//! `POST /` with `batch=[...]`: each item answered by the same routing as a top-level call.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{
    call::{self, Call, Outcome, Params, parse_pairs, split_path},
    errors::GraphError,
    log::LoggedRequest,
    reply::{BATCH_ITEM_CT, JSON_CT, Reply, ReplyBody},
    sim::{Sim, lock, now},
};

pub(crate) const MAX_BATCH: usize = 50;

/// The batch's answer, its extra delay and its log entries (the batch first, then its items).
pub(crate) struct BatchOutcome {
    pub reply: Reply,
    pub delay: Duration,
    pub entries: Vec<LoggedRequest>,
}

pub(crate) fn handle(sim: &Sim, method: &str, params: Params, token: Option<String>, at: Instant) -> BatchOutcome {
    let proof = params.get("appsecret_proof").cloned();
    let proof_valid = match (&token, &proof) {
        (Some(t), Some(p)) => sim.proof_ok(t, p),
        _ => None,
    };
    let mut delay = Duration::ZERO;
    let mut items_log = Vec::new();
    let (reply, n) = match answer(sim, &params, token.as_deref(), proof.as_deref(), proof_valid, &mut delay, at) {
        Ok((reply, outcomes)) => {
            let n = outcomes.len();
            items_log = outcomes;
            (reply, n)
        }
        Err((reply, n)) => (reply, n),
    };
    let reply = call::with_usage(sim, reply);
    let mut entries = Vec::with_capacity(items_log.len() + 1);
    entries.push(LoggedRequest {
        method: method.to_owned(),
        path: "/".into(),
        query: params,
        access_token: token,
        appsecret_proof: proof,
        proof_valid,
        batch_items: n,
        batch_item: false,
        status: reply.logged_status(),
        at,
    });
    entries.extend(items_log);
    BatchOutcome { reply, delay, entries }
}

type Answer = Result<(Reply, Vec<LoggedRequest>), (Reply, usize)>;

fn answer(
    sim: &Sim,
    params: &Params,
    token: Option<&str>,
    proof: Option<&str>,
    proof_valid: Option<bool>,
    delay: &mut Duration,
    at: Instant,
) -> Answer {
    let fail = |r: Reply| Err((r, 0));
    if let Some(reply) = call::apply_fault(sim, "/", token, delay) {
        return fail(reply);
    }
    if let Some(reply) = lock(&sim.limits).app_check() {
        return fail(reply);
    }
    let Some(token) = token else {
        return fail(GraphError::token_required().into());
    };
    if let Some(err) = call::proof_error(sim, Some(token), proof, proof_valid) {
        return fail(err.into());
    }
    if let Err(err) = sim.authenticate(&lock(&sim.world), token, now()) {
        return fail(err.into());
    }
    let items = match parse_batch(params.get("batch").map(String::as_str)) {
        Ok(items) => items,
        Err((err, n)) => return Err((err.into(), n)),
    };
    let include_headers = !matches!(params.get("include_headers").map(String::as_str), Some("false" | "0"));

    let mut answers = Vec::with_capacity(items.len());
    let mut logs = Vec::with_capacity(items.len());
    let mut item_delay = Duration::ZERO;
    for item in &items {
        let outcome = match item_call(item, token, proof) {
            Ok(c) => call::process(sim, c, at),
            Err(err) => bad_item(err, at),
        };
        item_delay = item_delay.max(outcome.delay);
        answers.push(item_json(&outcome.reply, include_headers));
        logs.push(outcome.entry);
    }
    *delay = delay.saturating_add(item_delay);
    Ok((Reply::ok(&Value::Array(answers)), logs))
}

fn parse_batch(raw: Option<&str>) -> Result<Vec<Value>, (GraphError, usize)> {
    let raw = raw.ok_or_else(|| (GraphError::param("(#100) The parameter batch is required"), 0))?;
    let items = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Array(items)) => items,
        _ => return Err((GraphError::param("(#100) The parameter batch must be a JSON array"), 0)),
    };
    if items.is_empty() {
        return Err((GraphError::param("(#100) The batch parameter must not be empty"), 0));
    }
    if items.len() > MAX_BATCH {
        let n = items.len();
        let msg = format!("Too many requests in batch message. Maximum batch size is {MAX_BATCH}");
        return Err((GraphError::new(400, 100, None, "GraphBatchException", msg), n));
    }
    Ok(items)
}

/// An item as a call: its own token and proof, or the batch's when it has no token of its own.
fn item_call(item: &Value, fallback_token: &str, fallback_proof: Option<&str>) -> Result<Call, GraphError> {
    let obj = item.as_object().ok_or_else(|| GraphError::param("(#100) Each batch item must be a JSON object"))?;
    let method = match obj.get("method") {
        None | Some(Value::Null) => "GET".to_owned(),
        Some(Value::String(m)) => m.to_ascii_uppercase(),
        Some(_) => return Err(GraphError::param("(#100) The batch item method must be a string")),
    };
    let url = obj
        .get("relative_url")
        .and_then(Value::as_str)
        .ok_or_else(|| GraphError::param("(#100) Missing relative_url in batch item"))?;
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params = Params::new();
    parse_pairs(query.as_bytes(), &mut params);
    if let Some(body) = obj.get("body").and_then(Value::as_str) {
        parse_pairs(body.as_bytes(), &mut params);
    }
    let (token, proof) = match params.get("access_token").filter(|t| !t.is_empty()) {
        Some(t) => (t.clone(), params.get("appsecret_proof").cloned()),
        None => (
            fallback_token.to_owned(),
            params.get("appsecret_proof").cloned().or_else(|| fallback_proof.map(str::to_owned)),
        ),
    };
    Ok(Call { method, path: split_path(path), params, token: Some(token), proof, batch_item: true })
}

fn bad_item(err: GraphError, at: Instant) -> Outcome {
    let reply = Reply::from(err);
    let entry = LoggedRequest {
        method: String::new(),
        path: String::new(),
        query: Params::new(),
        access_token: None,
        appsecret_proof: None,
        proof_valid: None,
        batch_items: 0,
        batch_item: true,
        status: reply.status,
        at,
    };
    Outcome { reply, delay: Duration::ZERO, entry }
}

/// `{"code", "headers": [{"name", "value"}], "body": "<JSON text>"}`, or `null` for an item that
/// never finished (`Hang`, `Drop`).
fn item_json(reply: &Reply, include_headers: bool) -> Value {
    let (content_type, body) = match &reply.body {
        ReplyBody::Json(text) => (BATCH_ITEM_CT, text.clone()),
        ReplyBody::Raw { content_type, text } => {
            (if *content_type == JSON_CT { BATCH_ITEM_CT } else { *content_type }, text.clone())
        }
        ReplyBody::Hang | ReplyBody::Drop => return Value::Null,
    };
    let mut out = Map::new();
    out.insert("code".into(), Value::from(reply.status));
    if include_headers {
        let mut headers = vec![json!({"name": "Content-Type", "value": content_type})];
        headers.extend(reply.headers.iter().map(|(n, v)| json!({"name": n, "value": v})));
        headers.push(json!({"name": "Cache-Control", "value": "private, no-cache, no-store, must-revalidate"}));
        out.insert("headers".into(), Value::Array(headers));
    }
    out.insert("body".into(), Value::from(body));
    Value::Object(out)
}
