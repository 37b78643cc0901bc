//! The quick start as a new user meets it, in headless Chromium: `producer demo` (the binary)
//! prints a URL and a login token; signing in with them shows the grouped banners, the search
//! finds one page, the queue page re-drives a dead letter and pauses and resumes the schedule.
//! Saves docs/demo-dashboard.png, docs/demo-search.png and docs/queue.png for the README.

use std::{process::Stdio, time::Duration};

use fantoccini::{Client, Locator};
use shared::{
    graph::{ErrorKind, GraphError},
    job::{Reason, RefreshJob},
};
use tests::{TestEnv, wait::until};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::browser::{Driver, WAIT, screenshot, text_of};

/// Users 17 and 18 of the demo's seed changed their password: ten pages each (`demo::seed`).
const REVOKED_PAGE: &str = "100000000170";

/// Clicks the button of the form posting to `action` and waits for the page it lands on, `lands`
/// (a path under `base`), so what is read next is of the new page.
async fn press(client: &Client, base: &str, action: &str, lands: &str) {
    let button = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(&format!("form[action=\"{action}\"] button")))
        .await
        .unwrap_or_else(|e| panic!("button of {action}: {e}"));
    button.click().await.unwrap_or_else(|e| panic!("click {action}: {e}"));
    let to = format!("{}{lands}", base.trim_end_matches('/')).parse().expect("url");
    client.wait().at_most(WAIT).for_url(&to).await.unwrap_or_else(|e| panic!("{action} lands on {lands}: {e}"));
}

#[tokio::test]
async fn the_demo_in_headless_chromium() {
    let env = TestEnv::new().await;
    let log = std::env::temp_dir().join(format!("fbtr-demo-browser-{}.log", uuid::Uuid::new_v4()));
    let mut demo = env
        .command(env!("CARGO_BIN_EXE_producer-under-test"))
        .args(["demo", "--channels", "200", "--latency-ms", "1", "--bind", "127.0.0.1:0"])
        .arg("--log-file")
        .arg(&log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let mut lines = BufReader::new(demo.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(line) = lines.next_line().await.expect("read") {
            if line.contains("dashboard at http") {
                return line;
            }
        }
        panic!("the demo ended without saying where it serves");
    })
    .await
    .expect("the demo serves in time");
    // Keep reading so the demo never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).expect("a URL").to_owned();
    let token = line.split_whitespace().last().expect("a token").to_owned();

    let demo_url = producer::demo::demo_database(&env.config.database_url).expect("demo url");
    let db = shared::store::connect_and_migrate(&demo_url, &env.config.database_schema, 2).await.expect("demo db");
    until(Duration::from_secs(90), "the demo's cycle settled", || {
        let db = db.clone();
        async move {
            let counts = shared::store::status_counts(&db).await.expect("counts");
            counts.get("refreshed") == Some(&30) && counts.get("reauthorization_required") == Some(&20)
        }
    })
    .await;

    let driver = Driver::start().await;
    let client = driver.client().await;

    // Sign in at the printed URL with the printed token.
    client.goto(&url).await.expect("goto");
    let input =
        client.wait().at_most(WAIT).for_element(Locator::Css("input[name=api_access_token]")).await.expect("form");
    input.send_keys(&token).await.expect("type");
    client.find(Locator::Css("form button[type=submit]")).await.expect("button").click().await.expect("submit");
    client.wait().at_most(WAIT).for_element(Locator::Css("nav.counts")).await.expect("dashboard after login");
    assert!(!client.source().await.expect("source").contains(&token), "the token is not in the page");

    // One banner per Facebook user, each naming its ten pages.
    let groups = client.find_all(Locator::Css("div.banner.group")).await.expect("groups");
    assert_eq!(groups.len(), 2, "the two users whose password changed");
    for g in &groups {
        assert_eq!(g.attr("data-pages").await.expect("attr").as_deref(), Some("10"));
        assert!(g.text().await.expect("text").contains("One reconnect fixes these 10 pages"));
    }
    screenshot(&client, "demo-dashboard.png").await;

    // Search by page id: one row.
    let q = client.find(Locator::Css("input#q")).await.expect("search box");
    q.send_keys(REVOKED_PAGE).await.expect("type");
    client.find(Locator::Css("form.search button")).await.expect("search").click().await.expect("search");
    client
        .wait()
        .at_most(WAIT)
        .for_url(&format!("{url}?q={REVOKED_PAGE}").parse().expect("url"))
        .await
        .expect("searched");
    let rows = client.find_all(Locator::Css("tbody.inbox")).await.expect("rows");
    assert_eq!(rows.len(), 1, "one page has this id");
    assert!(rows[0].text().await.expect("text").contains(REVOKED_PAGE));
    screenshot(&client, "demo-search.png").await;

    // A dead letter, as a worker leaves one after its last attempt; re-driven from the queue page.
    let channel: i32 = sqlx::query_scalar("SELECT id FROM channel_facebook_pages WHERE page_id = '100000000005'")
        .fetch_one(&db)
        .await
        .expect("a healthy demo channel");
    let error = GraphError {
        kind: ErrorKind::Transient,
        code: Some(2),
        subcode: None,
        message: "Service temporarily unavailable".into(),
        http_status: Some(503),
        retry_after: None,
        app_level: false,
    };
    let job = RefreshJob::new(i64::from(channel), Reason::SendFailure);
    shared::store::record_dead_job(&db, &job, &error).await.expect("dead letter");
    let dead: i64 = sqlx::query_scalar("SELECT max(id) FROM fb_dead_jobs").fetch_one(&db).await.expect("id");
    client.goto(&url).await.expect("home");
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("a[data-open-queue]"))
        .await
        .expect("link")
        .click()
        .await
        .expect("open");
    let row = text_of(&client, &format!("tr[data-dead-letter=\"{dead}\"]")).await;
    assert!(row.contains("Service temporarily unavailable") && row.contains("send_failure"), "{row}");
    screenshot(&client, "queue.png").await;
    press(&client, &url, &format!("/dashboard/queue/dead/{dead}/retry"), "/dashboard/queue?done=retried&n=1&jobs=1")
        .await;
    let notice = text_of(&client, "p.notice").await;
    assert_eq!(notice, "Re-drove 1 dead letters as 1 new jobs.");
    let open: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_dead_jobs WHERE redriven_at IS NULL")
        .fetch_one(&db)
        .await
        .expect("open");
    assert_eq!(open, 0);
    assert!(client.find_all(Locator::Css("tr[data-dead-letter]")).await.expect("rows").is_empty());

    // Pause and resume the schedule.
    press(&client, &url, "/dashboard/queue/schedule/pause", "/dashboard/queue?done=paused").await;
    assert_eq!(text_of(&client, "p.notice").await, "The schedule is paused for every replica.");
    let card = client.find(Locator::Css("#schedule")).await.expect("schedule");
    assert_eq!(card.attr("data-paused").await.expect("attr").as_deref(), Some("true"));
    assert!(card.text().await.expect("text").contains("Paused by admin, session "));
    press(&client, &url, "/dashboard/queue/schedule/resume", "/dashboard/queue?done=resumed").await;
    assert_eq!(text_of(&client, "p.notice").await, "The schedule is running again.");
    let card = client.find(Locator::Css("#schedule")).await.expect("schedule");
    assert_eq!(card.attr("data-paused").await.expect("attr").as_deref(), Some("false"));
    let history: Vec<String> =
        sqlx::query_scalar("SELECT action FROM fb_operator_actions ORDER BY id").fetch_all(&db).await.expect("history");
    assert_eq!(history, ["dead_letter.retry", "schedule.pause", "schedule.resume"]);
    assert!(text_of(&client, "#history").await.contains("schedule.resume"));

    client.close().await.expect("close browser");
    drop(driver);
    // Ctrl-C, as the quick start says.
    let pid = demo.id().expect("pid").to_string();
    let _ = std::process::Command::new("kill").args(["-INT", &pid]).status();
    let status = tokio::time::timeout(Duration::from_secs(30), demo.wait()).await.expect("stops").expect("status");
    assert!(status.success(), "the demo stops cleanly on Ctrl-C: {status:?}");
    let _ = std::fs::remove_file(&log);
}
