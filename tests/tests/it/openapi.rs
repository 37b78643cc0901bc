//! `/api/openapi.json` held to the server: every documented operation, called with good input, bad
//! input, no token and ids that name nothing, answers only statuses its document lists, and every
//! JSON body it sends fits the documented schema, with no field the document does not name.

use std::collections::BTreeSet;

use reqwest::{Client, Method};
use serde_json::{Value, json};
use tests::TestEnv;

use crate::dashboard::{ADMIN, env_with_admin};

/// One request to make of a documented operation.
struct Case {
    path: String,
    token: Option<&'static str>,
    body: Option<String>,
    /// The request breaks the document (a parameter or body its schema refuses): it must get a
    /// 400 or 422, as schemathesis' negative tests expect.
    invalid: bool,
}

/// The requests for one documented path: `ids` are the real account and inbox (and a job id).
fn cases(template: &str, secured: bool, account: i64, inbox: i64) -> Vec<Case> {
    let fill = |account: &str, inbox: &str, job: &str| {
        template.replace("{account_id}", account).replace("{inbox_id}", inbox).replace("{job_id}", job)
    };
    let (a, i) = (account.to_string(), inbox.to_string());
    let job = uuid::Uuid::new_v4().to_string();
    let good = fill(&a, &i, &job);
    // (path, breaks the document)
    let mut paths = vec![(good.clone(), false)];
    if template.contains('{') {
        for (bad_a, bad_i, bad_job, invalid) in [
            ("abc", i.as_str(), job.as_str(), true),
            (a.as_str(), "0", job.as_str(), true),
            (a.as_str(), "2147483648", job.as_str(), true),
            (a.as_str(), "999999", job.as_str(), false),
            ("999999", i.as_str(), job.as_str(), false),
            (a.as_str(), i.as_str(), "not-a-uuid", template.contains("{job_id}")),
        ] {
            paths.push((fill(bad_a, bad_i, bad_job), invalid));
        }
    }
    if template.contains("refresh_facebook_token/{inbox_id}") && !template.ends_with("{job_id}") {
        for (q, invalid) in
            [("?wait=0", false), ("?wait=60", false), ("?wait=61", true), ("?wait=-1", true), ("?wait=soon", true)]
        {
            paths.push((format!("{good}{q}"), invalid));
        }
    }
    if template.contains("facebook_token_status") {
        for (q, invalid) in [("?check=true", false), ("?check=maybe", true)] {
            paths.push((format!("{good}{q}"), invalid));
        }
    }
    // (body, breaks the document)
    let bodies: Vec<(Option<String>, bool)> = if template.ends_with("facebook_auth_failures") {
        [
            (
                json!({"error": {"code": 190, "error_subcode": 460, "message": "session invalidated"}}).to_string(),
                false,
            ),
            (
                json!({"error": {"code": 4, "message": "app limit"}, "failed_at": "2026-12-01T00:00:00Z"}).to_string(),
                false,
            ),
            (json!({"error": {}}).to_string(), true),
            (json!({"error": {"code": "190"}}).to_string(), true),
            (json!({"error": {"code": 190}, "failed_at": null}).to_string(), false),
            (r#"{"error": {"code": 92233720368547758070}}"#.to_owned(), true),
            (json!({"error": {"code": 190}, "failed_at": "yesterday"}).to_string(), true),
            ("not json".to_owned(), true),
        ]
        .into_iter()
        .map(|(b, invalid)| (Some(b), invalid))
        .collect()
    } else {
        vec![(None, false)]
    };
    let mut out = Vec::new();
    for (path, bad_path) in &paths {
        for (body, bad_body) in &bodies {
            let invalid = *bad_path || *bad_body;
            out.push(Case { path: path.clone(), token: Some(ADMIN), body: body.clone(), invalid });
        }
    }
    if secured {
        let body = bodies[0].0.clone();
        out.push(Case { path: good.clone(), token: None, body: body.clone(), invalid: false });
        out.push(Case { path: good, token: Some("not-a-token"), body, invalid: false });
    }
    out
}

/// Resolves a `$ref` into the document.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => r
            .strip_prefix("#/")
            .map(|p| p.split('/').fold(doc, |v, k| &v[k]))
            .filter(|v| !v.is_null())
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => schema,
    }
}

/// The ways `value` departs from `schema` (OpenAPI 3.0's subset the document uses). Objects with
/// `properties` must not carry others: a field the server sends is a field the document names.
fn departures(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if value.is_null() {
        if schema["nullable"] != true {
            out.push(format!("{at}: null, but not nullable"));
        }
        return;
    }
    let fits = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("boolean") => value.is_boolean(),
        Some("array") => value.is_array(),
        _ => true,
    };
    if !fits {
        out.push(format!("{at}: {value} is not of type {}", schema["type"]));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    let Some(object) = value.as_object() else { return };
    for name in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if !object.contains_key(name) {
            out.push(format!("{at}: required field {name} missing"));
        }
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, v) in object {
            match properties.get(name) {
                Some(s) => departures(doc, s, v, &format!("{at}.{name}"), out),
                None => out.push(format!("{at}: field {name} is not in the document")),
            }
        }
    }
}

#[tokio::test]
async fn every_documented_operation_answers_as_documented() {
    let env: TestEnv = env_with_admin().await;
    let worker = env.spawn_worker();
    let (ch, _, _) = env.healthy_channel("93001").await;
    let inbox = env.inbox_of(ch).await;
    let account: i32 = sqlx::query_scalar("SELECT account_id FROM inboxes WHERE id = $1")
        .bind(i32::try_from(inbox).expect("id"))
        .fetch_one(&env.db)
        .await
        .expect("account");
    let server = env.serve_api().await;
    let http = Client::new();
    let doc: Value =
        http.get(format!("{}/api/openapi.json", server.base)).send().await.expect("doc").json().await.expect("json");

    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 8, "every route is documented: {:?}", paths.keys());
    for (template, operations) in paths {
        for (method, operation) in operations.as_object().expect("operations") {
            let responses = operation["responses"].as_object().expect("responses");
            let secured = operation.get("security").is_none_or(|s| s.as_array().is_none_or(|a| !a.is_empty()));
            for case in cases(template, secured, i64::from(account), inbox) {
                let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
                let mut request = http.request(method.clone(), format!("{}{}", server.base, case.path));
                if let Some(token) = case.token {
                    request = request.header("api_access_token", token);
                }
                if let Some(body) = &case.body {
                    request = request.header("content-type", "application/json").body(body.clone());
                }
                let response = request.send().await.expect("request");
                let status = response.status().as_u16();
                seen.insert((template.clone(), status));
                let is_json = response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("application/json"));
                let text = response.text().await.expect("body");
                let what = format!("{method} {} (token {:?}, body {:?})", case.path, case.token, case.body);
                let refused = status == 400 || status == 422;
                if case.invalid != refused && case.token == Some(ADMIN) {
                    problems.push(format!(
                        "{what}: answered {status}, but the document {} it",
                        if case.invalid { "refuses" } else { "allows" }
                    ));
                }
                let Some(documented) = responses.get(&status.to_string()) else {
                    problems.push(format!("{what}: status {status} is not documented: {text}"));
                    continue;
                };
                let schema = &documented["content"]["application/json"]["schema"];
                if is_json {
                    let body: Value = serde_json::from_str(&text).expect("the JSON it says it sends");
                    if schema.is_null() {
                        problems.push(format!("{what}: {status} sends JSON the document gives no schema for"));
                    } else {
                        departures(&doc, schema, &body, "body", &mut problems);
                    }
                } else if !schema.is_null() {
                    problems.push(format!("{what}: {status} documents JSON but sent {text:?}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{} departures from the document:\n{}", problems.len(), problems.join("\n"));
    // The cases reach the answers that matter, so the test is not passing on 401s alone.
    for expected in [200, 202, 400, 401, 404, 422] {
        assert!(seen.iter().any(|(_, s)| *s == expected), "no case answered {expected}: {seen:?}");
    }
    server.shutdown().await.expect("stop");
    worker.stop().await.expect("worker");
}

#[test]
fn the_checker_finds_what_it_should() {
    let doc = json!({"components": {"schemas": {"S": {"type": "object", "required": ["a"],
        "properties": {"a": {"type": "integer"}, "b": {"type": "string", "nullable": true}, "c": {"type": "string", "enum": ["x"]}}}}}});
    let schema = json!({"$ref": "#/components/schemas/S"});
    let check = |v: Value| {
        let mut out = Vec::new();
        departures(&doc, &schema, &v, "body", &mut out);
        out
    };
    assert!(check(json!({"a": 1, "b": null, "c": "x"})).is_empty());
    assert_eq!(check(json!({"b": "s"})).len(), 1, "missing required");
    assert_eq!(check(json!({"a": "1"})).len(), 1, "wrong type");
    assert_eq!(check(json!({"a": 1, "z": 0})).len(), 1, "undocumented field");
    assert_eq!(check(json!({"a": 1, "c": "y"})).len(), 1, "outside the enum");
    assert_eq!(check(json!({"a": null})).len(), 1, "null where not nullable");
}
