//! The watcher of Chatwoot's own failure counter. Chatwoot's part is played as its Ruby does it:
//! `authorization_error!` is a plain `INCR` of `alfred:AUTHORIZATION_ERROR_COUNT:channel_facebook_page:ID`
//! (`Redis::Alfred.incr`), and `reauthorization_required?` is the flag key being present.

use std::time::Duration;

use redis::AsyncCommands;
use shared::{
    config::{Config, FlagStyle},
    metrics::Metrics,
    pipeline::Outcome,
    secret::Secret,
    watcher::{CounterWatcher, Seen},
};
use tests::{TestEnv, outage::ThrowawayRedis, wait::eventually};

fn chatwoot_style(c: &mut Config) {
    c.flag_style = FlagStyle::Chatwoot;
}

async fn on_redis(url: String) -> TestEnv {
    TestEnv::chatwoot(move |c| {
        chatwoot_style(c);
        c.redis_url = Secret::new(url);
    })
    .await
}

/// What Chatwoot's `authorization_error!` does to Redis.
async fn chatwoot_counts_a_failure(env: &TestEnv, channel: i64) -> i64 {
    env.redis.clone().incr(env.flag_keys().authorization_error_count(channel), 1).await.expect("INCR")
}

/// A page whose token died but whose user token still gives a new one.
async fn refreshable(env: &TestEnv, page: &str) -> i64 {
    let (ch, user, _) = env.healthy_channel(page).await;
    env.sim.kill_page_token(page, &user, 190, Some(463), "Error validating access token: Session has expired.");
    ch
}

/// A page nobody can fix without a person: both tokens dead.
async fn dead(env: &TestEnv, page: &str) -> i64 {
    let (ch, user, user_token) = env.healthy_channel(page).await;
    env.sim.kill_page_token(page, &user, 190, Some(460), "The session has been invalidated.");
    env.sim.kill_user_token(&user_token, 190, Some(460), "The session has been invalidated.");
    ch
}

async fn reports(env: &TestEnv, channel: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM fb_send_failures WHERE channel_id = $1")
        .bind(channel as i32)
        .fetch_one(&env.db)
        .await
        .expect("db")
}

async fn status(env: &TestEnv, channel: i64) -> Option<String> {
    shared::store::load_state(&env.db, channel).await.expect("db").map(|s| s.status.to_string())
}

async fn exists(env: &TestEnv, key: &str) -> bool {
    env.redis.clone().exists(key).await.expect("EXISTS")
}

/// One value of the producer's `/metrics`, 0 when absent.
async fn metric(base: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("body");
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
}

#[tokio::test]
async fn a_refreshable_page_is_fixed_and_both_keys_gone_before_a_second_failure() {
    let env = TestEnv::chatwoot(chatwoot_style).await;
    let ch = refreshable(&env, "7101").await;
    let old = env.stored_page_token(ch).await;
    let api = env.serve_api().await;
    let _worker = env.spawn_worker();

    assert_eq!(chatwoot_counts_a_failure(&env, ch).await, 1);
    eventually(Duration::from_secs(5), "the increment taken as a report", || async {
        (reports(&env, ch).await == 1).then_some(())
    })
    .await;
    eventually(Duration::from_secs(15), "the page refreshed", || async {
        (status(&env, ch).await.as_deref() == Some("refreshed")).then_some(())
    })
    .await;
    let keys = env.flag_keys();
    // The flags are cleared right after the state commits, so "refreshed" can be read a moment
    // before the count is gone.
    eventually(Duration::from_secs(2), "Chatwoot's count is gone", || async {
        (!exists(&env, &keys.authorization_error_count(ch)).await).then_some(())
    })
    .await;
    assert!(!exists(&env, &keys.reauthorization_required(ch)).await, "no flag was ever set");
    let new = env.stored_page_token(ch).await;
    assert_ne!(new, old);
    assert!(env.sim.is_token_valid_for_page("7101", &new));
    // Chatwoot's next failure starts from nothing again: far from its threshold of 2.
    assert_eq!(chatwoot_counts_a_failure(&env, ch).await, 1);
    api.shutdown().await.expect("producer stops");
}

#[tokio::test]
async fn a_dead_page_ends_at_count_two_with_the_flag_and_stops_there() {
    let env = TestEnv::chatwoot(chatwoot_style).await;
    let ch = dead(&env, "7201").await;
    let api = env.serve_api().await;
    let _worker = env.spawn_worker();

    chatwoot_counts_a_failure(&env, ch).await;
    eventually(Duration::from_secs(15), "the page flagged", || async {
        (status(&env, ch).await.as_deref() == Some("reauthorization_required")).then_some(())
    })
    .await;
    let keys = env.flag_keys();
    let mut redis = env.redis.clone();
    let count: Option<i64> = redis.get(keys.authorization_error_count(ch)).await.expect("GET");
    assert_eq!(count, Some(2), "Chatwoot's one and our confirmed one");
    let flag: Option<String> = redis.get(keys.reauthorization_required(ch)).await.expect("GET");
    assert!(flag.is_some_and(|v| !v.is_empty()), "present, as `reauthorization_required?` reads it");

    // Our own increment is not taken for Chatwoot's: more sweeps, and nothing more happens.
    let graph_calls = env.sim.request_count();
    let sweeps = metric(&api.base, "fb_token_watcher_sweeps_total").await;
    eventually(Duration::from_secs(10), "two more sweeps", || async {
        (metric(&api.base, "fb_token_watcher_sweeps_total").await >= sweeps + 2.0).then_some(())
    })
    .await;
    let count: Option<i64> = redis.get(keys.authorization_error_count(ch)).await.expect("GET");
    assert_eq!(count, Some(2));
    assert_eq!(reports(&env, ch).await, 1, "one report, for Chatwoot's one increment");
    assert_eq!(env.sim.request_count(), graph_calls, "no further Graph call");
    api.shutdown().await.expect("producer stops");
}

#[tokio::test]
async fn with_keyspace_notifications_on_an_increment_arrives_as_a_message() {
    let redis = ThrowawayRedis::start_with(&["--notify-keyspace-events", "K$g"]).await;
    let env = on_redis(redis.url()).await;
    let ch = refreshable(&env, "7301").await;
    let api = env.serve_api().await;
    let _worker = env.spawn_worker();
    // Subscribed, and its first sweep (for what came before the subscription) is done.
    eventually(Duration::from_secs(10), "the watcher subscribed", || async {
        let notified = metric(&api.base, "fb_token_watcher_mode{mode=\"notified\"}").await == 1.0;
        (notified && metric(&api.base, "fb_token_watcher_sweeps_total").await >= 1.0).then_some(())
    })
    .await;
    let sweeps = metric(&api.base, "fb_token_watcher_sweeps_total").await;

    chatwoot_counts_a_failure(&env, ch).await;
    eventually(Duration::from_secs(5), "the increment taken as a report", || async {
        (reports(&env, ch).await == 1).then_some(())
    })
    .await;
    assert!(metric(&api.base, "fb_token_watcher_events_total").await >= 1.0);
    assert_eq!(metric(&api.base, "fb_token_watcher_sweeps_total").await, sweeps, "heard, not swept");
    eventually(Duration::from_secs(15), "the page refreshed", || async {
        (status(&env, ch).await.as_deref() == Some("refreshed")).then_some(())
    })
    .await;
    // Cleared right after the state commits (see above).
    eventually(Duration::from_secs(2), "Chatwoot's count is gone", || async {
        (!exists(&env, &env.flag_keys().authorization_error_count(ch)).await).then_some(())
    })
    .await;
    api.shutdown().await.expect("producer stops");
}

/// Managed Redis often refuses `CONFIG`: the watcher cannot ask, so it sweeps.
#[tokio::test]
async fn without_notifications_or_config_the_watcher_sweeps() {
    let redis = ThrowawayRedis::start_with(&["--rename-command", "CONFIG", ""]).await;
    let env = on_redis(redis.url()).await;
    let ch = refreshable(&env, "7401").await;
    let api = env.serve_api().await;
    let _worker = env.spawn_worker();
    eventually(Duration::from_secs(10), "the watcher sweeping", || async {
        (metric(&api.base, "fb_token_watcher_mode{mode=\"swept\"}").await == 1.0).then_some(())
    })
    .await;

    chatwoot_counts_a_failure(&env, ch).await;
    eventually(Duration::from_secs(5), "the increment taken as a report", || async {
        (reports(&env, ch).await == 1).then_some(())
    })
    .await;
    assert_eq!(metric(&api.base, "fb_token_watcher_events_total").await, 0.0);
    eventually(Duration::from_secs(15), "the page refreshed", || async {
        (status(&env, ch).await.as_deref() == Some("refreshed")).then_some(())
    })
    .await;
    api.shutdown().await.expect("producer stops");
}

#[tokio::test]
async fn the_watcher_survives_a_redis_restart() {
    let mut redis = ThrowawayRedis::start_with(&["--notify-keyspace-events", "K$g"]).await;
    let env = on_redis(redis.url()).await;
    let ch = refreshable(&env, "7501").await;
    let api = env.serve_api().await;
    let _worker = env.spawn_worker();
    eventually(Duration::from_secs(10), "the watcher subscribed", || async {
        (metric(&api.base, "fb_token_watcher_mode{mode=\"notified\"}").await == 1.0).then_some(())
    })
    .await;

    redis.restart(Duration::from_millis(300)).await;
    // Chatwoot's client reconnects as ours does; its first try may meet the dead connection.
    let key = env.flag_keys().authorization_error_count(ch);
    eventually(Duration::from_secs(5), "Chatwoot's INCR after the restart", || async {
        env.redis.clone().incr::<_, _, i64>(&key, 1).await.ok()
    })
    .await;
    eventually(Duration::from_secs(10), "the increment taken as a report after the restart", || async {
        (reports(&env, ch).await == 1).then_some(())
    })
    .await;
    eventually(Duration::from_secs(20), "the page refreshed", || async {
        (status(&env, ch).await.as_deref() == Some("refreshed")).then_some(())
    })
    .await;
    api.shutdown().await.expect("producer stops");
}

#[tokio::test]
async fn two_producers_report_each_increment_once() {
    let env = TestEnv::chatwoot(chatwoot_style).await;
    let mut channels = Vec::new();
    for i in 0..10 {
        channels.push(refreshable(&env, &format!("76{i:02}")).await);
    }
    let (a, b) = (env.serve_api().await, env.serve_api().await);
    let _worker = env.spawn_worker();
    for &ch in &channels {
        chatwoot_counts_a_failure(&env, ch).await;
    }
    for &ch in &channels {
        eventually(Duration::from_secs(20), "every page refreshed", || async {
            (status(&env, ch).await.as_deref() == Some("refreshed")).then_some(())
        })
        .await;
    }
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_send_failures").fetch_one(&env.db).await.expect("db");
    assert_eq!(total, 10, "one report per increment, from one replica or the other");
    let (ma, mb) = (
        metric(&a.base, "fb_token_watcher_observations_total{outcome=\"enqueued\"}").await,
        metric(&b.base, "fb_token_watcher_observations_total{outcome=\"enqueued\"}").await,
    );
    assert_eq!(ma + mb, 10.0);
    let refreshes: i64 = sqlx::query_scalar("SELECT count(*) FROM fb_token_events WHERE step = 'refresh'")
        .fetch_one(&env.db)
        .await
        .expect("db");
    assert_eq!(refreshes, 10, "one refresh per page");
    a.shutdown().await.expect("producer stops");
    b.shutdown().await.expect("producer stops");
}

#[tokio::test]
async fn our_own_count_is_never_taken_for_chatwoots_and_each_increment_is_claimed_once() {
    let env = TestEnv::chatwoot(chatwoot_style).await;
    let ch = dead(&env, "7701").await;
    let outcome = env.pipeline().process(&shared::job::RefreshJob::new(ch, shared::job::Reason::Cron)).await;
    assert!(matches!(outcome, Ok(Outcome::ConfirmedFailure { .. })), "{outcome:?}");
    assert_eq!(env.flags(ch).await.authorization_error_count, 1, "our count");

    let (mut one, mut two) =
        (CounterWatcher::new(env.intake(), Metrics::default()), CounterWatcher::new(env.intake(), Metrics::default()));
    let pass = one.sweep_once().await.expect("sweep");
    assert_eq!(pass.channels, 1);
    assert_eq!(one.observe(ch).await.expect("observe"), None, "ours: nothing to report");
    assert_eq!(reports(&env, ch).await, 0);

    chatwoot_counts_a_failure(&env, ch).await;
    let seen = one.observe(ch).await.expect("observe");
    assert!(matches!(seen, Some(Seen::Reported(shared::intake::Decision::Enqueued { .. }))), "{seen:?}");
    assert_eq!(two.observe(ch).await.expect("observe"), None, "the other replica finds it claimed");
    two.sweep_once().await.expect("sweep");
    assert_eq!(reports(&env, ch).await, 1);
}

#[tokio::test]
async fn a_claim_whose_replica_died_is_taken_over() {
    let env = TestEnv::chatwoot(chatwoot_style).await;
    let ch = refreshable(&env, "7801").await;
    chatwoot_counts_a_failure(&env, ch).await;
    let keys = env.flag_keys();
    let mut redis = env.redis.clone();
    // A replica claimed the increment and died before reporting it; its lease has lapsed.
    let claimed = shared::watcher::claim::claim(&mut redis, &keys, ch).await.expect("claim");
    assert_eq!(claimed.map(|c| c.count), Some(1));
    let _: () = redis.zadd(keys.counter_inflight(), ch, 0).await.expect("ZADD");

    let mut survivor = CounterWatcher::new(env.intake(), Metrics::default());
    survivor.sweep_once().await.expect("sweep");
    assert_eq!(reports(&env, ch).await, 1, "reported by the survivor");
    let left: i64 = redis.zcard(keys.counter_inflight()).await.expect("ZCARD");
    assert_eq!(left, 0);
}

#[tokio::test]
async fn a_failure_of_a_token_already_replaced_is_taken_back() {
    let env = TestEnv::chatwoot(chatwoot_style).await;
    let (ch, _, _) = env.healthy_channel("7901").await;
    sqlx::query("INSERT INTO fb_token_states (channel_id, status, last_refreshed_at) VALUES ($1, 'refreshed', now())")
        .bind(ch as i32)
        .execute(&env.db)
        .await
        .expect("db");
    chatwoot_counts_a_failure(&env, ch).await;
    let watcher = CounterWatcher::new(env.intake(), Metrics::default());
    assert_eq!(watcher.observe(ch).await.expect("observe"), Some(Seen::Forgotten));
    assert!(!exists(&env, &env.flag_keys().authorization_error_count(ch)).await, "Chatwoot's count taken back");
    assert_eq!(env.queued_jobs().await, 0, "no refresh for a token already replaced");
}

#[tokio::test]
async fn chatwoots_inbox_cache_key_is_stamped_when_a_flag_is_set_and_cleared() {
    let env = TestEnv::chatwoot(chatwoot_style).await;
    let ch = dead(&env, "8001").await;
    let cache_key = env.flag_keys().inbox_cache_key(1).expect("chatwoot style");
    let pipeline = env.pipeline();
    let run = |reason| shared::job::RefreshJob::new(ch, reason);
    let mut redis = env.redis.clone();

    pipeline.process(&run(shared::job::Reason::Cron)).await.expect("first failure");
    assert!(!exists(&env, &cache_key).await, "below the threshold no flag changed");
    pipeline.process(&run(shared::job::Reason::Cron)).await.expect("second failure");
    assert!(env.flags(ch).await.reauthorization_required);
    let stamped: i64 = redis.get(&cache_key).await.expect("GET");
    let now = chrono::Utc::now().timestamp();
    assert!((now - 5..=now + 5).contains(&stamped), "{stamped} is the current Unix time ({now})");
    let ttl: i64 = redis.ttl(&cache_key).await.expect("TTL");
    assert!((1..=7 * 86_400).contains(&ttl), "expires as Chatwoot's own writes do: {ttl}");

    // A person reconnects the page (new user token): the next check clears the flag, and says so.
    let _: () = redis.del(&cache_key).await.expect("DEL");
    let user_token = env.sim.add_user("u8001-back");
    env.sim.grant("u8001-back", "8001");
    sqlx::query("UPDATE channel_facebook_pages SET user_access_token = $1 WHERE id = $2")
        .bind(&user_token)
        .bind(ch as i32)
        .execute(&env.db)
        .await
        .expect("db");
    assert_eq!(pipeline.process(&run(shared::job::Reason::Cron)).await.expect("refresh"), Outcome::Refreshed);
    assert!(!env.flags(ch).await.reauthorization_required);
    assert!(exists(&env, &cache_key).await, "stamped on clear");

    // A healthy check with no flag to clear leaves Chatwoot's cache alone.
    let _: () = redis.del(&cache_key).await.expect("DEL");
    assert_eq!(pipeline.process(&run(shared::job::Reason::Cron)).await.expect("check"), Outcome::Healthy);
    assert!(!exists(&env, &cache_key).await);
}
