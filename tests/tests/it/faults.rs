//! Outages: Graph for a whole cycle, Postgres cut for 10 s, Redis restarted and frozen for 10 s.
//! Each proves: every channel processed, none lost, no false flag; and prints its figures.

use std::time::{Duration, Instant};

use shared::{job::Reason, retry::RetryPolicy};
use simulator::{Fault, FaultKind, Matcher};
use tests::{
    TestEnv,
    outage::{TcpProxy, ThrowawayRedis},
    wait::eventually,
};

/// Waits until all `n` channels are healthy; returns how long that took.
async fn until_all_healthy(env: &TestEnv, n: i64, limit: Duration) -> Duration {
    let started = Instant::now();
    eventually(limit, &format!("all {n} channels healthy"), || async {
        (env.status_count("healthy").await == n).then_some(())
    })
    .await;
    started.elapsed()
}

/// Waits until at least `n` channels have a state (were tried).
async fn until_tried(env: &TestEnv, n: i64, limit: Duration) {
    eventually(limit, &format!("{n} channels tried"), || async { (states(env).await >= n).then_some(()) }).await;
}

async fn states(env: &TestEnv) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM fb_token_states").fetch_one(&env.db).await.unwrap_or(0)
}

async fn no_false_flags(env: &TestEnv) {
    // The test's own connection may have been cut by the outage: a fresh one sees the same data.
    let client = redis::Client::open(env.config.redis_url.expose()).expect("url");
    let mut conn = client.get_multiplexed_async_connection().await.expect("redis back");
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}*", env.config.redis_key_prefix)).query_async(&mut conn).await.expect("keys");
    assert!(!keys.iter().any(|k| k.contains("authorization")), "flag or count keys: {keys:?}");
    let dead = shared::store::open_dead_count(&env.db).await.expect("db");
    assert_eq!(dead, 0, "dead-lettered jobs");
}

async fn cycle(env: &TestEnv) -> u64 {
    producer::cycle::enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron).await.expect("cycle").enqueued
}

fn patient(c: &mut shared::config::Config) {
    c.fb_http_timeout = Duration::from_secs(1);
    c.retry = RetryPolicy {
        base: Duration::from_secs(1),
        factor: 2.0,
        max: Duration::from_secs(2),
        max_attempts: 1_000,
        jitter: true,
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_outage_for_a_whole_cycle_flags_nothing() {
    let env = TestEnv::with(patient).await;
    let n = 100;
    env.seed_healthy(n, 110_000).await;
    let kinds =
        [FaultKind::ServerError, FaultKind::Html, FaultKind::Hang, FaultKind::Drop, FaultKind::ServiceUnavailable];
    for i in 0..n {
        env.sim.inject(Fault::new(kinds[i % kinds.len()].clone(), Matcher::Page((110_000 + i).to_string())));
    }
    let worker = env.spawn_worker();
    assert_eq!(cycle(&env).await, n as u64);
    // The outage lasts until every channel has failed at least once, then a little longer.
    until_tried(&env, n as i64, Duration::from_secs(60)).await;
    let retrying: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_token_states WHERE status = 'retrying'")
        .fetch_one(&env.db)
        .await
        .expect("db");
    assert_eq!(retrying, n as i64, "every channel waits for a retry during the outage");
    no_false_flags(&env).await;
    env.sim.clear_faults();
    let recovery = until_all_healthy(&env, n as i64, Duration::from_secs(60)).await;
    no_false_flags(&env).await;
    println!(
        "graph outage: {n} channels processed, 0 lost, 0 false flags, all healthy {recovery:?} after the outage ended"
    );
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_unreachable_for_10s_loses_nothing() {
    let proxy = TcpProxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let port = proxy.addr.port();
    let env = TestEnv::with(|c| {
        patient(c);
        c.retry.max = Duration::from_secs(4);
        let url = c.database_url.expose().replace(":5432/", &format!(":{port}/"));
        c.database_url = shared::secret::Secret::new(url);
    })
    .await;
    let n = 300;
    env.seed_healthy(n, 120_000).await;
    env.sim.set_latency(Duration::from_millis(20));
    let worker = env.spawn_worker();
    assert_eq!(cycle(&env).await, n as u64);
    until_tried(&env, 30, Duration::from_secs(60)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.restore();
    let restored = Instant::now();
    let recovery = until_all_healthy(&env, n as i64, Duration::from_secs(120)).await;
    no_false_flags(&env).await;
    assert!(worker.join.as_ref().is_some_and(|j| !j.is_finished()), "worker alive");
    println!(
        "postgres outage 10 s: {n} channels processed, 0 lost, 0 false flags, all healthy {:?} after Postgres came back ({recovery:?} measured)",
        restored.elapsed()
    );
    worker.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_and_frozen_loses_nothing() {
    let mut redis = ThrowawayRedis::start().await;
    let url = redis.url();
    let env = TestEnv::with(|c| {
        patient(c);
        c.retry.max = Duration::from_secs(4);
        c.redis_url = shared::secret::Secret::new(url);
    })
    .await;
    let n = 300;
    env.seed_healthy(n, 130_000).await;
    env.sim.set_latency(Duration::from_millis(20));
    let worker = env.spawn_worker();
    assert_eq!(cycle(&env).await, n as u64);
    until_tried(&env, 30, Duration::from_secs(60)).await;
    redis.restart(Duration::from_secs(2)).await;
    redis.freeze_for(Duration::from_secs(10)).await;
    let back = Instant::now();
    until_all_healthy(&env, n as i64, Duration::from_secs(120)).await;
    no_false_flags(&env).await;
    assert!(worker.join.as_ref().is_some_and(|j| !j.is_finished()), "worker alive, no crash loop");
    // The producer side reconnects too: a report after the outage is taken. About a channel the
    // cycle never had: one of its channels may rightly still have a retry pending, which a report
    // joins instead.
    let (fresh, _, _) = env.healthy_channel("139999").await;
    let report = shared::intake::parse_report(&serde_json::json!({"error": {"code": 190}})).expect("report");
    let decision = env.intake().report(fresh, &report, None).await.expect("intake after the outage");
    assert!(matches!(decision, shared::intake::Decision::Enqueued { .. }), "{decision:?}");
    println!(
        "redis restart + 10 s freeze: {n} channels processed, 0 lost, 0 false flags, all healthy {:?} after Redis came back",
        back.elapsed()
    );
    worker.stop().await.expect("stop");
}
