//! Graph quotes tokens back ("Malformed access token EAAG…"). After single jobs, batches, a dead
//! job, a send-failure report, `GET status` (with and without `?check=true`), the dashboard and a
//! webhook delivery, no token or app secret is in any log line, response, page, webhook body,
//! table (but the channel table, which holds them by design) or Redis value.

use std::sync::{Arc, Mutex};

use redis::AsyncCommands;
use reqwest::Client;
use serde_json::{Value, json};
use shared::{
    job::{BatchJob, Reason, RefreshJob},
    secret::Secret,
    webhooks,
};
use simulator::{Fault, FaultKind, Matcher};
use tests::{TestEnv, logs};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::dashboard::Dash;

const ADMIN: &str = "leaks-admin-token-for-tests";
const REDACTED: &str = "[redacted]";

/// A webhook endpoint that answers 200 and keeps every body (just enough HTTP/1.1 by hand).
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .filter_map(|l| l.split_once(':'))
                            .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                            kept.lock().expect("bodies").push(body);
                            break;
                        }
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (url, bodies)
}

fn assert_clean(place: &str, text: &str, secrets: &[String]) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "a secret ({s}) reached {place}: {text}");
    }
}

/// Every text, varchar and json value of every table but the channel table.
async fn table_texts(env: &TestEnv) -> Vec<(String, String)> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema IN ('public', $1) AND table_name <> 'channel_facebook_pages'
           AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')",
    )
    .bind(&env.config.database_schema)
    .fetch_all(&env.db)
    .await
    .expect("columns");
    assert!(columns.iter().any(|(t, c)| t == "fb_token_events" && c == "error_message"), "{columns:?}");
    let mut out = Vec::new();
    for (table, column) in columns {
        let sql = format!("SELECT \"{column}\"::text FROM \"{table}\" WHERE \"{column}\" IS NOT NULL");
        let values: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(&env.db).await.expect("column values");
        out.extend(values.into_iter().map(|v| (format!("{table}.{column}"), v)));
    }
    out
}

/// Every value under the test's prefix, whatever its type.
async fn redis_texts(env: &TestEnv) -> Vec<(String, String)> {
    let mut redis = env.redis.clone();
    let mut out = Vec::new();
    for key in env.redis_keys().await {
        let kind: String = redis::cmd("TYPE").arg(&key).query_async(&mut redis).await.expect("type");
        let parts: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis.get(&key).await.expect("get")],
            "hash" => {
                let pairs: Vec<(Vec<u8>, Vec<u8>)> = redis.hgetall(&key).await.expect("hgetall");
                pairs.into_iter().flat_map(|(k, v)| [k, v]).collect()
            }
            "list" => redis.lrange(&key, 0, -1).await.expect("lrange"),
            "set" => redis.smembers(&key).await.expect("smembers"),
            "zset" => redis.zrange(&key, 0, -1).await.expect("zrange"),
            "none" => continue, // expired between SCAN and TYPE
            other => panic!("{key} is a {other}, which this scan cannot read"),
        };
        out.extend(parts.into_iter().map(|p| (key.clone(), String::from_utf8_lossy(&p).into_owned())));
    }
    out
}

#[tokio::test]
async fn graph_echoed_tokens_reach_no_log_table_redis_api_dashboard_or_webhook() {
    let (hook_url, hook_bodies) = webhook_receiver().await;
    let env = TestEnv::with(|c| {
        c.admin_api_token = Some(Secret::new(ADMIN));
        c.webhook_urls = vec![hook_url];
        // Flag on the first confirmed failure, so the dashboard shows its banner with the cause.
        c.authorization_error_threshold = 1;
    })
    .await;
    let (captured, _guard) = logs::capture();
    let app_secret = env.sim.options().app_secret.clone().expect("secret");
    let app_token = env.sim.app_token().expect("app token");
    let mut secrets = vec![app_secret, app_token.clone()];
    env.sim.echo_malformed_tokens(true);

    // A: a token-shaped corruption of both tokens (a stray character).
    let (a, _, user_a) = env.healthy_channel("95001").await;
    let page_a = env.stored_page_token(a).await;
    let (bad_page_a, bad_user_a) = (format!("{page_a}Zq"), format!("{user_a}Zq"));
    set_tokens(&env, a, &bad_page_a, &bad_user_a).await;
    // B: corrupted beyond the token shape: only the exact replacement can find them.
    let (bad_page_b, bad_user_b) =
        ("page token, mangled by a bad encoding".to_owned(), "user-token_mangled-95002".to_owned());
    let b = env.insert_channel(1, "95002", &bad_page_b, &bad_user_b).await;
    // C: a batch with one corrupted channel and one healthy one.
    let (c1, _, _) = env.healthy_channel("95003").await;
    let (bad_page_c, bad_user_c) =
        ("c1-page-token-with-a-space at the end ".to_owned(), format!("EAAU{}", "c".repeat(40)));
    set_tokens(&env, c1, &bad_page_c, &bad_user_c).await;
    let (c2, _, user_c2) = env.healthy_channel("95004").await;
    // D: a valid token Graph quotes, with the app token, in a transient error, on the last attempt.
    let (d, _, user_d) = env.healthy_channel("95005").await;
    let page_d = env.stored_page_token(d).await;
    secrets.extend([page_a, user_a, bad_page_a, bad_user_a, bad_page_b.clone(), bad_user_b]);
    secrets.extend([bad_page_c, bad_user_c, env.stored_page_token(c2).await, user_c2, page_d.clone(), user_d]);

    let state = env.worker_state().await;
    let job_a = RefreshJob::new(a, Reason::Cron);
    let report_a = shared::worker::handler::handle_job(&state, &job_a).await.expect("job runs");
    assert_eq!(report_a.outcome, "reauthorization_required");
    shared::worker::handler::handle_job(&state, &RefreshJob::new(b, Reason::Cron)).await.expect("job runs");
    let quoting = json!({"error": {
        "message": format!("Temporary failure for {page_d}, app {app_token}"), "code": 2, "is_transient": true}});
    env.sim.inject(Fault::once(FaultKind::Error { http_status: 503, body: quoting }, Matcher::Page("95005".into())));
    let mut last = RefreshJob::new(d, Reason::Cron);
    let RefreshJob::V1(v) = &mut last;
    v.attempt = env.config.retry.max_attempts;
    assert_eq!(shared::worker::handler::handle_job(&state, &last).await.expect("job runs").outcome, "dead");
    // The batch request itself quotes the app token once (it runs again later), then its items
    // and the sweep quote the corrupted tokens.
    let batch = BatchJob::new(vec![c1, c2], Reason::Cron);
    env.sim.inject(Fault::once(FaultKind::EchoToken, Matcher::PathContains("/".into())));
    shared::worker::batch::handle_batch(&state, &batch).await.expect("batch runs");
    shared::worker::batch::handle_batch(&state, &batch).await.expect("batch runs");
    assert_eq!(env.status_count("reauthorization_required").await, 3, "A, B and C1 flagged");

    let server = env.serve_api().await;
    let http = Client::new();
    let api = |path: String| {
        let http = http.clone();
        let url = format!("{}{path}", server.base);
        async move {
            let resp = http.get(url).header("api_access_token", ADMIN).send().await.expect("api");
            assert_eq!(resp.status(), 200);
            resp.text().await.expect("body")
        }
    };
    let (inbox_a, inbox_b) = (env.inbox_of(a).await, env.inbox_of(b).await);
    // A send failure reported with B's (not token-shaped) page token in Graph's text.
    let report = json!({"error": {"message": format!("Error validating access token: {bad_page_b} is invalid"), "code": 190, "error_subcode": 460}});
    let resp = http
        .post(format!("{}/api/v1/accounts/1/inboxes/{inbox_b}/facebook_auth_failures", server.base))
        .header("api_access_token", ADMIN)
        .json(&report)
        .send()
        .await
        .expect("report");
    assert_eq!(resp.status(), 202);
    let mut bodies = vec![("the intake answer".to_owned(), resp.text().await.expect("body"))];
    let status_a = api(format!("/api/v1/accounts/1/callbacks/facebook_token_status/{inbox_a}")).await;
    let parsed: Value = serde_json::from_str(&status_a).expect("json");
    assert_eq!(parsed["last_error"]["message"], "Malformed access token [redacted]", "{status_a}");
    bodies.push(("GET status".into(), status_a));
    bodies.push((
        "GET status?check=true".into(),
        api(format!("/api/v1/accounts/1/callbacks/facebook_token_status/{inbox_b}?check=true")).await,
    ));
    let job =
        api(format!("/api/v1/accounts/1/callbacks/refresh_facebook_token/{inbox_a}/jobs/{}", job_a.job_id())).await;
    assert!(job.contains(REDACTED), "the job report keeps the scrubbed message: {job}");
    bodies.push(("GET job".into(), job));

    let dash = Dash::new(&server.base);
    let cookie = dash.session(ADMIN).await;
    let (code, html) = dash.get("/", Some(&cookie), None).await;
    assert_eq!(code, 200);
    assert!(html.contains("Malformed access token [redacted]"), "the banner shows the cause: {html}");
    bodies.push(("the dashboard".into(), html));
    server.shutdown().await.expect("api stops");

    let delivered = webhooks::deliver_due(&env.db, &Client::new(), &env.config, None, 100).await.expect("deliver");
    assert!(delivered >= 3, "A, B and C1 were flagged: {delivered}");
    let hooks = hook_bodies.lock().expect("bodies").clone();
    assert_eq!(hooks.len(), delivered);
    assert!(hooks.iter().any(|h| h.contains("Malformed access token [redacted]")), "{hooks:?}");
    bodies.extend(hooks.into_iter().map(|h| ("a webhook body".to_owned(), h)));

    for (place, text) in &bodies {
        assert_clean(place, text, &secrets);
    }
    let tables = table_texts(&env).await;
    assert!(tables.iter().any(|(c, v)| c == "fb_dead_jobs.error_message" && v.contains(REDACTED)), "{tables:?}");
    assert!(tables.iter().any(|(c, v)| c == "fb_send_failures.error_message" && v.contains(REDACTED)), "{tables:?}");
    assert!(tables.iter().any(|(c, v)| c == "fb_token_states.last_error_message" && v.contains(REDACTED)));
    for (column, value) in &tables {
        assert_clean(column, value, &secrets);
    }
    let values = redis_texts(&env).await;
    assert!(values.iter().any(|(k, v)| k.contains(":report:") && v.contains(REDACTED)), "{values:?}");
    for (key, value) in &values {
        assert_clean(key, value, &secrets);
    }
    let text = captured.text();
    assert!(
        text.contains("Facebook token validation failed for page 95001: Malformed access token [redacted]"),
        "{text}"
    );
    assert!(text.contains("Graph batch call failed"), "{text}");
    assert_clean("the logs", &text, &secrets);
}

/// A reported error quoting tokens: token-shaped ones are masked whoever's they are, and the
/// channel's own tokens are replaced whatever their shape.
#[tokio::test]
async fn a_reported_error_quoting_tokens_is_stored_without_them() {
    let env = TestEnv::new().await;
    let (page, user) = ("a page token of no known shape", "a-user-token-of-no-known-shape");
    let ch = env.insert_channel(1, "96001", page, user).await;
    let stranger = format!("EAAG{}", "s".repeat(60));
    let body =
        json!({"error": {"message": format!("Malformed access token {stranger} / {page} / {user}"), "code": 190}});
    let error = shared::intake::parse_report(&body).expect("a Graph error");
    assert!(!error.message.contains(&stranger), "{}", error.message);
    env.intake().report(ch, &error, None).await.expect("report");
    let stored: String =
        sqlx::query_scalar("SELECT error_message FROM fb_send_failures").fetch_one(&env.db).await.expect("row");
    assert_eq!(stored, "Malformed access token [redacted] / [redacted] / [redacted]");
}

async fn set_tokens(env: &TestEnv, channel: i64, page: &str, user: &str) {
    sqlx::query(
        "UPDATE channel_facebook_pages SET page_access_token = $1, user_access_token = $2, updated_at = now()
         WHERE id = $3",
    )
    .bind(page)
    .bind(user)
    .bind(i32::try_from(channel).expect("id"))
    .execute(&env.db)
    .await
    .expect("corrupt the tokens");
}
