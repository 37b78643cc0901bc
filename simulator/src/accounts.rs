//! `GET /me/accounts`: the user's pages in grant order, paged with opaque cursors and an absolute
//! `paging.next` URL.

use serde_json::{Map, Value, json};

use super::{
    call::Call,
    cursor,
    errors::GraphError,
    reply::Reply,
    routes::{PAGE_FIELDS, check_fields, page_json, requested_fields},
    sim::{Sim, lock, now},
    state::Who,
};

const DEFAULT_FIELDS: [&str; 6] = ["name", "access_token", "category", "category_list", "tasks", "id"];

pub(crate) fn list(sim: &Sim, call: &Call, id: &str) -> Result<Reply, GraphError> {
    let token = call.token.as_deref().ok_or_else(GraphError::token_required)?;
    let now = now();
    let mut world = lock(&sim.world);
    let user_id = match sim.authenticate(&world, token, now)? {
        Who::User { user_id } if id == "me" || id == user_id => user_id,
        Who::User { .. } => return Err(GraphError::no_such_object(&call.method, id)),
        Who::Page { .. } => return Err(GraphError::nonexisting_field("accounts", "Page")),
        Who::App => return Err(GraphError::active_token_required()),
    };
    if call.method != "GET" {
        return Err(GraphError::unsupported(&call.method));
    }
    let fields = requested_fields(call, &DEFAULT_FIELDS);
    check_fields(&fields, &PAGE_FIELDS, "Page")?;
    let limit = match call.param("limit").and_then(|l| l.trim().parse::<usize>().ok()) {
        Some(n) if n > 0 => n.min(sim.opts.page_size_max.max(1)),
        _ => sim.opts.page_size_default.max(1),
    };
    let after = match call.param("after") {
        Some(c) if !c.is_empty() => {
            Some(cursor::decode(c).ok_or_else(|| GraphError::param("(#100) The after cursor is invalid"))?)
        }
        _ => None,
    };

    let (items, more) = world.accounts(&user_id, after, limit);
    let want_token = fields.contains(&"access_token");
    let mut data = Vec::with_capacity(items.len());
    for (_, page_id) in &items {
        let token = want_token.then(|| world.live_page_token(page_id, &user_id, now));
        if let Some(page) = world.page(page_id) {
            data.push(page_json(page_id, page, &fields, token));
        }
    }
    drop(world);

    let mut out = Map::new();
    out.insert("data".into(), Value::Array(data));
    if let (Some((first, _)), Some((last, _))) = (items.first(), items.last()) {
        let after_cursor = cursor::encode(*last);
        let mut paging = Map::new();
        paging.insert("cursors".into(), json!({"before": cursor::encode(*first), "after": after_cursor}));
        if more {
            paging.insert("next".into(), Value::from(next_url(sim, call, id, token, limit, &after_cursor)));
        }
        out.insert("paging".into(), Value::Object(paging));
    }
    Ok(Reply::ok(&Value::Object(out)))
}

/// Like Facebook's: the same edge with the token, fields, limit and the next cursor (no
/// `appsecret_proof`: the caller adds its own).
fn next_url(sim: &Sim, call: &Call, id: &str, token: &str, limit: usize, after: &str) -> String {
    let version = call.path.version.as_deref().unwrap_or(&sim.opts.version);
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("access_token", token);
    if let Some(fields) = call.param("fields") {
        q.append_pair("fields", fields);
    }
    q.append_pair("limit", &limit.to_string());
    q.append_pair("after", after);
    format!("http://{}/{version}/{id}/accounts?{}", sim.addr, q.finish())
}
