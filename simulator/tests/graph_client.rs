//! The Graph client (shared::graph) against the simulator and against local servers that misbehave: what Graph quotes
//! never comes back out, announced waits are capped, redirects are not followed, and answers of
//! the wrong shape are malformed rather than verdicts.

#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::json;

use shared::{
    graph::{ErrorKind, GraphClient, GraphError, GraphSettings, PageLookup, REDACTED, Usage},
    secret::Secret,
};
use simulator::{Fault, FaultKind, GraphSim, Matcher, SimOptions};

const MAX_WAIT: Duration = Duration::from_secs(3_600);

fn client_for(base_url: String, sim: Option<&GraphSim>) -> GraphClient {
    GraphClient::new(GraphSettings {
        base_url,
        app_id: sim.map(|s| s.options().app_id.clone()),
        app_secret: sim.and_then(|s| s.options().app_secret.clone()).map(Secret::new),
        timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        max_wait: MAX_WAIT,
    })
    .unwrap()
}

async fn sim_and_client() -> (GraphSim, GraphClient) {
    let sim = GraphSim::start(SimOptions::default()).await.unwrap();
    let client = client_for(sim.base_url(), Some(&sim));
    (sim, client)
}

fn assert_scrubbed(e: &GraphError, secrets: &[&str]) {
    assert!(e.message.contains(REDACTED), "nothing was quoted: {}", e.message);
    for s in secrets {
        assert!(!e.message.contains(s), "{s} leaked: {}", e.message);
    }
}

#[tokio::test]
async fn every_token_graph_quotes_is_redacted_before_the_caller_sees_it() {
    let (sim, client) = sim_and_client().await;
    let user = sim.add_user("1");
    sim.grant("1", "1000");
    let app = sim.app_token().unwrap();
    let secret = sim.options().app_secret.clone().unwrap();
    // Corrupted, and not token-shaped, so only the exact replacement can catch them.
    let bad_page = Secret::new("not-a-facebook-shaped-page-token");
    let bad_user = Secret::new("not-a-facebook-shaped-user-token");
    sim.echo_malformed_tokens(true);
    let secrets = [bad_page.expose(), bad_user.expose(), app.as_str(), secret.as_str()];

    let e = client.validate_page("1000", &bad_page).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    assert_scrubbed(&e, &secrets);
    assert_eq!(e.message, "Malformed access token [redacted]");
    let e = client.find_page_token(&bad_user, "1000").await.unwrap_err();
    assert_scrubbed(&e, &secrets);
    let e = client.page_token_lookup(&bad_user, "1000").await.unwrap_err();
    assert_scrubbed(&e, &secrets);
    let info = client.debug_token(&bad_user).await.unwrap();
    assert_scrubbed(&info.error.unwrap(), &secrets);
    let e = client.exchange_user_token(&bad_user).await.unwrap_err();
    assert_scrubbed(&e, &secrets);
    let items = [("1000".to_owned(), bad_page.clone())];
    let e = client.validate_batch(&items).await.unwrap().remove(0).unwrap_err();
    assert_scrubbed(&e, &secrets);

    // The app token, whole: quoted by a batch request and by debug_token.
    sim.inject(Fault::once(FaultKind::EchoToken, Matcher::PathContains("/".into())));
    let e = client.validate_batch(&items).await.unwrap_err();
    assert_scrubbed(&e, &secrets);
    assert_eq!(e.message, "Malformed access token [redacted]", "the app id goes with its secret");
    sim.inject(Fault::once(FaultKind::EchoToken, Matcher::PathContains("debug_token".into())));
    let e = client.debug_token(&Secret::new(user)).await.unwrap_err();
    assert_scrubbed(&e, &secrets);
}

#[tokio::test]
async fn a_huge_announced_wait_is_cut_to_the_maximum() {
    let (sim, client) = sim_and_client().await;
    sim.add_user("1");
    let token = Secret::new(sim.grant("1", "1000"));
    sim.rate_limit_page("1000", 32, Some(200_000_000_000));
    let e = client.validate_page("1000", &token).await.unwrap_err();
    assert_eq!((e.kind, e.retry_after, e.app_level), (ErrorKind::RateLimited, Some(MAX_WAIT), false));
    let items = [("1000".to_owned(), token.clone())];
    let e = client.validate_batch(&items).await.unwrap().remove(0).unwrap_err();
    assert_eq!(e.retry_after, Some(MAX_WAIT));

    sim.clear_rate_limits();
    sim.set_page_usage("1000", Some((95, Some(u64::MAX))));
    let info = client.validate_page("1000", &token).await.unwrap();
    assert_eq!(info.usage, Usage { app_pct: None, page_pct: Some(95), regain: Some(MAX_WAIT) });
}

#[tokio::test]
async fn batch_items_keep_their_usage_and_the_batch_app_usage() {
    let (sim, client) = sim_and_client().await;
    sim.add_user("1");
    let t0 = Secret::new(sim.grant("1", "1000"));
    let t1 = Secret::new(sim.grant("1", "1001"));
    sim.set_usage_headers(Some(95));
    sim.set_page_usage("1001", Some((91, Some(2))));
    let answers = client.validate_batch(&[("1000".to_owned(), t0), ("1001".to_owned(), t1)]).await.unwrap();
    let usage: Vec<Usage> = answers.into_iter().map(Result::unwrap).collect();
    assert_eq!(usage[0], Usage { app_pct: Some(95), page_pct: None, regain: None });
    assert_eq!(usage[1], Usage { app_pct: Some(95), page_pct: Some(91), regain: Some(Duration::from_secs(120)) });
}

#[tokio::test]
async fn accounts_entries_of_the_wrong_type_are_malformed_not_unmanaged() {
    let (sim, client) = sim_and_client().await;
    let user = Secret::new(sim.add_user("1"));
    let bodies = [
        json!({"data": [{"id": "1000", "access_token": 12345}]}),
        json!({"data": [{"id": "1000", "access_token": {"value": "EAAP"}}]}),
        json!({"data": [{"id": 1000.5, "access_token": "EAAPx"}]}),
        json!({"data": [{"id": ["1000"], "access_token": "EAAPx"}]}),
        json!({"data": [{"name": "no id", "access_token": "EAAPx"}]}),
    ];
    for body in bodies {
        let fault = FaultKind::Error { http_status: 200, body: body.clone() };
        sim.inject(Fault::once(fault, Matcher::PathContains("/me/accounts".into())));
        let e = client.find_page_token(&user, "1000").await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient, "{body}: {e}");
        assert!(e.message.contains("malformed"), "{body}: {e}");
    }
    // Absent from the list, or listed without a token: the user is not admin.
    for body in [json!({"data": []}), json!({"data": [{"id": "1000", "name": "P"}]})] {
        let fault = FaultKind::Error { http_status: 200, body: body.clone() };
        sim.inject(Fault::once(fault, Matcher::PathContains("/me/accounts".into())));
        assert_eq!(client.find_page_token(&user, "1000").await.unwrap(), PageLookup::NotManaged, "{body}");
    }
    let fault = FaultKind::Error { http_status: 200, body: json!({"id": "1000", "access_token": 7}) };
    sim.inject(Fault::once(fault, Matcher::Page("1000".into())));
    assert_eq!(client.page_token_lookup(&user, "1000").await.unwrap_err().kind, ErrorKind::Transient);
}

/// A server counting its requests, answering each with `reply()`.
async fn server<F>(reply: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
{
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let response = reply();
        async move { response }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, hits)
}

#[tokio::test]
async fn redirects_are_never_followed() {
    use axum::response::IntoResponse;
    let (elsewhere, elsewhere_hits) = server(|| axum::Json(json!({"id": "1000", "name": "P"})).into_response()).await;
    for status in [301u16, 302, 307, 308] {
        let target = format!("{elsewhere}/v24.0/1000");
        let (base, hits) = server(move || {
            let status = axum::http::StatusCode::from_u16(status).unwrap();
            (status, [(axum::http::header::LOCATION, target.clone())], "").into_response()
        })
        .await;
        let client = client_for(format!("{base}/v24.0"), None);
        let token = Secret::new("EAAPsomepagetokenvaluethatmustnottravel");
        let e = client.validate_page("1000", &token).await.unwrap_err();
        assert_eq!((e.kind, e.http_status), (ErrorKind::Transient, Some(status)), "{e}");
        assert!(e.message.contains("redirect"), "{e}");
        let e = client.validate_batch(&[("1000".to_owned(), token)]).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Transient, "{e}");
        assert_eq!(hits.load(Ordering::SeqCst), 2);
    }
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0, "a redirect was followed");
}

#[tokio::test]
async fn subscription_calls_read_write_and_classify() {
    use shared::graph::{CHATWOOT_SUBSCRIBED_FIELDS, SubscribedApp};
    // Two apps a page, so the client must follow `paging.next`.
    let sim = GraphSim::start(SimOptions { page_size_default: 2, ..SimOptions::default() }).await.unwrap();
    let client = client_for(sim.base_url(), Some(&sim));
    sim.add_user("1");
    let token = Secret::new(sim.grant("1", "1000"));
    let other = Secret::new(sim.grant("1", "1001"));
    let app = sim.options().app_id.clone();
    for id in ["1", "2", "3"] {
        sim.set_subscription("1000", id, &["feed"]);
    }
    let apps = client.subscribed_apps("1000", &token).await.unwrap();
    let ids: Vec<&str> = apps.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "{apps:?}");
    let ours: &SubscribedApp = apps.iter().find(|a| a.id == app).unwrap();
    assert!(ours.delivers_messages_to(&app));
    assert_eq!(sim.count_where(|r| r.path == "/1000/subscribed_apps"), 2, "two pages of two");
    assert!(sim.requests().iter().all(|r| r.proof_valid == Some(true)));

    sim.drop_subscription("1000");
    client.subscribe_app("1000", &token, &CHATWOOT_SUBSCRIBED_FIELDS).await.unwrap();
    assert_eq!(sim.app_subscription("1000"), Some(CHATWOOT_SUBSCRIBED_FIELDS.map(str::to_owned).to_vec()));
    let post = sim.requests().into_iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(
        post.query.get("subscribed_fields").map(String::as_str),
        Some(CHATWOOT_SUBSCRIBED_FIELDS.join(",").as_str())
    );
    assert_eq!(post.proof_valid, Some(true));

    // Errors go through the one classification.
    let e = client.subscribed_apps("1000", &other).await.unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::NotFound, Some(100)));
    let e = client.subscribe_app("1000", &token, &["messages", "nope"]).await.unwrap_err();
    assert_eq!((e.kind, e.code), (ErrorKind::Invalid, Some(100)));
    sim.fail_subscribe("1000", 2, "Service temporarily unavailable", Some(1));
    assert_eq!(client.subscribe_app("1000", &token, &["messages"]).await.unwrap_err().kind, ErrorKind::Transient);
    sim.revoke_page_scope("1000", "pages_manage_metadata");
    let e = client.subscribe_app("1000", &token, &["messages"]).await.unwrap_err();
    assert_eq!((e.kind, e.http_status), (ErrorKind::Permission, Some(403)));
    assert_eq!(client.subscribe_app("1000", &token, &[]).await.unwrap_err().kind, ErrorKind::Invalid);
    assert_eq!(client.subscribed_apps("10a", &token).await.unwrap_err().kind, ErrorKind::Invalid);
}

#[tokio::test]
async fn subscription_answers_never_quote_a_token_and_batch_reads_follow_paging() {
    let sim = GraphSim::start(SimOptions { page_size_default: 1, ..SimOptions::default() }).await.unwrap();
    let client = client_for(sim.base_url(), Some(&sim));
    sim.add_user("1");
    let t0 = Secret::new(sim.grant("1", "1000"));
    let t1 = Secret::new(sim.grant("1", "1001"));
    sim.set_subscription("1001", "5", &["feed"]);
    sim.drop_subscription("1000");
    let bad = Secret::new("not-a-facebook-shaped-page-token");
    sim.echo_malformed_tokens(true);
    let e = client.subscribed_apps("1000", &bad).await.unwrap_err();
    assert_eq!(e.message, "Malformed access token [redacted]");
    let e = client.subscribe_app("1000", &bad, &["messages"]).await.unwrap_err();
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Auth, "Malformed access token [redacted]"));

    let items = [("1000".to_owned(), t0), ("1001".to_owned(), t1), ("1000".to_owned(), bad)];
    let answers = client.subscribed_apps_batch(&items).await.unwrap();
    assert_eq!(answers[0].as_ref().unwrap(), &vec![]);
    let ids: Vec<String> = answers[1].as_ref().unwrap().iter().map(|a| a.id.clone()).collect();
    assert_eq!(ids.len(), 2, "the second app came from paging.next: {ids:?}");
    let e = answers[2].as_ref().unwrap_err();
    assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Auth, "Malformed access token [redacted]"));
    assert_eq!(sim.count_where(|r| r.path == "/" && r.batch_items == 3), 1);
    assert_eq!(sim.count_where(|r| r.path == "/1001/subscribed_apps" && !r.batch_item), 1);
}
