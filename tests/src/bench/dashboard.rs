//! `dashboard`: page views of `GET /` at --channels inboxes (default 100,000), as the admin and as
//! one account's session: the first page, a filter, a search by name and by page id, and a later
//! page, each timed over --samples requests (at least 50 unless --quick). The inboxes are spread
//! over 100 accounts, with 1% retrying, 1% never checked and 1% needing reconnection (in groups of
//! ten pages of one Facebook user), the rest healthy; no worker runs.

use std::time::Instant;

use anyhow::Context as _;
use reqwest::{StatusCode, header, redirect::Policy};
use serde_json::{Value, json};
use shared::secret::Secret;

use super::{
    args::Options,
    common::{percentile, say, secs},
    env::BenchEnv,
    report::Outcome,
};

const ADMIN: &str = "bench-dashboard-admin-token";
/// A cron that does not fire while the bench runs: no cycle competes with the page views.
const NEVER_SOON: &str = "0 0 0 1 1 *";
const ACCOUNTS: i64 = 100;

pub async fn run(env: &BenchEnv, opts: &Options) -> anyhow::Result<Outcome> {
    let n = opts.channels;
    let samples = if opts.quick { opts.samples.max(5) } else { opts.samples.max(50) };
    env.sim.set_logging(false);
    say(format!("dashboard: seeding {n} inboxes over {ACCOUNTS} accounts"));
    let t = Instant::now();
    env.seed(n, 1_000_000, 100).await?;
    shape(env).await?;
    let seed_s = t.elapsed();

    let mut config = env.config.clone();
    config.admin_api_token = Some(Secret::new(ADMIN));
    config.refresh_cron = NEVER_SOON.into();
    let (_, account_token) = shared::store::create_api_token(&env.db, 1).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let stop = tokio_util::sync::CancellationToken::new();
    let schedule = producer::cron::parse_schedule(NEVER_SOON).context("cron")?;
    let server = tokio::spawn(producer::serve::serve(config, schedule, listener, stop.clone()));
    let result = measure(&base, &[("admin", ADMIN), ("account 1", account_token.expose())], samples).await;
    stop.cancel();
    let _ = server.await;
    let (views, table) = result?;
    let ok = views.iter().all(|v| v["errors"] == 0);
    let json = json!({
        "workload": "dashboard",
        "inboxes": n,
        "accounts": ACCOUNTS,
        "samples": samples,
        "seed_s": secs(seed_s),
        "views": views,
        "ok": ok,
    });
    Ok(Outcome { json, rows: Vec::new(), tables: vec![(format!("dashboard: GET / at {n} inboxes, ms"), table)], ok })
}

/// Names, accounts, token states and user token digests, as a live install has them.
async fn shape(env: &BenchEnv) -> anyhow::Result<()> {
    for sql in [
        "UPDATE inboxes SET account_id = 1 + (channel_id % 100), name = 'Inbox ' || channel_id || ' ' || left(md5(channel_id::text), 8)",
        "UPDATE channel_facebook_pages SET account_id = 1 + (id % 100)",
        "INSERT INTO fb_token_states (channel_id, status, token_valid, consecutive_failures, last_checked_at,
           last_error_kind, last_error_code, last_error_subcode, last_error_message)
         SELECT id, st, st <> 'reauthorization_required', CASE st WHEN 'healthy' THEN 0 ELSE 2 END, now(),
                CASE WHEN st = 'healthy' THEN NULL ELSE 'auth' END, CASE WHEN st = 'healthy' THEN NULL ELSE 190 END,
                CASE WHEN st = 'healthy' THEN NULL ELSE 460 END,
                CASE WHEN st = 'healthy' THEN NULL ELSE 'Error validating access token' END
         FROM (SELECT id, CASE WHEN id % 100 = 1 THEN 'retrying'
                               WHEN (id / 100) % 10 = 3 AND id % 10 = 0 THEN 'reauthorization_required'
                               ELSE 'healthy' END AS st
               FROM channel_facebook_pages WHERE id % 100 <> 2) c",
        "INSERT INTO fb_channel_user_tokens (channel_id, user_token_sha256, channel_updated_at)
         SELECT id, sha256(convert_to(user_access_token, 'UTF8')), updated_at FROM channel_facebook_pages",
        "ANALYZE channel_facebook_pages, inboxes, fb_token_states, fb_channel_user_tokens",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&env.db).await.with_context(|| sql.to_owned())?;
    }
    Ok(())
}

/// Every view, for every session: its timings (JSON) and a table of them.
async fn measure(base: &str, sessions: &[(&str, &str)], samples: usize) -> anyhow::Result<(Vec<Value>, String)> {
    let http = reqwest::Client::builder().redirect(Policy::none()).build()?;
    let views = [
        ("first page", "/"),
        ("filter attention", "/?status=attention"),
        ("filter healthy", "/?status=healthy"),
        ("search name", "/?q=Inbox%2012345%20"),
        ("search page id", "/?q=1054321"),
        ("later page", "/?status=healthy&page=150"),
    ];
    let mut out = Vec::new();
    let mut table = format!("{:<12} {:<18} {:>8} {:>8} {:>8}\n", "session", "view", "p50", "p99", "max");
    for (who, token) in sessions {
        let resp = http.post(format!("{base}/login")).form(&[("api_access_token", *token)]).send().await?;
        anyhow::ensure!(resp.status() == StatusCode::SEE_OTHER, "{who}: login answered {}", resp.status());
        let cookie = resp
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|c| c.to_str().ok())
            .and_then(|c| c.split(';').next())
            .context("no session cookie")?
            .to_owned();
        for (view, path) in views {
            let mut ms = Vec::with_capacity(samples);
            let mut errors = 0u64;
            // One unmeasured view: the first use of a pooled connection prepares the statements.
            let _ = http.get(format!("{base}{path}")).header(header::COOKIE, &cookie).send().await;
            for _ in 0..samples {
                let t = Instant::now();
                let resp = http.get(format!("{base}{path}")).header(header::COOKIE, &cookie).send().await?;
                let ok = resp.status() == StatusCode::OK;
                let body = resp.text().await?;
                ms.push(t.elapsed().as_secs_f64() * 1_000.0);
                if !ok || !body.contains("<nav class=\"counts\">") {
                    errors += 1;
                }
            }
            ms.sort_by(f64::total_cmp);
            let (p50, p99, max) = (percentile(&ms, 50.0), percentile(&ms, 99.0), ms.last().copied());
            let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            table.push_str(&format!("{who:<12} {view:<18} {:>8} {:>8} {:>8}\n", f(p50), f(p99), f(max)));
            say(format!("dashboard: {who}, {view}: p50 {} ms, p99 {} ms", f(p50), f(p99)));
            out.push(json!({"session": who, "view": view, "path": path, "p50_ms": p50, "p99_ms": p99, "max_ms": max, "errors": errors}));
        }
    }
    Ok((out, table))
}
