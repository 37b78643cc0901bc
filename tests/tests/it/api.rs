//! The HTTP API: every status code, both token kinds, cross-account access, bodies per contract.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use shared::secret::Secret;
use tests::TestEnv;

const ADMIN: &str = "admin-token-for-tests";

struct Api {
    http: Client,
    base: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.header("api_access_token", t);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

async fn setup() -> (TestEnv, tests::env::ApiServer, Api, String) {
    setup_with(|_| {}).await
}

async fn setup_with(f: impl FnOnce(&mut shared::config::Config)) -> (TestEnv, tests::env::ApiServer, Api, String) {
    let env = TestEnv::with(|c| {
        c.admin_api_token = Some(Secret::new(ADMIN));
        f(c);
    })
    .await;
    let server = env.serve_api().await;
    let api = Api { http: Client::new(), base: server.base.clone() };
    let (_, account_token) = shared::store::create_api_token(&env.db, 1).await.expect("token");
    (env, server, api, account_token.expose().to_owned())
}

fn status_path(account: impl std::fmt::Display, inbox: impl std::fmt::Display) -> String {
    format!("/api/v1/accounts/{account}/callbacks/facebook_token_status/{inbox}")
}

fn refresh_path(account: impl std::fmt::Display, inbox: impl std::fmt::Display) -> String {
    format!("/api/v1/accounts/{account}/callbacks/refresh_facebook_token/{inbox}")
}

#[tokio::test]
async fn status_endpoint_codes_and_body() {
    let (env, server, api, account_token) = setup().await;
    let (ch, _, _) = env.healthy_channel("71001").await;
    let inbox = env.inbox_of(ch).await;
    let other = env.insert_channel(2, "71002", "t", "u").await;
    let other_inbox = env.inbox_of(other).await;
    let email: i32 = sqlx::query_scalar("INSERT INTO inboxes (account_id, channel_id, channel_type, name, created_at, updated_at) VALUES (1, 5, 'Channel::Email', 'mail', now(), now()) RETURNING id")
        .fetch_one(&env.db).await.expect("email inbox");

    for token in [None, Some("nope"), Some("fbtr_0000")] {
        let (code, body) = api.call(Method::GET, &status_path(1, inbox), token).await;
        assert_eq!(code, 401, "{body}");
        assert!(body["error"].is_string() && body["message"].is_string());
    }
    // 401 comes before input checks.
    assert_eq!(api.call(Method::GET, &status_path("x", "y"), None).await.0, 401);
    for token in [ADMIN, account_token.as_str()] {
        let (code, body) = api.call(Method::GET, &status_path(1, inbox), Some(token)).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["inbox_id"], inbox);
        assert_eq!(body["channel_id"], ch);
        assert_eq!(body["page_id"], "71001");
        assert_eq!(body["status"], "unknown");
        assert_eq!(body["token_valid"], Value::Null);
        assert_eq!(body["reauthorization_required"], false);
        assert_eq!(body["authorization_error_count"], 0);
        assert_eq!(body["last_error"], Value::Null);
        for bad in [status_path("abc", inbox), status_path(1, "0"), status_path(1, "-4"), status_path(1, "99999999999")]
        {
            assert_eq!(api.call(Method::GET, &bad, Some(token)).await.0, 400, "{bad}");
        }
        assert_eq!(api.call(Method::GET, &format!("{}?check=maybe", status_path(1, inbox)), Some(token)).await.0, 400);
        assert_eq!(api.call(Method::GET, &status_path(1, email), Some(token)).await.0, 404, "not a Facebook inbox");
        assert_eq!(api.call(Method::GET, &status_path(1, 424242), Some(token)).await.0, 404, "absent");
        assert_eq!(
            api.call(Method::GET, &status_path(1, other_inbox), Some(token)).await.0,
            404,
            "inbox of another account under account 1"
        );
    }
    // Cross-account: the account-1 token cannot see account 2, the admin can.
    assert_eq!(api.call(Method::GET, &status_path(2, other_inbox), Some(&account_token)).await.0, 404);
    assert_eq!(api.call(Method::GET, &status_path(2, other_inbox), Some(ADMIN)).await.0, 200);

    let (code, body) =
        api.call(Method::GET, &format!("{}?check=true", status_path(1, inbox)), Some(&account_token)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!((body["token_valid"].as_bool(), body["status"].as_str()), (Some(true), Some("healthy")));
    assert!(body["last_checked"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{body}");
    let text = body.to_string();
    assert!(!text.contains(&env.stored_page_token(ch).await));
    server.shutdown().await.expect("clean stop");
}

#[tokio::test]
async fn refresh_endpoint_200_202_and_status_url() {
    let (env, server, api, account_token) = setup().await;
    let (ch, user, _) = env.healthy_channel("72001").await;
    env.sim.kill_page_token("72001", &user, 190, Some(463), "expired");
    let inbox = env.inbox_of(ch).await;

    // No worker: the wait runs out, 202 with a status URL that works.
    let (code, body) =
        api.call(Method::POST, &format!("{}?wait=1", refresh_path(1, inbox)), Some(&account_token)).await;
    assert_eq!(code, 202, "{body}");
    let url = body["status_url"].as_str().expect("status_url").to_owned();
    let (code, job) = api.call(Method::GET, &url, Some(&account_token)).await;
    assert_eq!((code, job["state"].as_str()), (StatusCode::OK, Some("queued")), "{job}");
    assert_eq!(job["job_id"], body["job_id"]);

    // With a worker, a second request joins the queued job and gets the settled result.
    let worker = env.spawn_worker();
    let (code, body) =
        api.call(Method::POST, &format!("{}?wait=30", refresh_path(1, inbox)), Some(&account_token)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        (body["refreshed"].as_bool(), body["status"].as_str(), body["token_valid"].as_bool()),
        (Some(true), Some("refreshed"), Some(true))
    );
    let (code, job) = api.call(Method::GET, &url, Some(&account_token)).await;
    assert_eq!(
        (code, job["state"].as_str(), job["refreshed"].as_bool()),
        (StatusCode::OK, Some("settled"), Some(true)),
        "{job}"
    );
    // Healthy now: a refresh validates and writes nothing.
    let (code, body) = api.call(Method::POST, &refresh_path(1, inbox), Some(ADMIN)).await;
    assert_eq!((code, body["refreshed"].as_bool()), (StatusCode::OK, Some(false)), "{body}");

    assert_eq!(api.call(Method::POST, &format!("{}?wait=soon", refresh_path(1, inbox)), Some(ADMIN)).await.0, 400);
    assert_eq!(api.call(Method::POST, &refresh_path(2, inbox), Some(&account_token)).await.0, 404);
    assert_eq!(api.call(Method::POST, &refresh_path(2, inbox), None).await.0, 401);
    assert_eq!(api.call(Method::GET, &format!("{}/jobs/not-a-uuid", refresh_path(1, inbox)), Some(ADMIN)).await.0, 400);
    assert_eq!(
        api.call(Method::GET, &format!("{}/jobs/{}", refresh_path(1, inbox), uuid::Uuid::new_v4()), Some(ADMIN))
            .await
            .0,
        404
    );
    worker.stop().await.expect("stop");
    server.shutdown().await.expect("clean stop");
}

#[tokio::test]
async fn refresh_goes_ahead_of_the_cron_backlog() {
    // Two batches at a time, 20 ms each: the 40 batches of the backlog take 400 ms or more, so
    // "ahead of it" is a property of the queue, not of how fast batches have become.
    let (env, server, api, _) = setup_with(|c| c.worker_concurrency = 2).await;
    env.seed_healthy(2_000, 73_000).await;
    let count = producer::cycle::enqueue_cycle(&env.db, env.redis.clone(), &env.config, shared::job::Reason::Cron)
        .await
        .expect("cycle");
    assert_eq!(count.enqueued, 2_000);
    // A channel the cycle did not queue, refreshed by a person while the backlog waits.
    let (ch2, _, _) = env.healthy_channel("79001").await;
    let inbox2 = env.inbox_of(ch2).await;
    env.sim.set_latency(Duration::from_millis(20));
    let worker = env.spawn_worker();
    let started = std::time::Instant::now();
    let (code, body) = api.call(Method::POST, &format!("{}?wait=30", refresh_path(1, inbox2)), Some(ADMIN)).await;
    let took = started.elapsed();
    assert_eq!(code, 200, "{body}");
    // It ran before most of the backlog: well over half of the cron jobs are still undone.
    // Checked by a job: the proactive check also writes user-token expiry rows, unchecked.
    let answered: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE last_checked_at IS NOT NULL")
        .fetch_one(&env.db)
        .await
        .expect("db");
    assert!(answered < 1_000, "answered {answered} of 2000 before the priority job finished ({took:?})");
    worker.stop().await.expect("stop");
    server.shutdown().await.expect("clean stop");
}

#[tokio::test]
async fn queue_endpoint_is_admin_only() {
    let (env, server, api, account_token) = setup().await;
    env.seed_healthy(3, 75_000).await;
    producer::cycle::enqueue_cycle(&env.db, env.redis.clone(), &env.config, shared::job::Reason::Cron)
        .await
        .expect("cycle");
    assert_eq!(api.call(Method::GET, "/api/v1/queue", None).await.0, 401);
    assert_eq!(api.call(Method::GET, "/api/v1/queue", Some(&account_token)).await.0, 403);
    let (code, body) = api.call(Method::GET, "/api/v1/queue", Some(ADMIN)).await;
    assert_eq!(code, 200, "{body}");
    for k in ["pending", "scheduled", "running", "done", "dead"] {
        assert!(body[k].is_u64(), "{k}: {body}");
    }
    // Three channels, one batch job.
    assert_eq!(body["scheduled"].as_u64().unwrap_or(0) + body["pending"].as_u64().unwrap_or(0), 1, "{body}");
    server.shutdown().await.expect("clean stop");
}

#[tokio::test]
async fn open_endpoints_and_openapi() {
    let (_env, server, api, _) = setup().await;
    let (code, body) = api.call(Method::GET, "/healthz", None).await;
    assert_eq!((code, body), (StatusCode::OK, Value::String("ok".into())));
    let (code, body) = api.call(Method::GET, "/readyz", None).await;
    assert_eq!((code, &body["status"]), (StatusCode::OK, &Value::from("ready")), "{body}");
    let (code, metrics) = api.call(Method::GET, "/metrics", None).await;
    assert_eq!(code, 200);
    assert!(metrics.as_str().is_some_and(|m| m.contains("# EOF")), "{metrics}");
    for series in [
        "fb_token_channels{status=\"healthy\"}",
        "fb_token_channels_reauthorization_required",
        "fb_token_queue_jobs{state=\"pending\"}",
    ] {
        assert!(metrics.as_str().is_some_and(|m| m.contains(series)), "{series} missing: {metrics}");
    }
    let (code, doc) = api.call(Method::GET, "/api/openapi.json", None).await;
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/api/v1/accounts/{account_id}/callbacks/facebook_token_status/{inbox_id}",
        "/api/v1/accounts/{account_id}/callbacks/refresh_facebook_token/{inbox_id}",
        "/api/v1/accounts/{account_id}/inboxes/{inbox_id}/facebook_auth_failures",
        "/api/v1/queue",
        "/readyz",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    server.shutdown().await.expect("clean stop");
}

#[tokio::test]
async fn revoked_account_tokens_stop_working() {
    let (env, server, api, account_token) = setup().await;
    let (ch, _, _) = env.healthy_channel("76001").await;
    let inbox = env.inbox_of(ch).await;
    assert_eq!(api.call(Method::GET, &status_path(1, inbox), Some(&account_token)).await.0, 200);
    assert_eq!(shared::store::revoke_api_token(&env.db, &account_token).await.expect("revoke"), 1);
    assert_eq!(api.call(Method::GET, &status_path(1, inbox), Some(&account_token)).await.0, 401);
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_sha256 FROM fb_api_tokens").fetch_all(&env.db).await.expect("db");
    assert!(stored.iter().all(|h| h != &account_token && h.len() == 64), "stored hashed");
    server.shutdown().await.expect("clean stop");
}

/// What axum's extractors reject (a path segment that is not UTF-8, a malformed query) gets the
/// 401 first and the JSON error body, never axum's plain text.
#[tokio::test]
async fn rejected_input_gets_401_first_and_json() {
    let (_env, server, api, account_token) = setup().await;
    let not_utf8 = [status_path("%FF", 1), refresh_path(1, "%C3%28"), format!("{}/jobs/%FF", refresh_path(1, 1))];
    for path in &not_utf8 {
        let method = if path.contains("/jobs/") || path.contains("token_status") { Method::GET } else { Method::POST };
        for token in [None, Some("nope")] {
            let (code, body) = api.call(method.clone(), path, token).await;
            assert_eq!(code, 401, "{path}: {body}");
            assert_eq!(body["error"], "unauthorized", "{path}: {body}");
        }
        let (code, body) = api.call(method, path, Some(&account_token)).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert_eq!(body["error"], "bad_request", "{path}: {body}");
        assert!(body["message"].is_string(), "{path}: {body}");
    }
    let (code, body) = api.call(Method::GET, &format!("{}?check=%FF", status_path(1, 1)), None).await;
    assert_eq!((code, &body["error"]), (StatusCode::UNAUTHORIZED, &Value::from("unauthorized")), "{body}");
    server.shutdown().await.expect("clean stop");
}

/// The token is read before anything else on every route: a bad token with bad ids, a bad query
/// and a bad body is a 401, and only a good token gets to hear about the ids.
#[tokio::test]
async fn every_route_checks_the_token_before_its_input() {
    let (_env, server, api, account_token) = setup().await;
    let routes = [
        (Method::GET, format!("{}?check=maybe", status_path("abc", 0))),
        (Method::POST, format!("{}?wait=soon", refresh_path(0, "abc"))),
        (Method::GET, format!("{}/jobs/not-a-uuid", refresh_path("abc", 0))),
        (Method::POST, "/api/v1/accounts/abc/inboxes/0/facebook_auth_failures".to_owned()),
        (Method::GET, "/api/v1/queue".to_owned()),
    ];
    for (method, path) in &routes {
        for token in [None, Some("nope")] {
            let (code, body) = api.call(method.clone(), path, token).await;
            assert_eq!((code, &body["error"]), (StatusCode::UNAUTHORIZED, &Value::from("unauthorized")), "{path}");
        }
        let (code, body) = api.call(method.clone(), path, Some(&account_token)).await;
        if path.ends_with("/queue") {
            assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
            assert_eq!(body["message"], "the queue is visible to the admin token only");
        } else {
            assert_eq!((code, &body["error"]), (StatusCode::BAD_REQUEST, &Value::from("bad_request")), "{path}");
            assert!(body["message"].as_str().is_some_and(|m| m.starts_with("account_id")), "{path}: {body}");
        }
    }
    server.shutdown().await.expect("clean stop");
}
