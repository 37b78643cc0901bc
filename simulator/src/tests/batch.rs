//! Batch requests: items routed like top-level calls, in order, with their own checks.

use serde_json::{Value, json};

use super::{Answer, client, send, start, user_with_pages};
use crate::{Fault, FaultKind, GraphSim, Matcher};

async fn batch(sim: &GraphSim, items: &Value, token: &str, extra: &[(&str, &str)]) -> Answer {
    let proof = sim.proof(token).unwrap();
    let batch = items.to_string();
    let mut form = vec![("batch", batch.as_str()), ("access_token", token), ("appsecret_proof", proof.as_str())];
    form.extend_from_slice(extra);
    send(client().post(format!("{}/", sim.base_url())).form(&form)).await
}

fn item_url(sim: &GraphSim, page: &str, token: &str) -> String {
    format!("{page}?fields=id,name&access_token={token}&appsecret_proof={}", sim.proof(token).unwrap())
}

fn item_body(item: &Value) -> Value {
    serde_json::from_str(item["body"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn mixed_batch_answers_each_item_in_order() {
    let sim = start().await;
    let user = user_with_pages(&sim, "1", 3);
    let good = sim.page_token("1000", "1").unwrap();
    let dead = sim.page_token("1001", "1").unwrap();
    sim.kill_page_token("1001", "1", 190, Some(460), "password changed");
    let items = json!([
        {"method": "GET", "relative_url": item_url(&sim, "1000", &good)},
        {"method": "GET", "relative_url": item_url(&sim, "1001", &dead)},
        {"method": "GET", "relative_url": "me/accounts?fields=id,access_token&limit=2"},
        {"relative_url": format!("/v24.0/{}", item_url(&sim, "1000", &good))},
        {"method": "GET", "relative_url": item_url(&sim, "1002", "garbage")},
        {"method": "GET"},
    ]);
    let a = batch(&sim, &items, &user, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let out = a.body.as_array().unwrap();
    assert_eq!(out.len(), 6);
    let codes: Vec<i64> = out.iter().map(|i| i["code"].as_i64().unwrap()).collect();
    assert_eq!(codes, vec![200, 400, 200, 200, 400, 400]);
    assert_eq!(item_body(&out[0]), json!({"id": "1000", "name": "Page 1000"}));
    assert_eq!(item_body(&out[1]).pointer("/error/error_subcode").and_then(Value::as_i64), Some(460));
    assert_eq!(item_body(&out[2])["data"].as_array().unwrap().len(), 2);
    assert_eq!(item_body(&out[4]).pointer("/error/code").and_then(Value::as_i64), Some(190));
    let headers = out[0]["headers"].as_array().unwrap();
    assert!(headers.contains(&json!({"name": "Content-Type", "value": "text/javascript; charset=UTF-8"})));

    // One HTTP request, logged with its item count, followed by its items.
    assert_eq!(sim.request_count(), 1);
    let log = sim.requests();
    assert_eq!(
        (log[0].path.as_str(), log[0].batch_items, log[0].batch_item, log[0].proof_valid),
        ("/", 6, false, Some(true))
    );
    assert_eq!(log.len(), 7);
    assert!(log[1..].iter().all(|r| r.batch_item));
    assert_eq!((log[1].path.as_str(), log[1].proof_valid, log[1].status), ("/1000", Some(true), 200));
    // The item without its own token used the batch's token (and proof).
    assert_eq!((log[3].path.as_str(), log[3].access_token.as_deref()), ("/me/accounts", Some(user.as_str())));
    assert_eq!(sim.count_where(|r| r.batch_item && r.path == "/1000"), 2);
}

#[tokio::test]
async fn too_many_items_bad_json_and_missing_token() {
    let sim = start().await;
    let user = user_with_pages(&sim, "1", 1);
    let page = sim.page_token("1000", "1").unwrap();
    let items: Vec<Value> =
        (0..51).map(|_| json!({"method": "GET", "relative_url": item_url(&sim, "1000", &page)})).collect();
    let a = batch(&sim, &Value::Array(items), &user, &[]).await;
    assert_eq!((a.status, a.code()), (400, Some(100)));
    assert_eq!(a.message(), "Too many requests in batch message. Maximum batch size is 50");
    assert_eq!(sim.requests()[0].batch_items, 51);

    let items: Vec<Value> =
        (0..50).map(|_| json!({"method": "GET", "relative_url": item_url(&sim, "1000", &page)})).collect();
    let a = batch(&sim, &Value::Array(items), &user, &[("include_headers", "false")]).await;
    assert_eq!(a.body.as_array().unwrap().len(), 50);
    assert!(a.body[0].get("headers").is_none());

    for bad in ["not json", "{\"a\":1}", "[]"] {
        let proof = sim.proof(&user).unwrap();
        let form = [("batch", bad), ("access_token", user.as_str()), ("appsecret_proof", proof.as_str())];
        let a = send(client().post(format!("http://{}/", sim.addr())).form(&form)).await;
        assert_eq!((a.status, a.code()), (400, Some(100)), "{bad}");
    }
    let a = send(client().post(format!("{}/", sim.base_url())).form(&[("batch", "[]")])).await;
    assert_eq!((a.status, a.code()), (400, Some(104)));
    // A garbage fallback token fails the whole batch.
    let a = batch(&sim, &json!([{"relative_url": "me"}]), "garbage", &[]).await;
    assert_eq!(a.code(), Some(190));
}

#[tokio::test]
async fn items_meet_their_own_faults_and_limits() {
    let sim = start().await;
    let user = user_with_pages(&sim, "1", 3);
    let app = sim.app_token().unwrap();
    let t: Vec<String> = (1000..1003).map(|p| sim.page_token(&p.to_string(), "1").unwrap()).collect();
    sim.inject(Fault::new(FaultKind::ServerError, Matcher::Page("1001".into())));
    sim.inject(Fault::new(FaultKind::Hang, Matcher::Page("1002".into())));
    sim.rate_limit_page("1000", 80001, Some(3));
    let items = json!([
        {"method": "GET", "relative_url": item_url(&sim, "1000", &t[0])},
        {"method": "GET", "relative_url": item_url(&sim, "1001", &t[1])},
        {"method": "GET", "relative_url": item_url(&sim, "1002", &t[2])},
    ]);
    // The app token as fallback needs no proof of its own, but a proof sent with it is checked.
    let a = batch(&sim, &items, &app, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let out = a.body.as_array().unwrap();
    assert_eq!(out[0]["code"], 400);
    assert_eq!(item_body(&out[0]).pointer("/error/code").and_then(Value::as_i64), Some(80001));
    let buc = out[0]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "X-Business-Use-Case-Usage")
        .map(|h| serde_json::from_str::<Value>(h["value"].as_str().unwrap()).unwrap())
        .unwrap();
    assert_eq!(buc.pointer("/1000/0/estimated_time_to_regain_access").and_then(Value::as_u64), Some(3));
    assert_eq!(out[1]["code"], 500);
    assert_eq!(out[2], Value::Null);
    let _ = user;
}

fn item_header(item: &Value, name: &str) -> Option<Value> {
    let h = item["headers"]
        .as_array()?
        .iter()
        .find(|h| h["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))?;
    serde_json::from_str(h["value"].as_str()?).ok()
}

#[tokio::test]
async fn items_quote_malformed_tokens_and_carry_usage() {
    let sim = start().await;
    user_with_pages(&sim, "1", 2);
    let app = sim.app_token().unwrap();
    let good = sim.page_token("1001", "1").unwrap();
    let bad = format!("{}x", sim.page_token("1000", "1").unwrap());
    sim.echo_malformed_tokens(true);
    sim.set_usage_headers(Some(95));
    sim.set_page_usage("1001", Some((96, None)));
    let items = json!([
        {"method": "GET", "relative_url": item_url(&sim, "1000", &bad)},
        {"method": "GET", "relative_url": item_url(&sim, "1001", &good)},
    ]);
    let a = batch(&sim, &items, &app, &[]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.header("x-app-usage").and_then(|u| u["call_count"].as_u64()), Some(95));
    let out = a.body.as_array().unwrap();
    assert_eq!(out[0]["code"], 400);
    let message = item_body(&out[0]).pointer("/error/message").and_then(Value::as_str).map(str::to_owned);
    assert_eq!(message, Some(format!("Malformed access token {bad}")));
    assert_eq!(out[1]["code"], 200);
    assert_eq!(item_header(&out[1], "X-App-Usage").and_then(|u| u["call_count"].as_u64()), Some(95));
    let buc = item_header(&out[1], "X-Business-Use-Case-Usage").unwrap();
    assert_eq!(buc.pointer("/1001/0/call_count").and_then(Value::as_u64), Some(96));
}

#[tokio::test]
async fn echo_token_fault_quotes_what_the_call_presented() {
    let sim = start().await;
    user_with_pages(&sim, "1", 1);
    let app = sim.app_token().unwrap();
    let page = sim.page_token("1000", "1").unwrap();
    let items = json!([{"method": "GET", "relative_url": item_url(&sim, "1000", &page)}]);
    sim.inject(Fault::once(FaultKind::EchoToken, Matcher::PathContains("/".into())));
    let a = batch(&sim, &items, &app, &[]).await;
    assert_eq!((a.status, a.code()), (400, Some(190)));
    assert_eq!(a.message(), format!("Malformed access token {app}"));
    sim.inject(Fault::once(FaultKind::EchoToken, Matcher::Page("1000".into())));
    let a = batch(&sim, &items, &app, &[]).await;
    let message = item_body(&a.body[0]).pointer("/error/message").and_then(Value::as_str).map(str::to_owned);
    assert_eq!(message, Some(format!("Malformed access token {page}")));
}
