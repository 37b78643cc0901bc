//! `GET /debug_token` and `GET /oauth/access_token?grant_type=fb_exchange_token`.

use serde_json::{Map, Value, json};

use super::{
    call::Call,
    errors::GraphError,
    reply::Reply,
    sim::{Sim, lock, now},
    state::{TokenKind, USER_TOKEN_TTL_SECS, Who},
};

const APPLICATION: &str = "Sim App";

fn read_method(call: &Call) -> Result<(), GraphError> {
    match call.method.as_str() {
        "GET" | "POST" => Ok(()),
        other => Err(GraphError::unsupported(other)),
    }
}

pub(crate) fn debug_token(sim: &Sim, call: &Call) -> Result<Reply, GraphError> {
    read_method(call)?;
    let token = call.token.as_deref().ok_or_else(GraphError::token_required)?;
    let now = now();
    let world = lock(&sim.world);
    match sim.authenticate(&world, token, now)? {
        Who::App => {}
        _ => {
            return Err(GraphError::new(
                400,
                190,
                None,
                "OAuthException",
                "(#190) This method must be called with an app access_token.",
            ));
        }
    }
    let input = call
        .param("input_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| GraphError::param("(#100) The parameter input_token is required"))?;
    let app_id = sim.opts.app_id.as_str();

    if sim.is_app_token(input) {
        let data = match sim.authenticate(&world, input, now) {
            Ok(_) => {
                json!({"app_id": app_id, "type": "APP", "application": APPLICATION, "is_valid": true, "scopes": []})
            }
            Err(e) => json!({"error": e.debug_object(), "is_valid": false, "scopes": []}),
        };
        return Ok(Reply::ok(&json!({ "data": data })));
    }
    let Some(rec) = world.token(input) else {
        let e = sim.unknown_token(input);
        return Ok(Reply::ok(&json!({"data": {"error": e.debug_object(), "is_valid": false, "scopes": []}})));
    };
    let mut data = Map::new();
    data.insert("app_id".into(), Value::from(app_id));
    data.insert("type".into(), Value::from(if rec.kind == TokenKind::User { "USER" } else { "PAGE" }));
    data.insert("application".into(), Value::from(APPLICATION));
    data.insert("data_access_expires_at".into(), Value::from(rec.data_access_expires_at));
    data.insert("expires_at".into(), Value::from(rec.expires_at));
    data.insert("issued_at".into(), Value::from(rec.issued_at));
    let check = world.check(input, now);
    data.insert("is_valid".into(), Value::from(check.is_ok()));
    if let TokenKind::Page { page_id } = &rec.kind {
        data.insert("profile_id".into(), Value::from(page_id.clone()));
    }
    data.insert("scopes".into(), json!(rec.scopes));
    data.insert("granular_scopes".into(), json!([]));
    data.insert("user_id".into(), Value::from(rec.user_id.clone()));
    if let Err(e) = check {
        data.insert("error".into(), e.debug_object());
    }
    Ok(Reply::ok(&json!({ "data": data })))
}

pub(crate) fn exchange(sim: &Sim, call: &Call) -> Result<Reply, GraphError> {
    read_method(call)?;
    match call.param("grant_type") {
        Some("fb_exchange_token") => {}
        Some(_) => return Err(GraphError::param("(#100) Unsupported grant_type")),
        None => return Err(GraphError::param("(#100) Missing grant_type parameter")),
    }
    if call.param("client_id") != Some(sim.opts.app_id.as_str()) {
        return Err(GraphError::bad_client_id());
    }
    match (&sim.opts.app_secret, call.param("client_secret")) {
        (_, None) => return Err(GraphError::param("Missing client_secret parameter.")),
        (Some(secret), Some(given)) if secret != given => return Err(GraphError::bad_client_secret()),
        _ => {}
    }
    let old = call
        .param("fb_exchange_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| GraphError::param("(#100) Missing fb_exchange_token parameter"))?;
    let now = now();
    let mut world = lock(&sim.world);
    if world.token(old).is_none() {
        return Err(sim.unknown_token(old));
    }
    match world.check(old, now)? {
        Who::User { user_id } => {
            let token = world.mint_user_token(&user_id, now);
            Ok(Reply::ok(&json!({"access_token": token, "token_type": "bearer", "expires_in": USER_TOKEN_TTL_SECS})))
        }
        // A page token does not expire: exchanging it gives it back, without `expires_in`.
        Who::Page { .. } => Ok(Reply::ok(&json!({"access_token": old, "token_type": "bearer"}))),
        Who::App => Err(GraphError::cannot_parse_token()),
    }
}
