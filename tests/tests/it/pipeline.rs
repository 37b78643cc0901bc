//! The one-job pipeline, called directly.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use shared::{
    config::FlagStyle,
    encryption::Codec,
    graph::ErrorKind,
    job::{Reason, RefreshJob},
    pipeline::Outcome,
    store::{self, TokenWrite},
};
use simulator::{Fault, FaultKind, Matcher};
use tests::{TestEnv, logs};

async fn run(env: &TestEnv, channel: i64) -> Outcome {
    env.pipeline().process(&RefreshJob::new(channel, Reason::Cron)).await.expect("stores reachable")
}

async fn preset_count(env: &TestEnv, channel: i64, n: i64) {
    let _: () = env.redis.clone().set(env.flag_keys().authorization_error_count(channel), n).await.expect("set");
}

#[tokio::test]
async fn healthy_token_is_validated_and_clears_flags() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("1001").await;
    preset_count(&env, ch, 1).await;
    assert_eq!(run(&env, ch).await, Outcome::Healthy);
    assert_eq!(env.flags(ch).await, Default::default());
    let state = store::load_state(&env.db, ch).await.expect("db").expect("state row");
    assert_eq!((state.status.as_str(), state.token_valid), ("healthy", Some(true)));
    assert!(state.last_checked_at.is_some());
    let events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM fb_token_events WHERE channel_id = $1 AND step = 'validate' AND outcome = 'ok'",
    )
    .bind(ch as i32)
    .fetch_one(&env.db)
    .await
    .expect("db");
    assert_eq!(events, 1);
    assert_eq!(env.sim.request_count(), 1, "one validation call, no refresh");
}

#[tokio::test]
async fn expired_page_token_is_refreshed_from_the_first_accounts_page() {
    let env = TestEnv::new().await;
    let (ch, user, _) = env.healthy_channel("2001").await;
    env.sim.kill_page_token("2001", &user, 190, Some(463), "Error validating access token: Session has expired.");
    preset_count(&env, ch, 1).await;
    let (captured, _guard) = logs::capture();
    assert_eq!(run(&env, ch).await, Outcome::Refreshed);
    let stored = env.stored_page_token(ch).await;
    assert_eq!(Some(stored.clone()), env.sim.page_token("2001", &user));
    assert!(env.sim.is_token_valid_for_page("2001", &stored));
    assert_eq!(env.flags(ch).await, Default::default(), "success deletes both keys");
    let text = captured.text();
    assert!(
        text.contains(
            "Facebook token validation failed for page 2001: Error validating access token: Session has expired."
        ),
        "{text}"
    );
    assert!(text.contains("Successfully refreshed Facebook token for page 2001"), "{text}");
    let state = store::load_state(&env.db, ch).await.expect("db").expect("row");
    assert_eq!(state.status, "refreshed");
    assert!(state.last_refreshed_at.is_some());
}

#[tokio::test]
async fn page_on_the_second_accounts_page_is_found() {
    let env = TestEnv::new().await;
    let user_token = env.sim.add_user("u-many");
    let mut target = (0, String::new());
    // Past the first page of 100 (the client asks for Graph's largest page).
    for i in 0..130 {
        let page = format!("{}", 3000 + i);
        env.sim.add_page(&page, "p");
        let token = env.sim.grant("u-many", &page);
        if i == 127 {
            target = (env.insert_channel(1, &page, &token, &user_token).await, page);
        }
    }
    let (ch, page) = target;
    env.sim.kill_page_token(&page, "u-many", 190, Some(460), "password changed");
    env.sim.reset_log();
    assert_eq!(run(&env, ch).await, Outcome::Refreshed);
    assert_eq!(env.sim.count_where(|r| r.path == "/me/accounts"), 2, "followed paging.next once");
    assert_eq!(Some(env.stored_page_token(ch).await), env.sim.page_token(&page, "u-many"));
}

#[tokio::test]
async fn dead_user_token_flags_at_the_threshold_with_the_exact_count() {
    let env = TestEnv::new().await;
    let (ch, user, user_token) = env.healthy_channel("4001").await;
    env.sim.kill_page_token("4001", &user, 190, Some(460), "password changed");
    env.sim.kill_user_token(&user_token, 190, Some(460), "password changed");
    let (captured, _guard) = logs::capture();

    let first = run(&env, ch).await;
    let Outcome::ConfirmedFailure { counted, error, recheck_after } = first else { panic!("{first:?}") };
    assert_eq!((counted.count, counted.flagged), (1, false));
    assert_eq!(error.kind, ErrorKind::Auth);
    assert!(recheck_after.is_some(), "below the threshold a re-check is scheduled");
    assert_eq!(env.flags(ch).await.authorization_error_count, 1);
    assert!(!env.flags(ch).await.reauthorization_required);

    // The same job run again (a crash before its ack) does not count twice.
    let job = RefreshJob::new(ch, Reason::Cron);
    let again = env.pipeline().process(&job).await.expect("stores");
    let again2 = env.pipeline().process(&job).await.expect("stores");
    let (Outcome::ConfirmedFailure { counted: c1, .. }, Outcome::ConfirmedFailure { counted: c2, .. }) =
        (again, again2)
    else {
        panic!()
    };
    assert_eq!((c1.count, c1.flagged, c2.count, c2.newly_counted), (2, true, 2, false));

    let flags = env.flags(ch).await;
    assert!(flags.reauthorization_required);
    assert_eq!(flags.authorization_error_count, 2);
    let raw: String = env.redis.clone().get(env.flag_keys().reauthorization_required(ch)).await.expect("flag");
    assert_eq!(raw, "true");
    let state = store::load_state(&env.db, ch).await.expect("db").expect("row");
    assert_eq!(
        (state.status.as_str(), state.token_valid, state.consecutive_failures),
        ("reauthorization_required", Some(false), 2)
    );
    assert_eq!(state.last_error_code, Some(190));
    assert!(captured.text().contains("Failed to refresh Facebook token for page 4001"));

    // A later success clears both keys.
    env.sim.clear_faults();
    let new_user_token = env.sim.add_user("u-back");
    env.sim.grant("u-back", "4001");
    sqlx::query("UPDATE channel_facebook_pages SET user_access_token = $1 WHERE id = $2")
        .bind(&new_user_token)
        .bind(ch as i32)
        .execute(&env.db)
        .await
        .expect("db");
    assert_eq!(run(&env, ch).await, Outcome::Refreshed);
    assert_eq!(env.flags(ch).await, Default::default());
}

#[tokio::test]
async fn page_missing_from_the_users_pages_is_a_confirmed_failure() {
    let env = TestEnv::new().await;
    let (ch, user, _) = env.healthy_channel("5001").await;
    env.sim.revoke_role(&user, "5001");
    let outcome = run(&env, ch).await;
    let Outcome::ConfirmedFailure { counted, error, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(counted.count, 1);
    assert_eq!(error.kind, ErrorKind::NotFound);
    assert!(error.message.contains("not among the user's pages"), "{}", error.message);
}

#[tokio::test]
async fn unusual_190_message_still_counts_as_auth() {
    let env = TestEnv::new().await;
    let (ch, user, user_token) = env.healthy_channel("6001").await;
    env.sim.kill_page_token("6001", &user, 190, None, "Das Zugriffstoken ist ungültig (ein Text, den niemand kennt)");
    env.sim.kill_user_token(&user_token, 190, None, "¯\\_(ツ)_/¯");
    let outcome = run(&env, ch).await;
    let Outcome::ConfirmedFailure { error, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!((error.kind, error.code), (ErrorKind::Auth, Some(190)));
    assert_eq!(env.flags(ch).await.authorization_error_count, 1);
}

/// Rate limits, 5xx, HTML and timeouts are never evidence against the token.
#[tokio::test]
async fn non_auth_failures_leave_both_keys_untouched() {
    let env = TestEnv::with(|c| c.fb_http_timeout = Duration::from_secs(1)).await;
    let faults: Vec<(&str, Fault)> = vec![
        ("server error", Fault::new(FaultKind::ServerError, Matcher::Any)),
        ("unavailable", Fault::new(FaultKind::ServiceUnavailable, Matcher::Any)),
        ("html", Fault::new(FaultKind::Html, Matcher::Any)),
        ("not json", Fault::new(FaultKind::NotJson, Matcher::Any)),
        ("dropped", Fault::new(FaultKind::Drop, Matcher::Any)),
        ("hang", Fault::new(FaultKind::Hang, Matcher::Any)),
        ("429", Fault::new(FaultKind::Error { http_status: 429, body: json!({}) }, Matcher::Any)),
        ("huge body", Fault::new(FaultKind::Huge(6 * 1024 * 1024), Matcher::Any)),
    ];
    for (i, (name, fault)) in faults.into_iter().enumerate() {
        let page = format!("{}", 7000 + i);
        let (ch, _, _) = env.healthy_channel(&page).await;
        preset_count(&env, ch, 1).await;
        env.sim.inject(fault);
        let outcome = run(&env, ch).await;
        env.sim.clear_faults();
        assert!(matches!(outcome, Outcome::Retry { .. }), "{name}: {outcome:?}");
        let flags = env.flags(ch).await;
        assert_eq!((flags.authorization_error_count, flags.reauthorization_required), (1, false), "{name}");
        let state = store::load_state(&env.db, ch).await.expect("db").expect("row");
        assert_eq!(state.status, "retrying", "{name}");
        assert!(state.next_attempt_at.is_some(), "{name}");
    }
}

#[tokio::test]
async fn rate_limited_page_is_paused_for_the_announced_time() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("8001").await;
    env.sim.rate_limit_page("8001", 32, Some(3));
    let outcome = run(&env, ch).await;
    let Outcome::Retry { error, after, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(after, Duration::from_secs(180));
    assert_eq!(env.flags(ch).await, Default::default());
    // While paused, no call reaches Graph.
    env.sim.reset_log();
    let outcome = run(&env, ch).await;
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
    assert_eq!(env.sim.request_count(), 0);
}

#[tokio::test]
async fn chatwoot_key_style_writes_alfred_keys() {
    let env = TestEnv::with(TestEnv::with_flag_style(FlagStyle::Chatwoot)).await;
    let (ch, user, user_token) = env.healthy_channel("9001").await;
    env.sim.kill_page_token("9001", &user, 190, Some(460), "x");
    env.sim.kill_user_token(&user_token, 190, Some(460), "x");
    run(&env, ch).await;
    run(&env, ch).await;
    let p = &env.config.redis_key_prefix;
    let keys = env.redis_keys().await;
    assert!(keys.contains(&format!("{p}alfred:AUTHORIZATION_ERROR_COUNT:channel_facebook_page:{ch}")), "{keys:?}");
    assert!(keys.contains(&format!("{p}alfred:REAUTHORIZATION_REQUIRED:channel_facebook_page:{ch}")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains("reauthorization_required:")), "{keys:?}");
}

#[tokio::test]
async fn every_call_carries_a_correct_appsecret_proof() {
    let env = TestEnv::new().await;
    let (ch, user, _) = env.healthy_channel("10001").await;
    env.sim.kill_page_token("10001", &user, 190, Some(463), "expired");
    assert_eq!(run(&env, ch).await, Outcome::Refreshed);
    let requests = env.sim.requests();
    assert!(requests.len() >= 3, "{requests:?}");
    assert!(requests.iter().all(|r| r.proof_valid == Some(true)), "{requests:?}");
}

#[tokio::test]
async fn without_the_app_secret_graph_refuses_and_nothing_is_flagged() {
    let env = TestEnv::with(|c| c.fb_app_secret = None).await;
    let (ch, _, _) = env.healthy_channel("11001").await;
    let outcome = run(&env, ch).await;
    let Outcome::Retry { error, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!(error.kind, ErrorKind::Invalid);
    assert_eq!(env.flags(ch).await, Default::default());
}

#[tokio::test]
async fn an_older_write_cannot_overwrite_a_newer_token() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("12001").await;
    let early =
        store::load_channel(&env.db, &Codec::plaintext(), ch).await.expect("db").expect("row").expect("readable");
    let late =
        store::load_channel(&env.db, &Codec::plaintext(), ch).await.expect("db").expect("row").expect("readable");
    assert_eq!(
        store::write_page_token(&env.db, &Codec::plaintext(), &late, &"NEWER".into()).await.expect("db"),
        TokenWrite::Written
    );
    assert_eq!(
        store::write_page_token(&env.db, &Codec::plaintext(), &early, &"OLDER".into()).await.expect("db"),
        TokenWrite::Superseded
    );
    assert_eq!(env.stored_page_token(ch).await, "NEWER");
    // Two writes from the same read: only the first lands, even within one clock tick.
    let read =
        store::load_channel(&env.db, &Codec::plaintext(), ch).await.expect("db").expect("row").expect("readable");
    assert_eq!(
        store::write_page_token(&env.db, &Codec::plaintext(), &read, &"A".into()).await.expect("db"),
        TokenWrite::Written
    );
    assert_eq!(
        store::write_page_token(&env.db, &Codec::plaintext(), &read, &"B".into()).await.expect("db"),
        TokenWrite::Superseded
    );
    assert_eq!(env.stored_page_token(ch).await, "A");
}

#[tokio::test]
async fn missing_channel_is_dropped_without_calls() {
    let env = TestEnv::new().await;
    assert_eq!(run(&env, 424242).await, Outcome::ChannelMissing);
    assert_eq!(env.sim.request_count(), 0);
}

#[tokio::test]
async fn no_token_reaches_the_logs() {
    let env = TestEnv::with(|c| c.fb_http_timeout = Duration::from_secs(1)).await;
    let (captured, _guard) = logs::capture();
    let (a, ua, _) = env.healthy_channel("13001").await;
    let (b, ub, tb) = env.healthy_channel("13002").await;
    let (c, _, _) = env.healthy_channel("13003").await;
    env.sim.kill_page_token("13001", &ua, 190, Some(463), "expired");
    env.sim.kill_page_token("13002", &ub, 190, Some(460), "password");
    env.sim.kill_user_token(&tb, 190, Some(460), "password");
    let mut tokens =
        vec![env.stored_page_token(a).await, env.stored_page_token(b).await, env.stored_page_token(c).await, tb];
    run(&env, a).await;
    run(&env, b).await;
    env.sim.inject(Fault::new(FaultKind::Drop, Matcher::Any));
    run(&env, c).await;
    tokens.push(env.stored_page_token(a).await);
    let text = captured.text();
    assert!(text.contains("Successfully refreshed Facebook token for page 13001"), "{text}");
    for t in tokens {
        assert!(!text.contains(&t), "token leaked into logs: {text}");
    }
}

/// Two jobs for one channel at the same moment: one works, the other comes back later; Graph sees
/// one validation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_jobs_never_work_on_one_channel_at_once() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("14001").await;
    env.sim.inject(Fault::new(FaultKind::Latency(Duration::from_millis(500)), Matcher::Any));
    let (p1, p2) = (env.pipeline(), env.pipeline());
    let (j1, j2) = (RefreshJob::new(ch, Reason::Cron), RefreshJob::new(ch, Reason::SendFailure));
    let (a, b) = tokio::join!(p1.process(&j1), p2.process(&j2));
    let outcomes = [a.expect("stores"), b.expect("stores")];
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Healthy).count(), 1, "{outcomes:?}");
    let busy = outcomes.iter().find(|o| **o != Outcome::Healthy).expect("one busy");
    assert!(matches!(busy, Outcome::Retry { next_attempt: 1, .. }), "{busy:?}");
    assert_eq!(env.sim.request_count(), 1);
    // The lock is released afterwards.
    env.sim.clear_faults();
    assert_eq!(run(&env, ch).await, Outcome::Healthy);
}

/// The token write guard under a race: twenty writers from the same read, one wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_write_guard_holds_under_a_race() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("15001").await;
    let read =
        store::load_channel(&env.db, &Codec::plaintext(), ch).await.expect("db").expect("row").expect("readable");
    let writes = (0..20).map(|i| {
        let (db, read) = (env.db.clone(), read.clone());
        tokio::spawn(
            async move { store::write_page_token(&db, &Codec::plaintext(), &read, &format!("T{i}").into()).await },
        )
    });
    let results: Vec<TokenWrite> =
        futures::future::join_all(writes).await.into_iter().map(|r| r.expect("task").expect("db")).collect();
    assert_eq!(results.iter().filter(|w| **w == TokenWrite::Written).count(), 1, "{results:?}");
    let winner = results.iter().position(|w| *w == TokenWrite::Written).expect("winner");
    assert_eq!(env.stored_page_token(ch).await, format!("T{winner}"));
}

/// Usage headers at the threshold pause calls before Graph starts refusing them, app-wide for
/// `X-App-Usage`; below it nothing pauses.
#[tokio::test]
async fn usage_at_the_threshold_pauses_the_app() {
    let env = TestEnv::with(|c| c.rate_limit_usage_threshold = 90).await;
    let (a, _, _) = env.healthy_channel("16001").await;
    let (b, _, _) = env.healthy_channel("16002").await;
    env.sim.set_usage_headers(Some(85));
    assert_eq!(run(&env, a).await, Outcome::Healthy);
    assert_eq!(run(&env, b).await, Outcome::Healthy, "85% is below the threshold");
    env.sim.set_usage_headers(Some(95));
    assert_eq!(run(&env, a).await, Outcome::Healthy, "the call itself succeeded");
    env.sim.reset_log();
    let outcome = run(&env, b).await;
    let Outcome::Retry { error, after, next_attempt } = outcome else { panic!("{outcome:?}") };
    assert_eq!((error.kind, next_attempt), (ErrorKind::RateLimited, 1), "a pause does not use an attempt");
    assert!(after <= Duration::from_secs(60) && after > Duration::from_secs(50), "{after:?}");
    assert_eq!(env.sim.request_count(), 0, "no call while paused");
    assert_eq!(env.flags(b).await, Default::default());
}

/// A channel whose page and user tokens are both dead, Graph answering each call after 500 ms.
async fn slow_dead_channel(env: &TestEnv, page: &str) -> i64 {
    let (ch, user, user_token) = env.healthy_channel(page).await;
    env.sim.kill_page_token(page, &user, 190, Some(460), "password changed");
    env.sim.kill_user_token(&user_token, 190, Some(460), "password changed");
    env.sim.inject(Fault::new(FaultKind::Latency(Duration::from_millis(500)), Matcher::Any));
    ch
}

/// Waits (bounded) until Graph has received its first request.
async fn graph_called(env: &TestEnv) {
    tests::wait::until(Duration::from_secs(2), "Graph called", || async { env.sim.request_count() > 0 }).await;
}

/// A job whose channel lock was taken from it mid-job (a slow call outlived it, another job has
/// the channel now) decides nothing: it counts no failure and runs again shortly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_lost_its_lock_counts_nothing() {
    let env = TestEnv::new().await;
    let ch = slow_dead_channel(&env, "17001").await;
    let pipeline = env.pipeline();
    let job = RefreshJob::new(ch, Reason::Cron);
    let running = tokio::spawn(async move { pipeline.process(&job).await });
    graph_called(&env).await;
    let lock = shared::keys::RedisKeys::of(&env.config).lock(ch);
    let _: () = env.redis.clone().set(&lock, "another-job").await.expect("set");
    let outcome = running.await.expect("task").expect("stores");
    assert!(matches!(outcome, Outcome::Retry { next_attempt: 1, .. }), "{outcome:?}");
    assert_eq!(env.flags(ch).await, Default::default(), "nothing counted");
    let holder: Option<String> = env.redis.clone().get(&lock).await.expect("get");
    assert_eq!(holder.as_deref(), Some("another-job"), "the other job's lock is left alone");
}

/// A person reconnects while a job is finding the old token dead: the failure was the old token's,
/// so nothing is counted and the channel is checked again with the new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_of_a_token_replaced_meanwhile_is_not_counted() {
    let env = TestEnv::new().await;
    let ch = slow_dead_channel(&env, "17002").await;
    let pipeline = env.pipeline();
    let job = RefreshJob::new(ch, Reason::Cron);
    let running = tokio::spawn(async move { pipeline.process(&job).await });
    graph_called(&env).await;
    sqlx::query(
        "UPDATE channel_facebook_pages SET page_access_token = 'reconnected', updated_at = timezone('utc', now()) + interval '1 second' WHERE id = $1",
    )
    .bind(ch as i32)
    .execute(&env.db)
    .await
    .expect("reconnect");
    let outcome = running.await.expect("task").expect("stores");
    assert_eq!(outcome, Outcome::Superseded);
    assert_eq!(env.flags(ch).await, Default::default(), "nothing counted");
}

/// Reports about many pages of one user token cost one `/me/accounts` sweep between them; and
/// an answer shared from another job's sweep is never the evidence for a count: the page whose
/// shared answer names a dead token sweeps again itself, and is refreshed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sweep_serves_the_pages_of_one_user_and_never_counts_a_failure_alone() {
    let env = TestEnv::new().await;
    let user_token = env.sim.add_user("u-sweep");
    let mut channels = Vec::new();
    for i in 0..10 {
        let page = format!("9910{i:02}");
        env.sim.add_page(&page, "p");
        let token = env.sim.grant("u-sweep", &page);
        channels.push((env.insert_channel(1, &page, &token, &user_token).await, page.clone()));
        env.sim.kill_page_token(
            &page,
            "u-sweep",
            190,
            Some(463),
            "Error validating access token: Session has expired.",
        );
    }
    let pipeline = env.pipeline();
    let runs = channels.iter().map(|(ch, _)| {
        let pipeline = pipeline.clone();
        let job = RefreshJob::new(*ch, Reason::SendFailure);
        async move { pipeline.run_job(&job).await.expect("stores") }
    });
    let outcomes = futures::future::join_all(runs).await;
    assert!(outcomes.iter().all(|o| *o == Outcome::Refreshed), "{outcomes:?}");
    assert_eq!(env.sim.count_where(|r| r.path == "/me/accounts"), 1, "one sweep for ten pages");
    // The new token of one page dies within the shared answer's lifetime: the shared answer
    // still names it, so the job sweeps again itself, finds a live one, and counts nothing.
    let (ch, page) = &channels[3];
    env.sim.kill_page_token(page, "u-sweep", 190, Some(463), "Error validating access token: Session has expired.");
    let outcome = pipeline.run_job(&RefreshJob::new(*ch, Reason::SendFailure)).await.expect("stores");
    assert_eq!(outcome, Outcome::Refreshed);
    assert_eq!(env.sim.count_where(|r| r.path == "/me/accounts"), 2, "a sweep of its own");
    assert_eq!(env.flags(*ch).await, Default::default(), "nothing counted");
}
