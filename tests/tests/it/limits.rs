//! Waits Graph announces are capped at RATE_LIMIT_MAX_WAIT_SECS and never stop a worker; a page's
//! announcement pauses that page, the app's limit pauses the app for 60 s; `?check=true` and batch
//! answers pause like single calls do.

use std::time::Duration;

use redis::AsyncCommands;
use shared::{
    graph::ErrorKind,
    job::{BatchJob, Reason, RefreshJob},
    pipeline::Outcome,
};
use tests::TestEnv;

const CAP: Duration = Duration::from_secs(600);
/// Minutes: `Utc::now() + that` overflows chrono, and Redis still accepts it as a PSETEX.
const HUGE_MINUTES: u64 = 200_000_000_000;

async fn env_with_cap() -> TestEnv {
    TestEnv::with(|c| {
        c.rate_limit_max_wait = CAP;
        c.rate_limit_usage_threshold = 90;
    })
    .await
}

/// Milliseconds left on the page's pause key, and on the app's (-2: no key).
async fn pause_ttls(env: &TestEnv, page_id: &str) -> (i64, i64) {
    let keys = env.pipeline().keys;
    let mut redis = env.redis.clone();
    let page: i64 = redis.pttl(keys.pause_page(page_id)).await.expect("pttl");
    let app: i64 = redis.pttl(keys.pause_app()).await.expect("pttl");
    (page, app)
}

fn within(ttl_ms: i64, max: Duration) -> bool {
    ttl_ms > 0 && ttl_ms as u128 <= max.as_millis()
}

/// The single job runs in a task of its own, so a panic shows up as a failed join instead of
/// ending the test binary's thread without an answer.
async fn process_in_task(env: &TestEnv, channel: i64) -> Outcome {
    let pipeline = env.pipeline();
    let job = RefreshJob::new(channel, Reason::Cron);
    tokio::spawn(async move { pipeline.process(&job).await })
        .await
        .expect("no panic on a huge announced wait")
        .expect("stores reachable")
}

#[tokio::test]
async fn a_huge_announced_wait_pauses_the_page_for_at_most_the_cap_without_panicking() {
    let env = env_with_cap().await;
    let (ch, _, _) = env.healthy_channel("91001").await;
    env.sim.rate_limit_page("91001", 32, Some(HUGE_MINUTES));
    let outcome = process_in_task(&env, ch).await;
    let Outcome::Retry { error, after, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(after, CAP);
    let (page, app) = pause_ttls(&env, "91001").await;
    assert!(within(page, CAP), "page pause {page} ms");
    assert_eq!(app, -2, "a page's announcement pauses that page only");
    let state = shared::store::load_state(&env.db, ch).await.expect("db").expect("state");
    let next = state.next_attempt_at.expect("next attempt");
    assert!(next <= chrono::Utc::now() + CAP, "{next}");

    // The next job meets the pause: it waits, capped too, without calling Graph.
    env.sim.reset_log();
    let outcome = process_in_task(&env, ch).await;
    assert!(matches!(outcome, Outcome::Retry { after, .. } if after <= CAP), "{outcome:?}");
    assert_eq!(env.sim.request_count(), 0);
}

#[tokio::test]
async fn a_pause_left_by_an_uncapped_version_is_waited_out_at_most_the_cap() {
    let env = env_with_cap().await;
    let (ch, _, _) = env.healthy_channel("91101").await;
    // What the previous version wrote for a huge announcement: a key living ~317 years.
    let key = env.pipeline().keys.pause_page("91101");
    let _: () = env.redis.clone().pset_ex(&key, "1", 10_000_000_000_000u64).await.expect("psetex");
    let outcome = process_in_task(&env, ch).await;
    assert!(matches!(outcome, Outcome::Retry { after, .. } if after == CAP), "{outcome:?}");
    let batch = env.pipeline().process_batch(&BatchJob::new(vec![ch], Reason::Cron)).await.expect("stores");
    assert!(matches!(&batch.settled[..], [(_, Outcome::Retry { after, .. })] if *after == CAP), "{batch:?}");
    assert_eq!(env.sim.request_count(), 0);
}

#[tokio::test]
async fn a_huge_wait_on_a_batch_item_or_a_successful_answer_is_capped() {
    let env = env_with_cap().await;
    let (a, _, _) = env.healthy_channel("91201").await;
    let (b, _, _) = env.healthy_channel("91202").await;
    env.sim.rate_limit_page("91201", 80_001, Some(HUGE_MINUTES));
    // A success at 95 % announcing the longest wait a u64 can say.
    env.sim.set_page_usage("91202", Some((95, Some(u64::MAX))));
    let pipeline = env.pipeline();
    let job = BatchJob::new(vec![a, b], Reason::Cron);
    let out = tokio::spawn(async move { pipeline.process_batch(&job).await })
        .await
        .expect("no panic on a huge announced wait")
        .expect("stores reachable");
    assert_eq!(out.healthy, vec![b]);
    assert!(matches!(&out.settled[..], [(_, Outcome::Retry { after, .. })] if *after == CAP), "{out:?}");
    let (pa, app) = pause_ttls(&env, "91201").await;
    let (pb, _) = pause_ttls(&env, "91202").await;
    assert!(within(pa, CAP) && within(pb, CAP), "page pauses {pa} / {pb} ms");
    assert_eq!(app, -2);
}

#[tokio::test]
async fn app_usage_at_the_threshold_pauses_the_app_for_sixty_seconds_whatever_a_page_announced() {
    let env = env_with_cap().await;
    let (ch, _, _) = env.healthy_channel("91301").await;
    env.sim.set_usage_headers(Some(95));
    // The page is far from its limit but names a long wait: not the app's business.
    env.sim.set_page_usage("91301", Some((10, Some(100_000))));
    assert_eq!(process_in_task(&env, ch).await, Outcome::Healthy);
    let (page, app) = pause_ttls(&env, "91301").await;
    assert!(within(app, Duration::from_secs(60)), "app pause {app} ms");
    assert_eq!(page, -2, "the page is below the threshold");
}

#[tokio::test]
async fn an_app_level_limit_pauses_the_app_for_sixty_seconds() {
    let env = env_with_cap().await;
    let (ch, _, _) = env.healthy_channel("91401").await;
    env.sim.rate_limit_app(false);
    let outcome = process_in_task(&env, ch).await;
    assert!(matches!(&outcome, Outcome::Retry { error, .. } if error.kind == ErrorKind::RateLimited), "{outcome:?}");
    let (page, app) = pause_ttls(&env, "91401").await;
    assert!(within(app, Duration::from_secs(60)), "app pause {app} ms");
    assert_eq!(page, -2);
}

#[tokio::test]
async fn check_true_against_a_rate_limited_page_calls_graph_once_and_pauses_it() {
    let env = env_with_cap().await;
    let (ch, _, _) = env.healthy_channel("92001").await;
    env.sim.rate_limit_page("92001", 32, Some(5));
    let pipeline = env.pipeline();
    for _ in 0..2 {
        let answer = pipeline.validate_only(&RefreshJob::new(ch, Reason::Manual)).await.expect("stores");
        let error = answer.expect("channel exists").expect_err("rate limited");
        assert_eq!(error.kind, ErrorKind::RateLimited);
    }
    assert_eq!(env.sim.request_count(), 1, "the second check met the pause");
    let (page, app) = pause_ttls(&env, "92001").await;
    assert!(page > 240_000 && within(page, Duration::from_secs(300)), "page pause {page} ms");
    assert_eq!(app, -2);
    // A worker job meets the same pause.
    assert!(matches!(process_in_task(&env, ch).await, Outcome::Retry { .. }));
    assert_eq!(env.sim.request_count(), 1);
}

#[tokio::test]
async fn check_true_at_the_usage_threshold_pauses_the_page() {
    let env = env_with_cap().await;
    let (ch, _, _) = env.healthy_channel("92101").await;
    env.sim.set_page_usage("92101", Some((95, Some(2))));
    let answer = env.pipeline().validate_only(&RefreshJob::new(ch, Reason::Manual)).await.expect("stores");
    assert_eq!(answer, Some(Ok(())));
    let (page, app) = pause_ttls(&env, "92101").await;
    assert!(page > 100_000 && within(page, Duration::from_secs(120)), "page pause {page} ms");
    assert_eq!(app, -2);
}

#[tokio::test]
async fn a_batch_with_usage_headers_at_95_percent_sets_the_pause_keys() {
    let env = env_with_cap().await;
    let (a, _, _) = env.healthy_channel("93001").await;
    let (b, _, _) = env.healthy_channel("93002").await;
    env.sim.set_page_usage("93002", Some((95, Some(3))));
    let out = env.pipeline().process_batch(&BatchJob::new(vec![a, b], Reason::Cron)).await.expect("stores");
    assert_eq!(out.healthy, vec![a, b], "the calls themselves succeeded");
    let (pa, app) = pause_ttls(&env, "93001").await;
    let (pb, _) = pause_ttls(&env, "93002").await;
    assert_eq!((pa, app), (-2, -2), "93001 is below the threshold, and so is the app");
    assert!(pb > 170_000 && within(pb, Duration::from_secs(180)), "page pause {pb} ms");

    env.sim.set_usage_headers(Some(95));
    env.pipeline().process_batch(&BatchJob::new(vec![a], Reason::Cron)).await.expect("stores");
    let (_, app) = pause_ttls(&env, "93001").await;
    assert!(within(app, Duration::from_secs(60)), "app pause {app} ms");
}
