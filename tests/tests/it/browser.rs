//! The dashboard in a real headless Chromium (Debian's `chromium` and `chromium-driver`, installed
//! by `scripts/services --browser`), driven over WebDriver with fantoccini: sign in through the form,
//! see the banner, click "Try auto refresh" and watch the inbox turn healthy in place, then the
//! Vietnamese page. Saves a screenshot to docs/dashboard.png. Fails (never skips) without a browser.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use simulator::{Fault, FaultKind, Matcher};
use tests::{TestEnv, wait::until};

use crate::dashboard::{ADMIN, PASSWORD_CHANGED, env_with_admin, flagged_channels, make_refreshable, rename_inbox};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub const WAIT: Duration = Duration::from_secs(45);

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn browser_present() -> bool {
    Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()
}

/// Installs Chromium and chromedriver through `scripts/services --browser` when missing; fails the
/// test with a clear message when that does not work.
fn ensure_browser() {
    if browser_present() {
        return;
    }
    let script = workspace_root().join("scripts/services");
    let ran = Command::new("bash").arg(&script).arg("--browser").status();
    assert!(
        browser_present(),
        "this test needs headless Chromium: {CHROMIUM} and {CHROMEDRIVER} are missing and \
         `scripts/services --browser` could not install them ({ran:?}); install Debian's chromium and chromium-driver"
    );
}

/// chromedriver on a free port, with a fresh Chromium profile; killed (and cleaned up) on drop.
pub struct Driver {
    child: Child,
    url: String,
    dir: PathBuf,
}

impl Driver {
    pub async fn start() -> Self {
        ensure_browser();
        let dir = std::env::temp_dir().join(format!("fbtr-browser-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("profile")).expect("profile dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", dir.join("chromedriver.log").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMEDRIVER}: {e}"));
        let driver = Self { child, url: format!("http://127.0.0.1:{port}"), dir };
        let http = reqwest::Client::new();
        let status = format!("{}/status", driver.url);
        until(Duration::from_secs(20), &format!("chromedriver answering ready on {}", driver.url), || async {
            if let Ok(resp) = http.get(&status).send().await
                && let Ok(status) = resp.json::<Value>().await
            {
                status["value"]["ready"] == true
            } else {
                false
            }
        })
        .await;
        driver
    }

    pub async fn client(&self) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,1000",
            "--lang=en-US",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", self.dir.join("profile").display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({"binary": CHROMIUM, "args": args}));
        let mut builder = ClientBuilder::rustls().expect("rustls");
        builder.capabilities(caps);
        builder.connect(&self.url).await.unwrap_or_else(|e| {
            panic!("cannot open a Chromium session through {}: {e} (log in {})", self.url, self.dir.display())
        })
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A day of refresh history so the chart has something to show (the checks of this test land in
/// the current hour).
async fn seed_history(env: &TestEnv, channel: i64) {
    for h in 1..=23i32 {
        let healthy = 5 + (h * 7) % 4;
        let refreshed = if h % 6 == 0 { 2 } else { i32::from(h % 4 == 1) };
        let retrying = if h % 5 == 2 { 2 } else { i32::from(h % 7 == 3) };
        let failed = i32::from(h == 4 || h == 11);
        let kinds = [
            ("validate", "ok", healthy),
            ("refresh", "refreshed", refreshed),
            ("validate", "transient", retrying),
            ("refresh", "auth", failed),
        ];
        for (step, outcome, n) in kinds {
            for _ in 0..n {
                sqlx::query(
                    "INSERT INTO fb_token_events (channel_id, job_id, reason, step, outcome, created_at)
                     VALUES ($1, $2, 'cron', $3, $4, now() - make_interval(hours => $5))",
                )
                .bind(i32::try_from(channel).expect("id"))
                .bind(uuid::Uuid::now_v7())
                .bind(step)
                .bind(outcome)
                .bind(h)
                .execute(&env.db)
                .await
                .expect("history");
            }
        }
    }
}

pub async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("text")
}

/// Saves the whole page (the window grown to its height, up to 2,400 px) as `docs/{name}`.
pub async fn screenshot(client: &Client, name: &str) {
    let dims = client
        .execute("return [document.documentElement.scrollHeight, window.outerHeight - window.innerHeight];", vec![])
        .await
        .expect("page height");
    let px = |i: usize| u32::try_from(dims[i].as_u64().unwrap_or(0)).unwrap_or(0);
    client.set_window_size(1280, px(0).clamp(600, 2400) + px(1)).await.expect("resize");
    let png = client.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let docs = workspace_root().join("docs");
    std::fs::create_dir_all(&docs).expect("docs/");
    std::fs::write(docs.join(name), &png).unwrap_or_else(|e| panic!("write docs/{name}: {e}"));
    client.set_window_size(1280, 1000).await.expect("resize back");
}

#[tokio::test]
async fn dashboard_in_headless_chromium() {
    let env = env_with_admin().await;
    let worker = env.spawn_worker();
    let flagged = flagged_channels(
        &env,
        &[("91001", 460, PASSWORD_CHANGED), ("91002", 492, "The user is not an admin of this page anymore.")],
    )
    .await;
    let [(fix_ch, fix_inbox, _), (_, stay_inbox, _)] = &flagged[..] else { panic!() };
    rename_inbox(&env, *fix_inbox, "Cửa hàng Hà Nội").await;
    rename_inbox(&env, *stay_inbox, "Support – Saigon").await;
    let mut checked = Vec::new();
    for (page, name) in [("91003", "Sales EU"), ("91004", "Shop <b>Deals</b>"), ("91005", "Kids & Toys")] {
        let (ch, _, _) = env.healthy_channel(page).await;
        rename_inbox(&env, env.inbox_of(ch).await, name).await;
        let (code, text) = producer::refresh_channel::refresh_channel(&env.config, &ch.to_string(), WAIT, false).await;
        assert_eq!(code, 0, "{text}");
        checked.push(ch);
    }
    let (limited, _, _) = env.healthy_channel("91006").await;
    rename_inbox(&env, env.inbox_of(limited).await, "Wholesale").await;
    env.sim.rate_limit_page("91006", 32, Some(30));
    let _ =
        producer::refresh_channel::refresh_channel(&env.config, &limited.to_string(), Duration::from_secs(5), false)
            .await;
    let fresh = env.insert_channel(1, "91007", "page-token-91007", "user-token-91007").await;
    rename_inbox(&env, env.inbox_of(fresh).await, "New page (not checked yet)").await;
    seed_history(&env, checked[0]).await;
    let server = env.serve_api().await;

    let driver = Driver::start().await;
    let client = driver.client().await;

    // Sign in through the form.
    client.goto(&format!("{}/", server.base)).await.expect("goto");
    let input =
        client.wait().at_most(WAIT).for_element(Locator::Css("input[name=api_access_token]")).await.expect("form");
    input.send_keys(ADMIN).await.expect("type");
    client.find(Locator::Css("form button[type=submit]")).await.expect("button").click().await.expect("submit");
    client.wait().at_most(WAIT).for_element(Locator::Css("nav.counts")).await.expect("dashboard after login");
    let source = client.source().await.expect("source");
    assert!(!source.contains(ADMIN), "the token is not in the page");

    // The flagged inbox with its banner and both actions.
    let banner = text_of(&client, &format!("#inbox-{fix_inbox} .banner")).await;
    assert!(banner.contains("Reconnection required") && banner.contains("changed their password"), "{banner}");
    assert!(banner.find("Try auto refresh") < banner.find("Reconnect manually"), "{banner}");
    assert!(text_of(&client, &format!("#inbox-{stay_inbox} .banner")).await.contains("no longer one of its admins"));
    assert_eq!(text_of(&client, "a.count[data-status=reauthorization_required] .n").await, "2");
    assert!(text_of(&client, "body").await.contains("Shop <b>Deals</b>"), "names show as text");

    // The screenshot for the README: the whole page.
    screenshot(&client, "dashboard.png").await;

    // "Try auto refresh" once the page can be refreshed: progress, then the result in place.
    make_refreshable(&env, *fix_ch, "91001").await;
    let slow = env.sim.inject(Fault::new(FaultKind::Latency(Duration::from_millis(600)), Matcher::Any));
    client
        .find(Locator::Css(&format!("#inbox-{fix_inbox} button[name=auto_refresh]")))
        .await
        .expect("auto refresh button")
        .click()
        .await
        .expect("click");
    assert_eq!(text_of(&client, &format!("#result-{fix_inbox}.progress")).await, "Refreshing…");
    let notice = text_of(&client, &format!("#inbox-{fix_inbox} tr.notice-row")).await;
    assert!(notice.contains("a new token was saved"), "{notice}");
    env.sim.remove_fault(slow);
    assert_eq!(text_of(&client, &format!("#inbox-{fix_inbox} .badge")).await, "Refreshed");
    let banners = client.find_all(Locator::Css(&format!("#inbox-{fix_inbox} .banner"))).await.expect("find");
    assert!(banners.is_empty(), "the banner is gone");
    assert!(!env.flags(*fix_ch).await.reauthorization_required);

    // Vietnamese.
    client.goto(&format!("{}/?lang=vi", server.base)).await.expect("goto vi");
    let banner = text_of(&client, &format!("#inbox-{stay_inbox} .banner")).await;
    assert!(banner.contains("Cần kết nối lại"), "{banner}");
    assert_eq!(
        text_of(&client, &format!("#inbox-{stay_inbox} button[name=auto_refresh]")).await,
        "Thử refresh tự động"
    );
    assert_eq!(text_of(&client, &format!("#inbox-{stay_inbox} a.reconnect")).await, "Kết nối lại thủ công");
    assert_eq!(text_of(&client, &format!("#inbox-{fix_inbox} .badge")).await, "Đã làm mới");
    let lang = client.execute("return document.documentElement.lang;", vec![]).await.expect("lang");
    assert_eq!(lang, "vi");

    client.close().await.expect("close browser");
    drop(driver);
    server.shutdown().await.expect("stop");
    worker.stop().await.expect("worker");
}
