//! Admin commands and the intake endpoint over HTTP.

use std::time::Duration;

use producer::refresh_all::refresh_all;
use serde_json::{Value, json};
use shared::secret::Secret;
use tests::TestEnv;

#[tokio::test]
async fn refresh_all_waits_summarizes_and_exits_1_on_reauthorization() {
    let env = TestEnv::new().await;
    env.healthy_channel("61001").await;
    let (_, u2, _) = env.healthy_channel("61002").await;
    env.sim.kill_page_token("61002", &u2, 190, Some(463), "expired");
    let (_, u3, t3) = env.healthy_channel("61003").await;
    env.sim.kill_page_token("61003", &u3, 190, Some(460), "password");
    env.sim.kill_user_token(&t3, 190, Some(460), "password");
    let worker = env.spawn_worker();
    let (code, text) = tokio::time::timeout(Duration::from_secs(60), refresh_all(&env.config, false, false))
        .await
        .expect("finishes")
        .expect("runs");
    assert_eq!(code, 1, "{text}");
    let row = |label: &str| -> Option<i64> {
        text.lines().find(|l| l.starts_with(label))?.split_whitespace().last()?.parse().ok()
    };
    assert_eq!(row("healthy"), Some(1), "{text}");
    assert_eq!(row("refreshed"), Some(1), "{text}");
    assert_eq!(row("needs reauthorization"), Some(1), "{text}");
    assert_eq!(row("retrying"), Some(0), "{text}");
    assert_eq!(row("total"), Some(3), "{text}");
    worker.stop().await.expect("stop");
}

#[tokio::test]
async fn refresh_all_all_healthy_exits_0_and_no_wait_returns_at_once() {
    let env = TestEnv::new().await;
    env.seed_healthy(20, 62_000).await;
    let (code, text) = refresh_all(&env.config, true, false).await.expect("runs");
    assert_eq!((code, text.as_str()), (0, "enqueued 20 channels (0 already queued or running)"));
    let worker = env.spawn_worker();
    let (code, text) = tokio::time::timeout(Duration::from_secs(60), refresh_all(&env.config, false, false))
        .await
        .expect("finishes")
        .expect("runs");
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains("healthy                         20")
            || text.lines().any(|l| l.starts_with("healthy") && l.ends_with(" 20")),
        "{text}"
    );
    worker.stop().await.expect("stop");
}

#[tokio::test]
async fn intake_endpoint_status_codes() {
    let env = TestEnv::with(|c| c.admin_api_token = Some(Secret::new("admin-secret-token"))).await;
    let (ch, _, _) = env.healthy_channel("63001").await;
    let inbox: i32 = sqlx::query_scalar("SELECT id FROM inboxes WHERE channel_id = $1")
        .bind(ch as i32)
        .fetch_one(&env.db)
        .await
        .expect("inbox");
    sqlx::query("INSERT INTO inboxes (account_id, channel_id, channel_type, name, created_at, updated_at) VALUES (1, 99, 'Channel::Email', 'mail', now(), now())")
        .execute(&env.db)
        .await
        .expect("email inbox");
    let email_inbox: i32 = sqlx::query_scalar("SELECT id FROM inboxes WHERE channel_type = 'Channel::Email'")
        .fetch_one(&env.db)
        .await
        .expect("id");
    let server = env.serve_api().await;
    let http = reqwest::Client::new();
    let url = |account: &str, inbox: &str| {
        format!("{}/api/v1/accounts/{account}/inboxes/{inbox}/facebook_auth_failures", server.base)
    };
    let auth_error = json!({"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190, "error_subcode": 460}});
    let post = |u: String, token: Option<&'static str>, body: String| {
        let mut r = http.post(u).header("content-type", "application/json").body(body);
        if let Some(t) = token {
            r = r.header("api_access_token", t);
        }
        r.send()
    };
    let me = inbox.to_string();
    let cases: Vec<(String, Option<&'static str>, String, u16)> = vec![
        (url("1", &me), None, auth_error.to_string(), 401),
        (url("1", &me), Some("wrong"), auth_error.to_string(), 401),
        (url("abc", &me), None, auth_error.to_string(), 401),
        (url("abc", &me), Some("admin-secret-token"), auth_error.to_string(), 400),
        (url("1", "1.5"), Some("admin-secret-token"), auth_error.to_string(), 400),
        (url("2", &me), Some("admin-secret-token"), auth_error.to_string(), 404),
        (url("1", "999999"), Some("admin-secret-token"), auth_error.to_string(), 404),
        (url("1", &email_inbox.to_string()), Some("admin-secret-token"), auth_error.to_string(), 404),
        (url("1", &me), Some("admin-secret-token"), "{not json".into(), 400),
        (url("1", &me), Some("admin-secret-token"), json!({"error": "nope"}).to_string(), 422),
        (
            url("1", &me),
            Some("admin-secret-token"),
            json!({"error": {"code": 190}, "failed_at": "yesterday"}).to_string(),
            422,
        ),
    ];
    for (u, token, body, want) in cases {
        let resp = post(u.clone(), token, body.clone()).await.expect("request");
        let status = resp.status().as_u16();
        let json: Value = resp.json().await.expect("json error body");
        assert_eq!(status, want, "{u} {body}: {json}");
        assert!(json["error"].is_string() && json["message"].is_string(), "{json}");
    }
    let first: Value = post(url("1", &me), Some("admin-secret-token"), auth_error.to_string())
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(first["action"], "enqueued", "{first}");
    let second = post(url("1", &me), Some("admin-secret-token"), auth_error.to_string()).await.expect("post");
    assert_eq!(second.status(), 202);
    let second: Value = second.json().await.expect("json");
    assert_eq!((second["action"].as_str(), &second["job_id"]), (Some("coalesced"), &first["job_id"]));
    let transient = json!({"error": {"code": 2, "message": "Service temporarily unavailable", "is_transient": true}});
    let third: Value = post(url("1", &me), Some("admin-secret-token"), transient.to_string())
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    assert_eq!(third["action"], "not_auth", "{third}");
    let health = http.get(format!("{}/healthz", server.base)).send().await.expect("healthz");
    assert_eq!(health.status(), 200);
    server.shutdown().await.expect("serve ended cleanly");
}
