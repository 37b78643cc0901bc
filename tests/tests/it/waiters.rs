//! Requests that wait on a job share one subscription per process, their number is bounded, and
//! each account's pushes to the head of the queue are limited.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use reqwest::{Client, StatusCode};
use serde_json::Value;
use shared::{
    config::Config,
    job::{Reason, RefreshJob},
    pipeline::Outcome,
    queue::{self, Waited},
    reports::ReportWaiter,
    secret::Secret,
};
use tests::TestEnv;

const ADMIN: &str = "waiters-admin-token";

/// The API on port 0, with its state at hand so the test can see how many requests wait.
async fn serve(config: &Config) -> (producer::state::AppState, String) {
    let state = producer::state::AppState::connect(config.clone()).await.expect("state");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = producer::app::router(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, base)
}

fn refresh_url(base: &str, account: i64, inbox: i64, wait: u64) -> String {
    format!("{base}/api/v1/accounts/{account}/callbacks/refresh_facebook_token/{inbox}?wait={wait}")
}

async fn post(http: &Client, url: &str, token: &str) -> (StatusCode, Option<String>, Value) {
    let resp = http.post(url).header("api_access_token", token).send().await.expect("request");
    let status = resp.status();
    let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, retry_after, resp.json().await.unwrap_or(Value::Null))
}

/// Local ports of this process's established TCP connections to Redis (port 6379), from /proc: the
/// sockets of our own file descriptors, matched against the kernel's connection tables.
fn redis_ports_of_this_process() -> HashSet<u16> {
    let inodes: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|l| l.to_str().and_then(|s| s.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned)))
        .collect();
    let mut ports = HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(state), Some(inode)) = (f.get(1), f.get(2), f.get(3), f.get(9)) else {
                continue;
            };
            if remote.ends_with(":18EB") && *state == "01" && inodes.contains(*inode) {
                let port = local.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
                ports.extend(port);
            }
        }
    }
    ports
}

fn redis_connections_of_this_process() -> usize {
    redis_ports_of_this_process().len()
}

/// Redis client ids of this process's pattern subscriptions.
async fn our_pattern_subscribers(env: &TestEnv) -> Vec<String> {
    let ours = redis_ports_of_this_process();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut env.redis.clone())
        .await
        .expect("list");
    list.lines()
        .filter_map(|line| {
            let field = |name: &str| line.split(' ').find_map(|kv| kv.strip_prefix(name));
            let port: u16 = field("addr=")?.rsplit(':').next()?.parse().ok()?;
            let psub: u32 = field("psub=")?.parse().ok()?;
            (psub > 0 && ours.contains(&port)).then(|| field("id=").map(str::to_owned)).flatten()
        })
        .collect()
}

async fn connected_clients(env: &TestEnv) -> i64 {
    let info: String = redis::cmd("INFO").arg("clients").query_async(&mut env.redis.clone()).await.expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("connected_clients")
}

/// Polls a counter that has no event of its own, within a bound.
async fn until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn two_hundred_waiting_requests_share_one_subscription() {
    let env = TestEnv::with(|c| c.admin_api_token = Some(Secret::new(ADMIN))).await;
    let (ch, _, _) = env.healthy_channel("91001").await;
    let inbox = env.inbox_of(ch).await;
    let (state, base) = serve(&env.config).await;
    let http = Client::builder().pool_max_idle_per_host(0).build().expect("client");
    // No worker yet: the job stays queued and everyone after this joins it.
    let (code, _, body) = post(&http, &refresh_url(&base, 1, inbox, 0), ADMIN).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");

    let (sockets_before, clients_before) = (redis_connections_of_this_process(), connected_clients(&env).await);
    let requests: Vec<_> = (0..200)
        .map(|_| {
            let (http, url) = (http.clone(), refresh_url(&base, 1, inbox, 30));
            tokio::spawn(async move { post(&http, &url, ADMIN).await })
        })
        .collect();
    until("200 waiting requests", || state.reports.waiting() == 200).await;
    let (sockets_during, clients_during) = (redis_connections_of_this_process(), connected_clients(&env).await);
    eprintln!(
        "200 waiting requests: this process's Redis connections {sockets_before} -> {sockets_during}; \
         server connected_clients {clients_before} -> {clients_during}"
    );
    assert!(
        sockets_during <= sockets_before + 3,
        "200 waits opened {} Redis connections",
        sockets_during.saturating_sub(sockets_before)
    );
    // The server's count includes every other client of this shared Redis; one wait per
    // connection pair, as before, would add about 400.
    assert!(clients_during < clients_before + 100, "connected_clients {clients_before} -> {clients_during}");

    // The worker settles the job: every waiter gets the result.
    let worker = env.spawn_worker();
    for r in requests {
        let (code, _, body) = r.await.expect("task");
        assert_eq!((code, body["status"].as_str()), (StatusCode::OK, Some("healthy")), "{body}");
    }
    assert_eq!(state.reports.waiting(), 0);
    worker.stop().await.expect("stop");

    // The measure itself: the one-off wait (two connections per call, as every request had before)
    // shows up in it.
    let job = uuid::Uuid::new_v4();
    let before = redis_connections_of_this_process();
    let config = env.config.clone();
    let old: Vec<_> = (0..50)
        .map(|_| {
            let config = config.clone();
            tokio::spawn(async move { queue::wait_for_report(&config, job, Duration::from_secs(30)).await })
        })
        .collect();
    let key = format!("{}:report:{job}", shared::keys::RedisKeys::of(&env.config).queue());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, subscribed): (String, u64) =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(&key).query_async(&mut env.redis.clone()).await.expect("numsub");
        if subscribed == 50 {
            break;
        }
        assert!(Instant::now() < deadline, "one-off waits did not subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = redis_connections_of_this_process();
    eprintln!("50 one-off waits: this process's Redis connections {before} -> {during}");
    assert!(during >= before + 50, "the measure sees per-wait connections: {before} -> {during}");
    for w in old {
        w.abort();
    }
}

#[tokio::test]
async fn waiters_above_the_bound_get_202_at_once() {
    let env = TestEnv::with(|c| {
        c.admin_api_token = Some(Secret::new(ADMIN));
        c.api_max_waiters = 3;
    })
    .await;
    let (ch, _, _) = env.healthy_channel("92001").await;
    let inbox = env.inbox_of(ch).await;
    let (state, base) = serve(&env.config).await;
    let http = Client::new();
    let waiting: Vec<_> = (0..3)
        .map(|_| {
            let (http, url) = (http.clone(), refresh_url(&base, 1, inbox, 30));
            tokio::spawn(async move { post(&http, &url, ADMIN).await })
        })
        .collect();
    until("3 waiting requests", || state.reports.waiting() == 3).await;

    let started = Instant::now();
    let (code, _, body) = post(&http, &refresh_url(&base, 1, inbox, 30), ADMIN).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at once, not after its wait: {:?}",
        started.elapsed()
    );
    let status_url = body["status_url"].as_str().expect("status_url");
    let resp = http.get(format!("{base}{status_url}")).header("api_access_token", ADMIN).send().await.expect("job");
    let job: Value = resp.json().await.expect("json");
    assert_eq!(job["state"], "queued", "{job}");

    let worker = env.spawn_worker();
    for r in waiting {
        let (code, _, body) = r.await.expect("task");
        assert_eq!(code, StatusCode::OK, "{body}");
    }
    worker.stop().await.expect("stop");
}

#[tokio::test]
async fn front_refreshes_are_limited_per_account() {
    let env = TestEnv::with(|c| c.api_refresh_per_minute = 3).await;
    let mut inboxes = Vec::new();
    for page in ["93001", "93002", "93003", "93004"] {
        let ch = env.insert_channel(1, page, "page-token", "user-token").await;
        inboxes.push((ch, env.inbox_of(ch).await));
    }
    let other = env.insert_channel(2, "93005", "page-token", "user-token").await;
    let other_inbox = env.inbox_of(other).await;
    let (_, account1) = shared::store::create_api_token(&env.db, 1).await.expect("token");
    let (_, account2) = shared::store::create_api_token(&env.db, 2).await.expect("token");
    let (_, base) = serve(&env.config).await;
    let http = Client::new();

    for (_, inbox) in &inboxes[..3] {
        let (code, _, body) = post(&http, &refresh_url(&base, 1, *inbox, 0), account1.expose()).await;
        assert_eq!(code, StatusCode::ACCEPTED, "within the limit: {body}");
    }
    let (limited_ch, limited_inbox) = inboxes[3];
    let (code, retry_after, body) = post(&http, &refresh_url(&base, 1, limited_inbox, 0), account1.expose()).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "rate_limited", "{body}");
    assert!(body["message"].is_string());
    let secs: u64 = retry_after.expect("Retry-After").parse().expect("seconds");
    assert!((1..=60).contains(&secs), "Retry-After {secs}");
    let keys = shared::keys::RedisKeys::of(&env.config);
    let owner = shared::pending::owner(&mut env.redis.clone(), &keys, limited_ch).await.expect("owner");
    assert_eq!(owner, None, "nothing was pushed for the refused request");

    // The dashboard's "Try auto refresh" draws on the same window.
    let dash = crate::dashboard::Dash::new(&base);
    let session = dash.session(account1.expose()).await;
    let resp = dash.refresh(limited_inbox, Some(&session), true).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "rate_limited", "{body}");

    // Joining a refresh that is already queued pushes nothing and is not refused.
    let (code, _, body) = post(&http, &refresh_url(&base, 1, inboxes[0].1, 0), account1.expose()).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    // Another account has a window of its own.
    let (code, _, body) = post(&http, &refresh_url(&base, 2, other_inbox, 0), account2.expose()).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
}

#[tokio::test]
async fn a_lost_subscription_is_restored_and_waiters_still_hear_their_report() {
    let env = TestEnv::new().await;
    let waiter = ReportWaiter::start(env.redis.clone(), Arc::new(env.config.clone()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut subscribed = our_pattern_subscribers(&env).await;
    while subscribed.is_empty() {
        assert!(Instant::now() < deadline, "the waiter never subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
        subscribed = our_pattern_subscribers(&env).await;
    }
    let job = RefreshJob::new(1, Reason::Manual);
    let (w, id) = (waiter.clone(), job.job_id());
    let pending = tokio::spawn(async move { w.wait(id, Duration::from_secs(30)).await });
    until("the wait to register", || waiter.waiting() == 1).await;

    // The connection drops (a Redis restart, a proxy timeout); the report comes meanwhile.
    for client in &subscribed {
        let _: () = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(client)
            .query_async(&mut env.redis.clone())
            .await
            .expect("kill");
    }
    let report = Outcome::Healthy.report(&job);
    queue::publish_report(&mut env.redis.clone(), &env.config, &report).await.expect("publish");

    let waited = tokio::time::timeout(Duration::from_secs(10), pending).await.expect("heard well before its timeout");
    let waited = waited.expect("task").expect("redis");
    assert!(matches!(&waited, Waited::Settled(r) if r.outcome == "healthy"), "{waited:?}");
    let now = our_pattern_subscribers(&env).await;
    assert!(!now.is_empty() && now.iter().all(|c| !subscribed.contains(c)), "resubscribed: {subscribed:?} -> {now:?}");
}
