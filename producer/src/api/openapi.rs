//! The OpenAPI description served at `/api/openapi.json`, written out by hand: small enough, and it
//! keeps the contract's wording in one readable place. `tests/tests/it/openapi.rs` holds it to the
//! server: every documented operation answers only documented statuses, and its bodies carry only
//! documented fields.

use axum::Json;
use serde_json::{Value, json};

pub async fn get() -> Json<Value> {
    Json(document())
}

pub fn document() -> Value {
    // Chatwoot's ids are Postgres `integer`s: a larger one names nothing and is refused as bad input.
    let id = |name: &str, what: &str| json!({"name": name, "in": "path", "required": true, "description": what, "schema": {"type": "integer", "format": "int32", "minimum": 1, "maximum": i32::MAX}});
    let graph_error = json!({"type": "object", "nullable": true, "required": ["message"], "properties": {"code": {"type": "integer", "nullable": true}, "subcode": {"type": "integer", "nullable": true}, "message": {"type": "string"}}});
    let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let status = json!({"description": "token status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}});
    let common = |ok: (&str, Value)| {
        let mut r = serde_json::Map::new();
        r.insert(ok.0.into(), ok.1);
        for code in ["400", "401", "404", "422", "503"] {
            r.insert(code.into(), error.clone());
        }
        Value::Object(r)
    };
    // Refreshing and reporting need the administrator role when the token is a Chatwoot user's.
    let with_forbidden = |mut r: Value| {
        r["403"] = json!({"description": "a Chatwoot user token without the administrator role in the account", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        r
    };
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Facebook page token refresh", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Keeps Facebook Page access tokens alive. Every /api/v1 call needs the api_access_token header."},
        "components": {
            "securitySchemes": {"api_access_token": {"type": "apiKey", "in": "header", "name": "api_access_token"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"], "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "Status": {"type": "object", "required": ["inbox_id", "channel_id", "page_id", "token_valid", "status", "reauthorization_required", "authorization_error_count", "last_checked", "last_refreshed", "last_error"],
                    "properties": {
                        "inbox_id": {"type": "integer"}, "channel_id": {"type": "integer"}, "page_id": {"type": "string"},
                        "token_valid": {"type": "boolean", "nullable": true},
                        "status": {"type": "string", "enum": ["healthy", "refreshed", "reauthorization_required", "retrying", "unknown"]},
                        "reauthorization_required": {"type": "boolean"}, "authorization_error_count": {"type": "integer"},
                        "last_checked": {"type": "string", "format": "date-time", "nullable": true},
                        "last_refreshed": {"type": "string", "format": "date-time", "nullable": true},
                        "last_error": graph_error,
                        "warning": {"type": "string", "nullable": true, "enum": ["data_access_expiring", null], "description": "addition: still working, but Facebook stops giving data within 7 days"},
                        "data_access_expires_at": {"type": "string", "format": "date-time", "nullable": true, "description": "addition"},
                        "refreshed": {"type": "boolean", "description": "refresh endpoint only: a new token was written"},
                        "subscription": {"$ref": "#/components/schemas/Subscription"}
                    }},
                "Subscription": {"type": "object", "description": "addition: whether the page's webhooks still reach this app (GET /{page_id}/subscribed_apps), checked after every token write and once a day",
                    "required": ["state", "checked_at", "resubscribed_at", "next_retry_at", "last_error"],
                    "properties": {
                        "state": {"type": "string", "enum": ["subscribed", "resubscribed", "missing", "failed", "unknown"],
                            "description": "resubscribed: it had lost this app and was subscribed again with Chatwoot's fields; missing: it lacks this app and subscribing failed; failed: the check itself failed; unknown: not checked yet, or FB_APP_ID unknown"},
                        "checked_at": {"type": "string", "format": "date-time", "nullable": true},
                        "resubscribed_at": {"type": "string", "format": "date-time", "nullable": true},
                        "next_retry_at": {"type": "string", "format": "date-time", "nullable": true},
                        "last_error": graph_error,
                    }},
                "Accepted": {"type": "object", "required": ["job_id", "status_url"], "properties": {"job_id": {"type": "string", "format": "uuid"}, "status_url": {"type": "string"}}},
                "Job": {"type": "object", "required": ["job_id", "state", "outcome", "next_attempt_at", "refreshed", "inbox"], "properties": {
                    "job_id": {"type": "string", "format": "uuid"},
                    "state": {"type": "string", "enum": ["queued", "retrying", "settled"]},
                    "outcome": {"type": "string", "nullable": true},
                    "next_attempt_at": {"type": "string", "format": "date-time", "nullable": true},
                    "refreshed": {"type": "boolean", "nullable": true},
                    "inbox": {"$ref": "#/components/schemas/Status"}}},
                "Report": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "required": ["code"], "description": "the Graph error object the send failed with; other fields (error_subcode, message, type, fbtrace_id) are read when present",
                        "properties": {"code": {"type": "integer", "format": "int64", "minimum": i64::MIN, "maximum": i64::MAX}}},
                    "failed_at": {"type": "string", "format": "date-time", "nullable": true, "description": "when the send failed; absent or null: now"}}},
                "Reported": {"type": "object", "required": ["action", "channel_id", "error_class"], "properties": {
                    "action": {"type": "string", "enum": ["enqueued", "coalesced", "already_replaced", "not_auth", "deferred"]},
                    "job_id": {"type": "string", "format": "uuid", "description": "enqueued, coalesced and deferred: the refresh job"},
                    "channel_id": {"type": "integer"}, "error_class": {"type": "string"}}},
                "Queue": {"type": "object", "required": ["pending", "scheduled", "running", "done", "dead", "dead_letters", "apalis_dead", "deferred", "schedule_paused"], "properties": {
                    "pending": {"type": "integer"}, "scheduled": {"type": "integer"}, "running": {"type": "integer"}, "done": {"type": "integer"},
                    "dead": {"type": "integer", "description": "dead_letters + apalis_dead"},
                    "dead_letters": {"type": "integer", "description": "addition: dead-lettered jobs awaiting retry-dead"},
                    "apalis_dead": {"type": "integer", "description": "addition: jobs apalis moved to its own dead set"},
                    "deferred": {"type": "integer"},
                    "schedule_paused": {"type": "object", "nullable": true, "required": ["by", "at"], "description": "addition: set while the cron schedule is paused (producer schedule pause)",
                        "properties": {"by": {"type": "string"}, "at": {"type": "string", "format": "date-time"}}}}},
            }
        },
        "security": [{"api_access_token": []}],
        "paths": {
            "/api/v1/accounts/{account_id}/callbacks/facebook_token_status/{inbox_id}": {"get": {
                "summary": "Token status of a Facebook inbox",
                "parameters": [id("account_id", "account"), id("inbox_id", "inbox"),
                    {"name": "check", "in": "query", "schema": {"type": "boolean"}, "description": "validate against Graph first"}],
                "responses": common(("200", status.clone()))}},
            "/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}": {"post": {
                "summary": "Refresh through the queue, ahead of the cron backlog, and wait",
                "parameters": [id("account_id", "account"), id("inbox_id", "inbox"),
                    {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 60, "default": 10}}],
                "responses": {
                    "200": status,
                    "202": {"description": "not settled in time, or API_MAX_WAITERS requests already waiting (answered at once)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
                    "429": {"description": "the account used its API_REFRESH_PER_MINUTE pushes to the head of the queue; see Retry-After",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "403": {"description": "a Chatwoot user token without the administrator role in the account", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                    "400": error, "401": error, "404": error, "503": error}}},
            "/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}/jobs/{job_id}": {"get": {
                "summary": "Where a refresh job stands (the status_url of a 202)",
                "parameters": [id("account_id", "account"), id("inbox_id", "inbox"),
                    {"name": "job_id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
                "responses": common(("200", json!({"description": "job state: queued, retrying or settled, with the inbox status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}})))}},
            "/api/v1/accounts/{account_id}/inboxes/{inbox_id}/facebook_auth_failures": {"post": {
                "summary": "Report a send that failed with a Graph error",
                "parameters": [id("account_id", "account"), id("inbox_id", "inbox")],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Report"}}}},
                "responses": with_forbidden(common(("202", json!({"description": "accepted: enqueued, coalesced, already_replaced, not_auth or deferred", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Reported"}}}}))))}},
            "/api/v1/queue": {"get": {"summary": "Queue depth (admin token only)",
                "responses": {"200": {"description": "queue depth", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Queue"}}}}, "401": error, "403": error, "503": error}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "security": [], "responses": {"200": {"description": "OpenMetrics text"}}}},
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness: Postgres and Redis answer", "security": [],
                "responses": {"200": {"description": "ready", "content": {"application/json": {"schema": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ready"]}}}}}}, "503": error}}},
        }
    })
}
