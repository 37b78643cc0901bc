//! Routing a call by path, and the node reads: `GET /{page_id}`, `GET /{user_id}`, `GET /me`.

use serde_json::{Map, Value, json};

use super::{
    accounts,
    call::Call,
    errors::GraphError,
    oauth,
    reply::Reply,
    sim::{Sim, lock, now},
    state::{Page, TASKS, Who, World},
    subscriptions,
};

/// Fields a Page node answers.
pub(crate) const PAGE_FIELDS: [&str; 10] =
    ["id", "name", "access_token", "category", "category_list", "tasks", "link", "fan_count", "about", "username"];
const USER_FIELDS: [&str; 2] = ["id", "name"];

pub(crate) fn route(sim: &Sim, call: &Call) -> Reply {
    let segs: Vec<&str> = call.path.segments.iter().map(String::as_str).collect();
    let result = match segs.as_slice() {
        [] => Err(GraphError::unsupported(&call.method)),
        ["debug_token"] => oauth::debug_token(sim, call),
        ["oauth", "access_token"] => oauth::exchange(sim, call),
        [id] => node(sim, call, id),
        [id, "accounts"] => accounts::list(sim, call, id),
        [id, "subscribed_apps"] => subscriptions::handle(sim, call, id),
        [id, edge] => unknown_edge(sim, call, id, edge),
        _ => Err(GraphError::unknown_path(&call.path.logged)),
    };
    result.unwrap_or_else(Reply::from)
}

/// The requested fields (`a,b{c},d.limit(1)` -> a, b, d), or the defaults when none are asked for.
pub(crate) fn requested_fields<'a>(call: &'a Call, default: &[&'a str]) -> Vec<&'a str> {
    let fields: Vec<&str> = call
        .param("fields")
        .unwrap_or("")
        .split(',')
        .map(|f| f.split(['{', '.', '(']).next().unwrap_or("").trim())
        .filter(|f| !f.is_empty())
        .collect();
    if fields.is_empty() { default.to_vec() } else { fields }
}

pub(crate) fn check_fields(fields: &[&str], allowed: &[&str], node: &str) -> Result<(), GraphError> {
    match fields.iter().find(|f| !allowed.contains(f)) {
        Some(bad) => Err(GraphError::nonexisting_field(bad, node)),
        None => Ok(()),
    }
}

fn token_of(call: &Call) -> Result<&str, GraphError> {
    call.token.as_deref().ok_or_else(GraphError::token_required)
}

fn node(sim: &Sim, call: &Call, id: &str) -> Result<Reply, GraphError> {
    let token = token_of(call)?;
    let now = now();
    let mut world = lock(&sim.world);
    let who = sim.authenticate(&world, token, now)?;
    let target = match (id, &who) {
        ("me", Who::App) => return Err(GraphError::active_token_required()),
        ("me", Who::User { user_id }) => return user_node(call, user_id),
        ("me", Who::Page { page_id, .. }) => page_id.clone(),
        _ => id.to_owned(),
    };
    if call.method != "GET" {
        return Err(GraphError::no_such_object(&call.method, &target));
    }
    if world.page(&target).is_some() {
        return page_node(&mut world, call, &who, token, &target, now);
    }
    match &who {
        Who::User { user_id } if *user_id == target && world.user_exists(&target) => user_node(call, &target),
        _ => Err(GraphError::no_such_object("GET", &target)),
    }
}

fn user_node(call: &Call, user_id: &str) -> Result<Reply, GraphError> {
    if call.method != "GET" {
        return Err(GraphError::no_such_object(&call.method, user_id));
    }
    let fields = requested_fields(call, &USER_FIELDS);
    check_fields(&fields, &USER_FIELDS, "User")?;
    let mut out = Map::new();
    out.insert("id".into(), Value::from(user_id));
    if fields.contains(&"name") {
        out.insert("name".into(), Value::from(format!("Sim User {user_id}")));
    }
    Ok(Reply::ok(&Value::Object(out)))
}

fn page_node(
    world: &mut World,
    call: &Call,
    who: &Who,
    token: &str,
    page_id: &str,
    now: i64,
) -> Result<Reply, GraphError> {
    let fields = requested_fields(call, &["id", "name"]);
    check_fields(&fields, &PAGE_FIELDS, "Page")?;
    let page_token = if fields.contains(&"access_token") {
        match who {
            Who::Page { page_id: own, .. } if own == page_id => Some(token.to_owned()),
            Who::User { user_id } if world.is_admin(user_id, page_id) => {
                Some(world.live_page_token(page_id, user_id, now))
            }
            _ => None,
        }
    } else {
        None
    };
    let Some(page) = world.page(page_id) else {
        return Err(GraphError::no_such_object("GET", page_id));
    };
    Ok(Reply::ok(&page_json(page_id, page, &fields, page_token)))
}

/// A Page object with the requested fields (`id` always).
pub(crate) fn page_json(page_id: &str, page: &Page, fields: &[&str], token: Option<String>) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::from(page_id));
    for f in fields {
        let v = match *f {
            "name" => Value::from(page.name.clone()),
            "access_token" => match &token {
                Some(t) => Value::from(t.clone()),
                None => continue,
            },
            "category" => Value::from(page.category.clone()),
            "category_list" => json!([{"id": "2211", "name": page.category}]),
            "tasks" => json!(TASKS),
            "link" => Value::from(format!("https://www.facebook.com/{page_id}")),
            "fan_count" => Value::from(0),
            "about" => Value::from(""),
            "username" => continue,
            _ => continue,
        };
        out.insert((*f).to_owned(), v);
    }
    Value::Object(out)
}

fn unknown_edge(sim: &Sim, call: &Call, id: &str, edge: &str) -> Result<Reply, GraphError> {
    let token = token_of(call)?;
    let world = lock(&sim.world);
    let who = sim.authenticate(&world, token, now())?;
    let target = match (id, who) {
        ("me", Who::Page { page_id, .. }) => page_id,
        ("me", Who::User { .. }) => return Err(GraphError::nonexisting_field(edge, "User")),
        ("me", Who::App) => return Err(GraphError::active_token_required()),
        (other, _) => other.to_owned(),
    };
    if world.page(&target).is_some() {
        Err(GraphError::nonexisting_field(edge, "Page"))
    } else {
        Err(GraphError::no_such_object(&call.method, &target))
    }
}
