//! `/{page_id}/subscribed_apps`: the world's subscriptions, Graph's errors, and the machinery every
//! call goes through (faults, latency, limits, the log, batches).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{Answer, client, get, send, start, user_with_pages};
use shared::graph::CHATWOOT_SUBSCRIBED_FIELDS;

use crate::{Fault, FaultKind, GraphSim, Matcher};

/// `POST` (or `DELETE`) `base_url + path` with form `params`, the token and its proof.
async fn post(sim: &GraphSim, method: reqwest::Method, path: &str, params: &[(&str, &str)], token: &str) -> Answer {
    let proof = sim.proof(token).unwrap();
    let mut form: Vec<(&str, &str)> = params.to_vec();
    form.extend([("access_token", token), ("appsecret_proof", proof.as_str())]);
    send(client().request(method, format!("{}{path}", sim.base_url())).form(&form)).await
}

fn chatwoot_fields() -> Vec<String> {
    CHATWOOT_SUBSCRIBED_FIELDS.map(str::to_owned).to_vec()
}

#[tokio::test]
async fn a_new_page_is_subscribed_to_the_app_and_lists_it() {
    let sim = start().await;
    user_with_pages(&sim, "1", 1);
    let token = sim.page_token("1000", "1").unwrap();
    let app = sim.options().app_id.clone();
    assert_eq!(sim.subscriptions("1000"), vec![(app.clone(), chatwoot_fields())]);
    assert_eq!(sim.app_subscription("1000"), Some(chatwoot_fields()));

    let a = get(&sim, "/1000/subscribed_apps", &[], Some(&token)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let data = a.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], json!(app));
    assert_eq!(data[0]["subscribed_fields"], json!(CHATWOOT_SUBSCRIBED_FIELDS));
    assert!(data[0]["name"].is_string() && data[0]["link"].is_string());
    // `/me/subscribed_apps` with the page token is the same edge.
    let me = get(&sim, "/me/subscribed_apps", &[], Some(&token)).await;
    assert_eq!(me.body["data"], a.body["data"]);

    let log = sim.requests();
    assert_eq!((log[0].method.as_str(), log[0].path.as_str(), log[0].status), ("GET", "/1000/subscribed_apps", 200));
    assert_eq!(log[0].proof_valid, Some(true));
}

#[tokio::test]
async fn subscribe_unsubscribe_and_resubscribe() {
    let sim = start().await;
    user_with_pages(&sim, "1", 1);
    let token = sim.page_token("1000", "1").unwrap();
    sim.drop_subscription("1000");
    assert_eq!(sim.app_subscription("1000"), None);
    let a = get(&sim, "/1000/subscribed_apps", &[], Some(&token)).await;
    assert_eq!(a.body, json!({"data": []}));

    let fields = CHATWOOT_SUBSCRIBED_FIELDS.join(",");
    let a = post(&sim, reqwest::Method::POST, "/1000/subscribed_apps", &[("subscribed_fields", &fields)], &token).await;
    assert_eq!((a.status, &a.body), (200, &json!({"success": true})));
    assert_eq!(sim.app_subscription("1000"), Some(chatwoot_fields()));
    let logged = sim.requests().into_iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(logged.path, "/1000/subscribed_apps");
    assert_eq!(logged.query.get("subscribed_fields"), Some(&fields));

    // A second POST replaces the fields; other apps are left alone; DELETE removes ours only.
    sim.set_subscription("1000", "999", &["feed"]);
    let a =
        post(&sim, reqwest::Method::POST, "/1000/subscribed_apps", &[("subscribed_fields", "messages")], &token).await;
    assert_eq!(a.status, 200);
    assert_eq!(sim.app_subscription("1000"), Some(vec!["messages".to_owned()]));
    let a = post(&sim, reqwest::Method::DELETE, "/1000/subscribed_apps", &[], &token).await;
    assert_eq!((a.status, &a.body), (200, &json!({"success": true})));
    assert_eq!(sim.subscriptions("1000"), vec![("999".to_owned(), vec!["feed".to_owned()])]);
}

#[tokio::test]
async fn graph_errors_for_tokens_permissions_and_fields() {
    let sim = start().await;
    let user = user_with_pages(&sim, "1", 2);
    let token = sim.page_token("1000", "1").unwrap();
    let other = sim.page_token("1001", "1").unwrap();
    let path = "/1000/subscribed_apps";

    let a = get(&sim, path, &[], Some("garbage")).await;
    assert_eq!((a.status, a.code()), (400, Some(190)));
    sim.kill_page_token("1000", "1", 190, Some(460), "password changed");
    let a = get(&sim, path, &[], Some(&token)).await;
    assert_eq!((a.status, a.code(), a.subcode()), (400, Some(190), Some(460)));
    let token = sim.grant("1", "1000");
    // Not a page token of this page: the user's own, another page's.
    for wrong in [&user, &other] {
        let a = get(&sim, path, &[], Some(wrong)).await;
        assert_eq!((a.status, a.code()), (400, Some(100)), "{}", a.body);
        let a = post(&sim, reqwest::Method::POST, path, &[("subscribed_fields", "messages")], wrong).await;
        assert_eq!(a.code(), Some(100));
    }
    assert_eq!(sim.app_subscription("1000"), Some(chatwoot_fields()), "nothing changed");

    let a = post(&sim, reqwest::Method::POST, path, &[("subscribed_fields", "messages,not_a_field")], &token).await;
    assert_eq!((a.status, a.code()), (400, Some(100)));
    assert!(a.message().contains("got \"not_a_field\""), "{}", a.message());
    let a = post(&sim, reqwest::Method::POST, path, &[], &token).await;
    assert_eq!((a.status, a.code()), (400, Some(100)));

    sim.revoke_page_scope("1000", "pages_manage_metadata");
    let a = get(&sim, path, &[], Some(&token)).await;
    assert_eq!((a.status, a.code()), (403, Some(200)));
    assert!(a.message().starts_with("(#200)"), "{}", a.message());
    let a = post(&sim, reqwest::Method::POST, path, &[("subscribed_fields", "messages")], &token).await;
    assert_eq!((a.status, a.code()), (403, Some(200)));

    sim.delete_page("1001");
    let a = get(&sim, "/1001/subscribed_apps", &[], Some(&other)).await;
    assert_eq!((a.code(), a.subcode()), (Some(100), Some(33)));
}

#[tokio::test]
async fn a_failing_subscribe_answers_its_error_as_often_as_asked() {
    let sim = start().await;
    user_with_pages(&sim, "1", 1);
    let token = sim.page_token("1000", "1").unwrap();
    sim.drop_subscription("1000");
    sim.fail_subscribe("1000", 2, "Service temporarily unavailable", Some(2));
    let form = [("subscribed_fields", "messages")];
    for _ in 0..2 {
        let a = post(&sim, reqwest::Method::POST, "/1000/subscribed_apps", &form, &token).await;
        assert_eq!((a.status, a.code()), (500, Some(2)));
        assert_eq!(a.body.pointer("/error/is_transient"), Some(&Value::Bool(true)));
    }
    assert_eq!(sim.app_subscription("1000"), None);
    // Reading is not affected; the third POST goes through.
    assert_eq!(get(&sim, "/1000/subscribed_apps", &[], Some(&token)).await.status, 200);
    let a = post(&sim, reqwest::Method::POST, "/1000/subscribed_apps", &form, &token).await;
    assert_eq!(a.status, 200);
    sim.fail_subscribe("1000", 200, "(#200) Permissions error", None);
    let a = post(&sim, reqwest::Method::POST, "/1000/subscribed_apps", &form, &token).await;
    assert_eq!((a.status, a.code()), (403, Some(200)));
    sim.clear_subscribe_failures();
    assert_eq!(post(&sim, reqwest::Method::POST, "/1000/subscribed_apps", &form, &token).await.status, 200);
}

#[tokio::test]
async fn faults_latency_and_limits_apply_to_subscription_calls() {
    let sim = start().await;
    user_with_pages(&sim, "1", 1);
    let token = sim.page_token("1000", "1").unwrap();
    sim.inject(Fault::once(FaultKind::ServerError, Matcher::PathContains("/subscribed_apps".into())));
    let a = get(&sim, "/1000/subscribed_apps", &[], Some(&token)).await;
    assert_eq!((a.status, a.code()), (500, Some(1)));
    sim.inject(Fault::once(FaultKind::Latency(Duration::from_millis(300)), Matcher::Page("1000".into())));
    let started = Instant::now();
    assert_eq!(get(&sim, "/1000/subscribed_apps", &[], Some(&token)).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    sim.rate_limit_page("1000", 32, Some(2));
    let a =
        post(&sim, reqwest::Method::POST, "/1000/subscribed_apps", &[("subscribed_fields", "messages")], &token).await;
    assert_eq!(a.code(), Some(32));
    assert!(a.header("x-business-use-case-usage").is_some());
    sim.clear_rate_limits();
    let statuses: Vec<u16> = sim.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 200, 400]);
}

#[tokio::test]
async fn batches_route_reads_and_subscribes() {
    let sim = start().await;
    user_with_pages(&sim, "1", 2);
    let (t0, t1) = (sim.page_token("1000", "1").unwrap(), sim.page_token("1001", "1").unwrap());
    sim.drop_subscription("1001");
    let url = |page: &str, token: &str| {
        format!("{page}/subscribed_apps?access_token={token}&appsecret_proof={}", sim.proof(token).unwrap())
    };
    let items = json!([
        {"method": "GET", "relative_url": url("1000", &t0)},
        {"method": "GET", "relative_url": url("1001", &t1)},
        {"method": "POST", "relative_url": url("1001", &t1), "body": "subscribed_fields=messages,feed"},
    ]);
    let app = sim.app_token().unwrap();
    let form = [("batch", items.to_string()), ("access_token", app), ("include_headers", "false".into())];
    let a = send(client().post(format!("{}/", sim.base_url())).form(&form)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let bodies: Vec<Value> =
        a.body.as_array().unwrap().iter().map(|i| serde_json::from_str(i["body"].as_str().unwrap()).unwrap()).collect();
    assert_eq!(bodies[0]["data"].as_array().unwrap().len(), 1);
    assert_eq!(bodies[1], json!({"data": []}));
    assert_eq!(bodies[2], json!({"success": true}));
    assert_eq!(sim.app_subscription("1001"), Some(vec!["messages".to_owned(), "feed".to_owned()]));
    let items: Vec<(String, String)> =
        sim.requests().into_iter().filter(|r| r.batch_item).map(|r| (r.method, r.path)).collect();
    assert_eq!(
        items,
        [("GET", "/1000/subscribed_apps"), ("GET", "/1001/subscribed_apps"), ("POST", "/1001/subscribed_apps")]
            .map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
}

#[tokio::test]
async fn many_apps_are_paged_with_a_next_link() {
    let sim = start().await;
    user_with_pages(&sim, "1", 1);
    let token = sim.page_token("1000", "1").unwrap();
    for app in ["11", "12", "13", "14"] {
        sim.set_subscription("1000", app, &["feed"]);
    }
    let mut seen = Vec::new();
    let first = get(&sim, "/1000/subscribed_apps", &[("limit", "2")], Some(&token)).await;
    let mut page = first.body;
    loop {
        seen.extend(page["data"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        let Some(next) = page.pointer("/paging/next").and_then(Value::as_str) else { break };
        let proof = sim.proof(&token).unwrap();
        page = send(client().get(next).query(&[("appsecret_proof", proof)])).await.body;
    }
    let app = sim.options().app_id.clone();
    let mut want = vec!["11", "12", "13", "14", app.as_str()];
    want.sort_unstable();
    assert_eq!(seen, want);
}
