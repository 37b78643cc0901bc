//! appsecret_proof, rate limits and their headers, and bad input.

use serde_json::Value;

use super::{client, get, send, start, user_with_pages};
use crate::{Fault, FaultKind, GraphSim, Matcher, SimOptions};

#[tokio::test]
async fn proof_missing_wrong_and_right() {
    let sim = start().await;
    let user = user_with_pages(&sim, "1", 1);
    let page = sim.page_token("1000", "1").unwrap();
    let url = format!("{}/1000", sim.base_url());

    let a = send(client().get(&url).query(&[("access_token", page.as_str())])).await;
    assert_eq!((a.status, a.code()), (400, Some(100)));
    assert_eq!(a.message(), "API calls from the server require an appsecret_proof argument");
    assert_eq!(a.body.pointer("/error/type").and_then(Value::as_str), Some("GraphMethodException"));

    let wrong = sim.proof(&user).unwrap();
    let a =
        send(client().get(&url).query(&[("access_token", page.as_str()), ("appsecret_proof", wrong.as_str())])).await;
    assert_eq!((a.status, a.code()), (400, Some(100)));
    assert_eq!(a.message(), "Invalid appsecret_proof provided in the API argument");

    assert_eq!(get(&sim, "/1000", &[], Some(&page)).await.status, 200);
    let proofs: Vec<Option<bool>> = sim.requests().iter().map(|r| r.proof_valid).collect();
    assert_eq!(proofs, vec![None, Some(false), Some(true)]);

    // The token and proof may come as form fields of a POST (here to debug_token).
    let app = sim.app_token().unwrap();
    let form = [("input_token", page.as_str()), ("access_token", app.as_str())];
    let a = send(client().post(format!("{}/debug_token", sim.base_url())).form(&form)).await;
    assert_eq!(a.body["data"]["is_valid"], true);
    // And as an Authorization header.
    let proof = sim.proof(&page).unwrap();
    let a = send(client().get(&url).query(&[("appsecret_proof", proof.as_str())]).bearer_auth(&page)).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn without_required_proof_or_secret() {
    let opts = SimOptions { require_proof: false, ..SimOptions::default() };
    let sim = GraphSim::start(opts).await.unwrap();
    user_with_pages(&sim, "1", 1);
    let page = sim.page_token("1000", "1").unwrap();
    let url = format!("{}/1000", sim.base_url());
    assert_eq!(send(client().get(&url).query(&[("access_token", page.as_str())])).await.status, 200);
    let a = send(client().get(&url).query(&[("access_token", page.as_str()), ("appsecret_proof", "00")])).await;
    assert_eq!(a.code(), Some(100));

    let opts = SimOptions { app_secret: None, ..SimOptions::default() };
    let sim = GraphSim::start(opts).await.unwrap();
    user_with_pages(&sim, "1", 1);
    let page = sim.page_token("1000", "1").unwrap();
    let url = format!("{}/1000", sim.base_url());
    let a = send(client().get(&url).query(&[("access_token", page.as_str()), ("appsecret_proof", "anything")])).await;
    assert_eq!(a.status, 200);
    assert_eq!(sim.requests()[0].proof_valid, None);
}

#[tokio::test]
async fn page_and_app_rate_limits_with_headers() {
    let sim = start().await;
    let user = user_with_pages(&sim, "1", 2);
    let t0 = sim.page_token("1000", "1").unwrap();
    let t1 = sim.page_token("1001", "1").unwrap();

    sim.rate_limit_page("1000", 32, Some(7));
    let a = get(&sim, "/1000", &[], Some(&t0)).await;
    assert_eq!((a.status, a.code(), a.message()), (400, Some(32), "Page request limit reached"));
    let buc = a.header("x-business-use-case-usage").unwrap();
    let entry = &buc["1000"][0];
    assert_eq!((entry["type"].as_str(), entry["call_count"].as_u64()), (Some("pages"), Some(100)));
    assert_eq!(entry["estimated_time_to_regain_access"].as_u64(), Some(7));
    let a = get(&sim, "/me", &[], Some(&t0)).await;
    assert_eq!(a.code(), Some(32));
    assert_eq!(get(&sim, "/1001", &[], Some(&t1)).await.status, 200);

    sim.rate_limit_page("1001", 613, None);
    let a = get(&sim, "/1001", &[], Some(&t1)).await;
    assert_eq!(a.code(), Some(613));
    assert!(a.header("x-business-use-case-usage").unwrap()["1001"][0].get("estimated_time_to_regain_access").is_none());

    sim.clear_rate_limits();
    assert_eq!(get(&sim, "/1000", &[], Some(&t0)).await.status, 200);

    sim.rate_limit_app(false);
    let a = get(&sim, "/me/accounts", &[], Some(&user)).await;
    assert_eq!((a.status, a.code(), a.message()), (400, Some(4), "Application request limit reached"));
    assert_eq!(a.header("x-app-usage").unwrap()["call_count"], 100);
    assert_eq!(get(&sim, "/me/accounts", &[], Some(&user)).await.status, 200);

    sim.rate_limit_app(true);
    for _ in 0..2 {
        assert_eq!(get(&sim, "/1000", &[], Some(&t0)).await.code(), Some(4));
    }
    sim.clear_rate_limits();

    sim.set_usage_headers(Some(85));
    let a = get(&sim, "/1000", &[], Some(&t0)).await;
    assert_eq!((a.status, a.header("x-app-usage").unwrap()["call_count"].as_u64()), (200, Some(85)));
    sim.set_usage_headers(None);
    assert!(get(&sim, "/1000", &[], Some(&t0)).await.headers.get("x-app-usage").is_none());

    // HTTP 429 is not Facebook's, but a fault can answer it.
    sim.inject(Fault::once(
        FaultKind::Error {
            http_status: 429,
            body: serde_json::json!({"error": {"message": "slow down", "code": 613}}),
        },
        Matcher::Any,
    ));
    let a = get(&sim, "/1000", &[], Some(&t0)).await;
    assert_eq!((a.status, a.code()), (429, Some(613)));
    assert!(a.body.pointer("/error/fbtrace_id").is_some());
}

#[tokio::test]
async fn garbage_input_gets_graph_errors_not_panics() {
    let sim = start().await;
    let user = user_with_pages(&sim, "1", 1);
    let base = format!("http://{}", sim.addr());
    for path in [
        "/v24.0/1000?access_token=%zz%&&&fields=%FF",
        "/v24.0/?x",
        "/v24.0/a/b/c/d?access_token=x",
        "/v24.0/me/accounts?limit=-5&after=%00",
        "/v24.0/debug_token",
        "/v24.0/oauth/access_token?grant_type=nope",
        "/v24.0/1000/feed?access_token=x",
    ] {
        let a = send(client().get(format!("{base}{path}"))).await;
        assert!(a.status >= 400 && a.code().is_some(), "{path}: {} {}", a.status, a.body);
    }
    let a = send(client().post(format!("{base}/v24.0/")).body("batch=%%%&access_token")).await;
    assert!(a.status >= 400 && a.code().is_some());
    let a = send(
        client()
            .delete(format!("{base}/v24.0/1000"))
            .query(&[("access_token", user.as_str()), ("appsecret_proof", &sim.proof(&user).unwrap())]),
    )
    .await;
    assert_eq!((a.code(), a.subcode()), (Some(100), Some(33)));
    let a = get(&sim, "/me/accounts", &[("limit", "abc")], Some(&user)).await;
    assert_eq!(a.status, 200);
}
