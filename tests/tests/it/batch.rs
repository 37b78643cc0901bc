//! The cron cycle's batch validation: up to 50 channels per Graph call, failing ones refreshed with
//! one `/me/accounts` sweep per user token.

use std::time::Duration;

use chrono::Utc;
use shared::{
    job::{BatchJob, Reason, RefreshJob},
    pipeline::{CHANNEL_BUSY_WAIT, Outcome},
};
use simulator::{Fault, FaultKind, Matcher};
use tests::{TestEnv, wait::until};
use tokio_util::sync::CancellationToken;

/// A channel whose page token and user token are both dead: every run confirms the failure.
async fn dead_channel(env: &TestEnv, page: &str) -> i64 {
    let (ch, user, user_token) = env.healthy_channel(page).await;
    env.sim.kill_page_token(page, &user, 190, Some(460), "password changed");
    env.sim.kill_user_token(&user_token, 190, Some(460), "password changed");
    ch
}

/// Waits (bounded) until Graph has received more than `n` requests.
async fn graph_requests_past(env: &TestEnv, n: usize) {
    until(Duration::from_secs(2), &format!("Graph seeing request {}", n + 1), || async { env.sim.request_count() > n })
        .await;
}

/// Waits (bounded) until the day's webhook subscription reads of `n` channels went out: they run
/// after a batch's answers are in, so a cycle can settle before them.
async fn subscription_reads(env: &TestEnv, n: usize) {
    let reads = || env.sim.count_where(|r| r.batch_item && r.path.ends_with("/subscribed_apps"));
    until(Duration::from_secs(10), &format!("{n} subscription reads"), || async { reads() >= n }).await;
}

async fn cycle_and_settle(env: &TestEnv, n: u64) {
    let started = Utc::now();
    let count =
        producer::cycle::enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron).await.expect("cycle");
    assert_eq!(count.enqueued, n);
    let never = CancellationToken::new();
    tokio::time::timeout(
        Duration::from_secs(60),
        producer::progress::wait_for_answers(&env.db, started, n, &never, |_, _| {}),
    )
    .await
    .expect("settles in time")
    .expect("db");
}

#[tokio::test]
async fn healthy_channels_cost_one_request_per_fifty() {
    let env = TestEnv::new().await;
    env.seed_healthy(120, 160_000).await;
    let worker = env.spawn_worker();
    cycle_and_settle(&env, 120).await;
    subscription_reads(&env, 120).await;
    worker.stop().await.expect("stop");
    assert_eq!(env.status_count("healthy").await, 120);
    let batches = env.sim.count_where(|r| r.path == "/" && !r.batch_item);
    // 120 channels in 3 validation batches, and (the first cycle of each channel's day) their
    // webhook subscriptions read in 3 more: a round trip per 50, never one per channel.
    assert_eq!(batches, 6, "120 channels in 3 + 3 batch calls");
    let is_subscription = |r: &simulator::LoggedRequest| r.path.ends_with("/subscribed_apps");
    assert_eq!(env.sim.count_where(|r| r.batch_item && !is_subscription(r)), 120, "one validation item each");
    assert_eq!(env.sim.count_where(|r| r.batch_item && is_subscription(r)), 120, "one subscription read each");
    // Besides the batches, only the once-a-day expiry check of each user token (2 users here, and it
    // may still be under way): nothing per channel.
    assert!(env.sim.count_where(|r| r.path == "/debug_token") <= 2);
    assert_eq!(env.sim.count_where(|r| !r.batch_item && r.path != "/debug_token"), batches, "nothing else");
    assert!(batches as f64 / 120.0 <= 0.05);
    let items = env.sim.count_where(|r| r.batch_item && r.proof_valid == Some(true));
    assert_eq!(items, 240, "every item carries its own valid appsecret_proof");
}

#[tokio::test]
async fn failing_channels_are_refreshed_with_one_sweep_per_user() {
    let env = TestEnv::with(|c| c.authorization_error_threshold = 1).await;
    env.seed_healthy(85, 170_000).await;
    for (u, (user, kind)) in [("ua", "expired"), ("ub", "expired"), ("uc", "dead user")].into_iter().enumerate() {
        let user_token = env.sim.add_user(user);
        for i in 0..5 {
            let page = format!("27{u}{i:03}");
            env.sim.add_page(&page, "p");
            let token = env.sim.grant(user, &page);
            env.insert_channel(1, &page, &token, &user_token).await;
            env.sim.kill_page_token(&page, user, 190, Some(460), "password changed");
        }
        if kind == "dead user" {
            env.sim.kill_user_token(&user_token, 190, Some(460), "password changed");
        }
    }
    let worker = env.spawn_worker();
    cycle_and_settle(&env, 100).await;
    assert_eq!(env.status_count("healthy").await, 85);
    assert_eq!(env.status_count("refreshed").await, 10);
    assert_eq!(env.status_count("reauthorization_required").await, 5);
    assert_eq!(env.sim.count_where(|r| r.path == "/me/accounts"), 3, "one sweep per user token, not one per page");
    worker.stop().await.expect("stop");
}

#[tokio::test]
async fn a_failed_batch_call_is_retried_and_flags_nothing() {
    let env = TestEnv::new().await;
    env.seed_healthy(40, 180_000).await;
    env.sim.inject(Fault::once(FaultKind::ServerError, Matcher::PathContains("/".into())));
    let worker = env.spawn_worker();
    cycle_and_settle(&env, 40).await;
    subscription_reads(&env, 40).await;
    assert_eq!(env.status_count("healthy").await, 40);
    assert_eq!(
        env.sim.count_where(|r| r.path == "/" && !r.batch_item),
        3,
        "the failed call, its retry, and the day's read of the webhook subscriptions"
    );
    assert_eq!(env.sim.count_where(|r| r.batch_item && r.path.ends_with("/subscribed_apps")), 40);
    assert!(!env.redis_keys().await.iter().any(|k| k.contains("authorization")));
    worker.stop().await.expect("stop");
}

#[tokio::test]
async fn an_item_graph_did_not_answer_cleanly_goes_to_a_single_job() {
    let env = TestEnv::new().await;
    env.seed_healthy(10, 190_000).await;
    env.sim.inject(Fault::once(FaultKind::ServerError, Matcher::Page("190003".into())));
    let worker = env.spawn_worker();
    let started = Utc::now();
    producer::cycle::enqueue_cycle(&env.db, env.redis.clone(), &env.config, Reason::Cron).await.expect("cycle");
    // Healthy eventually, through its own single job after the batch.
    until(Duration::from_secs(10), &format!("all 10 channels healthy (cycle since {started})"), || async {
        env.status_count("healthy").await == 10
    })
    .await;
    assert_eq!(env.sim.count_where(|r| r.path == "/190003" && !r.batch_item), 1, "one single validation for that page");
    assert!(!env.redis_keys().await.iter().any(|k| k.contains("authorization")));
    worker.stop().await.expect("stop");
}

/// A batch that runs again (a crash before its ack, a worker loop restart, a retried store error)
/// counts each channel's confirmed failure once, as every job does.
#[tokio::test]
async fn a_batch_run_twice_counts_each_failure_once() {
    let env = TestEnv::new().await;
    let ch = dead_channel(&env, "195001").await;
    let job = BatchJob::new(vec![ch], Reason::Cron);
    let pipeline = env.pipeline();
    for run in 1..=2 {
        let out = pipeline.process_batch(&job).await.expect("stores");
        assert!(matches!(out.settled.as_slice(), [(_, Outcome::ConfirmedFailure { .. })]), "run {run}: {out:?}");
    }
    let flags = env.flags(ch).await;
    assert_eq!(flags.authorization_error_count, 1, "{flags:?}");
    assert!(!flags.reauthorization_required, "one confirmed failure is below the threshold of 2");
}

/// A batch and a single job for one channel never work on it at once: whichever comes second
/// finds the channel busy, so Graph sees one validation and the count goes up by one per round;
/// a channel the batch found busy is handed to a single job, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_and_a_single_job_never_work_on_one_channel_at_once() {
    let env = TestEnv::new().await;
    let ch = dead_channel(&env, "196001").await;
    env.sim.inject(Fault::new(FaultKind::Latency(Duration::from_millis(500)), Matcher::Any));
    let validations = || env.sim.count_where(|r| r.path == "/196001");

    // Round 1: the single job is inside Graph when the batch starts.
    let (p1, p2) = (env.pipeline(), env.pipeline());
    let single = RefreshJob::new(ch, Reason::SendFailure);
    let running = tokio::spawn(async move { p1.process(&single).await });
    graph_requests_past(&env, 0).await;
    let out = p2.process_batch(&BatchJob::new(vec![ch], Reason::Cron)).await.expect("stores");
    let outcome = running.await.expect("task").expect("stores");
    assert!(matches!(outcome, Outcome::ConfirmedFailure { .. }), "{outcome:?}");
    assert!(out.settled.is_empty() && out.healthy.is_empty(), "{out:?}");
    let [(handed, after)] = out.later.as_slice() else { panic!("the busy channel is handed on: {out:?}") };
    assert_eq!((handed.channel_id(), *after), (ch, CHANNEL_BUSY_WAIT));
    assert_eq!(env.flags(ch).await.authorization_error_count, 1);
    assert_eq!(validations(), 1, "one validation in round 1");

    // Round 2: the batch is inside Graph when the single job starts.
    let seen = env.sim.request_count();
    let p3 = env.pipeline();
    let batch = BatchJob::new(vec![ch], Reason::Cron);
    let running = tokio::spawn(async move { p3.process_batch(&batch).await });
    graph_requests_past(&env, seen).await;
    let outcome = p2.process(&RefreshJob::new(ch, Reason::SendFailure)).await.expect("stores");
    assert!(matches!(outcome, Outcome::Retry { next_attempt: 1, .. }), "busy: {outcome:?}");
    let out = running.await.expect("task").expect("stores");
    assert!(matches!(out.settled.as_slice(), [(_, Outcome::ConfirmedFailure { .. })]), "{out:?}");
    assert!(out.later.is_empty(), "{out:?}");
    assert_eq!(env.flags(ch).await.authorization_error_count, 2);
    assert_eq!(validations(), 2, "one validation in round 2");
}

/// A cycle writes one state upsert and one summary row per batch, no event row per channel that is
/// checked for the first time or stays healthy; a channel that was flagged is cleared in the same step, gets its
/// event row, and its `token.healthy` outbox row commits with its state. The chart counts both.
#[tokio::test]
async fn a_later_cycle_writes_a_summary_per_batch_and_rows_only_for_changes() {
    let env = TestEnv::with(|c| c.webhook_urls = vec!["http://127.0.0.1:9/hook".into()]).await;
    let ids = env.seed_healthy(120, 190_000).await;
    let worker = env.spawn_worker();
    cycle_and_settle(&env, 120).await;
    let events = |env: &TestEnv| {
        let db = env.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM fb_token_events WHERE step = 'validate'")
                .fetch_one(&db)
                .await
                .expect("db")
        }
    };
    assert_eq!(events(&env).await, 0, "a first check that finds a channel healthy is counted, not a row each");
    let first: i64 = sqlx::query_scalar("SELECT coalesce(sum(first_checks), 0)::int8 FROM fb_validation_batches")
        .fetch_one(&env.db)
        .await
        .expect("db");
    assert_eq!(first, 120, "the first cycle's channels, each counted once");
    // One channel was flagged meanwhile (a person's page, say, before it was fixed by hand).
    let flagged = ids[7];
    sqlx::query(
        "UPDATE fb_token_states SET status = 'reauthorization_required', token_valid = false WHERE channel_id = $1",
    )
    .bind(flagged as i32)
    .execute(&env.db)
    .await
    .expect("db");
    let keys = env.flag_keys();
    let _: () = redis::AsyncCommands::set(&mut env.redis.clone(), keys.reauthorization_required(flagged), "true")
        .await
        .expect("set");
    let _: () = redis::AsyncCommands::set(&mut env.redis.clone(), keys.authorization_error_count(flagged), 2)
        .await
        .expect("set");

    cycle_and_settle(&env, 120).await;
    worker.stop().await.expect("stop");
    assert_eq!(env.status_count("healthy").await, 120);
    assert_eq!(env.flags(flagged).await, Default::default(), "both keys cleared");
    assert_eq!(events(&env).await, 1, "the second cycle wrote a row for the one change only");
    let (rows, unchanged): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(sum(unchanged), 0)::int8 FROM fb_validation_batches")
            .fetch_one(&env.db)
            .await
            .expect("db");
    assert_eq!(unchanged, 119, "the second cycle's channels that stayed healthy");
    assert_eq!(rows, 6, "one row per batch (and account) and cycle: 3 batches of at most 50, twice");
    let outbox: Vec<String> =
        sqlx::query_scalar("SELECT body->>'event' FROM fb_webhook_deliveries WHERE body->>'channel_id' = $1")
            .bind(flagged.to_string())
            .fetch_all(&env.db)
            .await
            .expect("db");
    assert_eq!(outbox, vec!["token.healthy".to_owned()]);
    let chart = shared::store::hourly_outcomes(&env.db, 24, None).await.expect("chart");
    let healthy: i64 = chart.iter().filter(|h| h.outcome == "healthy").map(|h| h.count).sum();
    assert_eq!(healthy, 240, "two cycles of 120, whether or not a channel got an event row");
    let other_account = shared::store::hourly_outcomes(&env.db, 24, Some(&[999])).await.expect("chart");
    assert!(other_account.is_empty(), "{other_account:?}");
}
