//! `producer demo`: one cycle over seeded pages, then the dashboard it serves, entered with the
//! token it prints, whose buttons do what they say.

use std::time::Duration;

use producer::demo::{DemoArgs, Served, demo_database, run_demo};
use reqwest::StatusCode;
use serde_json::Value;
use tests::{TestEnv, wait::until};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::dashboard::{Dash, count};

/// The seeded mix of 200 channels (ten pages per user; `demo::seed`).
const CHANNELS: u32 = 200;
/// Page ids are `100_000_000_000 + i`; users 14–16 have expired page tokens (refreshable), users
/// 17–18 changed their password (page and user token revoked).
const EXPIRED_PAGE: &str = "100000000140";
const REVOKED_PAGE: &str = "100000000170";

fn args() -> DemoArgs {
    DemoArgs {
        channels: CHANNELS,
        latency_ms: 1,
        bind: Some("127.0.0.1:0".parse().expect("addr")),
        ..DemoArgs::default()
    }
}

fn count_of(summary: &str, name: &str) -> i64 {
    summary
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test]
async fn demo_runs_one_cycle_and_summarizes() {
    let env = TestEnv::new().await;
    // The demo derives its own database and Redis prefix from these.
    let (ready, served) = oneshot::channel();
    let args = DemoArgs { exit_after_cycle: true, ..args() };
    let summary = run_demo(env.config.clone(), args, CancellationToken::new(), ready).await.expect("demo completes");
    assert_eq!(count_of(&summary, "healthy"), 140, "{summary}");
    assert_eq!(count_of(&summary, "refreshed"), 30, "{summary}");
    assert_eq!(count_of(&summary, "reauthorization_required"), 20, "{summary}");
    assert_eq!(count_of(&summary, "retrying"), 10, "{summary}");
    assert_eq!(count_of(&summary, "total"), 200, "{summary}");
    let rule = summary.lines().find(|l| l.starts_with("---")).expect("a rule under the header");
    assert!(rule.chars().all(|c| c == '-' || c == ' '), "{summary}");
    let served = served.await.expect("the demo said where it served");
    assert!(served.url.starts_with("http://127.0.0.1:"), "{}", served.url);
    assert!(served.login_token.expose().len() >= 32, "a long login token");
}

async fn inbox_of_page(db: &sqlx::PgPool, page: &str) -> i64 {
    let id: i32 = sqlx::query_scalar(
        "SELECT i.id FROM inboxes i JOIN channel_facebook_pages c ON c.id = i.channel_id WHERE c.page_id = $1",
    )
    .bind(page)
    .fetch_one(db)
    .await
    .expect("demo inbox");
    i64::from(id)
}

#[tokio::test]
async fn demo_serves_the_dashboard_with_its_login_token_until_stopped() {
    let env = TestEnv::new().await;
    let shutdown = CancellationToken::new();
    let (ready, served) = oneshot::channel();
    let demo = tokio::spawn(run_demo(env.config.clone(), args(), shutdown.clone(), ready));
    let Served { url, login_token } =
        tokio::time::timeout(Duration::from_secs(60), served).await.expect("serves in time").expect("serves");
    let dash = Dash::new(url.trim_end_matches('/'));

    // Only this run's token opens it: the test environment's own admin token does not.
    assert_ne!(dash.login("not-the-token", "").await.status(), StatusCode::SEE_OTHER);
    if let Some(other) = &env.config.admin_api_token {
        assert_ne!(dash.login(other.expose(), "").await.status(), StatusCode::SEE_OTHER);
    }
    let cookie = dash.session(login_token.expose()).await;

    let demo_url = demo_database(&env.config.database_url).expect("demo url");
    let db = shared::store::connect_and_migrate(&demo_url, &env.config.database_schema, 2).await.expect("demo db");
    until(Duration::from_secs(60), "the demo's cycle settled", || {
        let db = db.clone();
        async move {
            let counts = shared::store::status_counts(&db).await.expect("counts");
            counts.get("refreshed") == Some(&30) && counts.get("reauthorization_required") == Some(&20)
        }
    })
    .await;
    let (status, page) = dash.get("/", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(count(&page, "all"), Some(CHANNELS as usize), "every demo inbox is listed");
    assert_eq!(count(&page, "reauthorization_required"), Some(20));

    // A page whose user changed their password: no token can be found, and the button says so.
    let revoked = inbox_of_page(&db, REVOKED_PAGE).await;
    let resp = dash.refresh(revoked, Some(&cookie), true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["result"], "still_failing", "{body}");
    assert_eq!(body["reauthorization_required"], true, "{body}");

    // An expired page token, renewed by the cycle: the button finds it working.
    let expired = inbox_of_page(&db, EXPIRED_PAGE).await;
    let resp = dash.refresh(expired, Some(&cookie), true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert!(matches!(body["result"].as_str(), Some("healthy" | "refreshed")), "{body}");
    assert_eq!(body["reauthorization_required"], false, "{body}");

    assert!(!demo.is_finished(), "the demo keeps running until it is stopped");
    shutdown.cancel();
    let summary =
        tokio::time::timeout(Duration::from_secs(30), demo).await.expect("stops in time").expect("task").expect("demo");
    assert_eq!(count_of(&summary, "total"), 200, "{summary}");
    assert!(!summary.contains(login_token.expose()), "the summary does not repeat the token");
}

#[tokio::test]
async fn the_demo_command_prints_where_to_log_in_and_keeps_its_logs_in_a_file() {
    let env = TestEnv::new().await;
    let log = std::env::temp_dir().join(format!("fbtr-demo-test-{}.log", uuid::Uuid::new_v4()));
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        env.command(env!("CARGO_BIN_EXE_producer-under-test"))
            .args(["demo", "--exit-after-cycle", "--channels", "50", "--latency-ms", "1", "--bind", "127.0.0.1:0"])
            .arg("--log-file")
            .arg(&log)
            .output(),
    )
    .await
    .expect("the demo ends after its cycle")
    .expect("runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout.lines().find(|l| l.contains("dashboard at http://127.0.0.1:")).expect("the URL is printed");
    let token = line.rsplit(' ').next().expect("token");
    assert!(token.len() >= 32 && token.chars().all(|c| c.is_ascii_hexdigit()), "{line}");
    assert_eq!(count_of(&stdout, "total"), 50, "{stdout}");
    // Not a terminal: no bar redrawn, and no log line on either stream.
    for text in [&stdout, &stderr] {
        assert!(!text.contains(" WARN ") && !text.contains(" INFO ") && !text.contains('\r'), "{text}");
    }
    let logged = std::fs::read_to_string(&log).expect("the log file");
    assert!(logged.contains("INFO") && logged.contains("WARN"), "the seeded failures are logged to the file");
    assert!(!logged.contains(token), "the login token is not logged");
    let _ = std::fs::remove_file(&log);
}
