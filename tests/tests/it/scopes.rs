//! L9: a send reported failing for a permission (10, 200-299) is not answered by a page token that
//! merely validates: the job asks `debug_token` whether the token holds `pages_messaging`.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use shared::{
    graph::{ErrorKind, GraphClient, GraphSettings},
    intake::{Decision, parse_report},
    job::{Capability, Reason, RefreshJob},
    pipeline::Outcome,
    queue::{self, JobReport, Waited},
    store,
};
use simulator::{Fault, FaultKind, LoggedRequest, Matcher};
use tests::{TestEnv, logs};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);

fn report(code: i64) -> shared::graph::GraphError {
    parse_report(&json!({"error": {"code": code, "type": "OAuthException", "message": format!("(#{code}) denied")}}))
        .expect("a Graph error")
}

/// Reports the send failure and returns the job it started.
async fn report_failure(env: &TestEnv, channel: i64, code: i64) -> Uuid {
    match env.intake().report(channel, &report(code), None).await.expect("intake") {
        Decision::Enqueued { job_id } => job_id,
        other => panic!("{other:?}"),
    }
}

async fn settled(env: &TestEnv, job_id: Uuid) -> JobReport {
    match queue::wait_for_report(&env.config, job_id, WAIT).await.expect("redis") {
        Waited::Settled(r) => r,
        other => panic!("job {job_id} did not settle: {other:?}"),
    }
}

/// `debug_token` calls about this input token (the proactive check asks about user tokens).
fn debug_calls_about(env: &TestEnv, tokens: &[&str]) -> usize {
    let about = |r: &LoggedRequest| {
        r.path == "/debug_token" && r.query.get("input_token").is_some_and(|t| tokens.contains(&t.as_str()))
    };
    env.sim.count_where(about)
}

fn needing_messaging(channel: i64) -> RefreshJob {
    RefreshJob::new(channel, Reason::SendFailure).needing(Capability::Messaging)
}

/// The person took `pages_messaging` away: the page still validates and the user token still hands
/// out its token, so the old code called it healthy and cleared the flags.
#[tokio::test]
async fn a_permission_report_for_a_page_without_pages_messaging_is_counted_then_flagged() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("47001").await;
    let token = env.stored_page_token(ch).await;
    env.sim.revoke_page_scope("47001", "pages_messaging");
    let worker = env.spawn_worker();

    let job_id = report_failure(&env, ch, 200).await;
    let first = settled(&env, job_id).await;
    assert_eq!(first.outcome, "confirmed_failure", "{first:?}");
    assert_eq!((first.token_valid, first.authorization_error_count), (Some(false), Some(1)));
    let error = first.error.expect("the cause");
    assert_eq!(error.kind, "permission");
    assert!(error.message.contains("messaging permission missing"), "{}", error.message);

    // Its re-check (the same needs, carried by the follow-up) reaches the threshold.
    let second = settled(&env, Uuid::new_v5(&job_id, b"follow-up")).await;
    assert_eq!((second.outcome.as_str(), second.authorization_error_count), ("reauthorization_required", Some(2)));
    worker.stop().await.expect("worker stops");

    let flags = env.flags(ch).await;
    assert_eq!((flags.reauthorization_required, flags.authorization_error_count), (true, 2));
    let state = store::load_state(&env.db, ch).await.expect("db").expect("row");
    assert_eq!(
        (state.status.as_str(), state.token_valid, state.consecutive_failures),
        ("reauthorization_required", Some(false), 2)
    );
    assert_eq!(state.last_error_kind.as_deref(), Some("permission"));
    assert!(state.last_error_message.is_some_and(|m| m.contains("pages_messaging")));
    assert_eq!(env.stored_page_token(ch).await, token, "the token handed back cannot send either; not written");
    assert_eq!(debug_calls_about(&env, &[&token]), 4, "stored and handed-out token, in each of the two jobs");
}

#[tokio::test]
async fn a_permission_report_for_a_page_that_can_message_ends_healthy_with_flags_cleared() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("47101").await;
    let token = env.stored_page_token(ch).await;
    let keys = env.flag_keys();
    let _: () = env.redis.clone().set(keys.authorization_error_count(ch), 1).await.expect("set");
    let _: () = env.redis.clone().set(keys.reauthorization_required(ch), "true").await.expect("set");
    let worker = env.spawn_worker();

    let job_id = report_failure(&env, ch, 200).await;
    let done = settled(&env, job_id).await;
    worker.stop().await.expect("worker stops");
    assert_eq!(done.outcome, "healthy", "{done:?}");
    assert_eq!(env.flags(ch).await, Default::default(), "success deletes both keys");
    let state = store::load_state(&env.db, ch).await.expect("db").expect("row");
    assert_eq!((state.status.as_str(), state.token_valid), ("healthy", Some(true)));
    assert_eq!(debug_calls_about(&env, &[&token]), 1, "its scopes were read once, with the app token");
    let app = env.sim.app_token().expect("app token");
    let calls = env.sim.requests();
    let call = calls.iter().find(|r| r.path == "/debug_token").expect("a debug_token call");
    assert_eq!(call.access_token.as_deref(), Some(app.as_str()));
}

/// Only permission-class reports pay for the scope check; the permission report beside it shows the
/// check is there to be skipped.
#[tokio::test]
async fn an_auth_report_does_not_ask_debug_token_for_scopes() {
    let env = TestEnv::new().await;
    let (auth_ch, auth_user, _) = env.healthy_channel("47201").await;
    let (perm_ch, _, _) = env.healthy_channel("47202").await;
    let old = env.stored_page_token(auth_ch).await;
    let perm_token = env.stored_page_token(perm_ch).await;
    env.sim.kill_page_token("47201", &auth_user, 190, Some(460), "password changed");
    let worker = env.spawn_worker();

    let auth_job = report_failure(&env, auth_ch, 190).await;
    let perm_job = report_failure(&env, perm_ch, 10).await;
    let (auth, perm) = (settled(&env, auth_job).await, settled(&env, perm_job).await);
    worker.stop().await.expect("worker stops");
    assert_eq!((auth.outcome.as_str(), perm.outcome.as_str()), ("refreshed", "healthy"));

    let new = env.stored_page_token(auth_ch).await;
    assert_ne!(new, old);
    assert_eq!(debug_calls_about(&env, &[&old, &new]), 0, "an auth report reads no scopes");
    assert_eq!(debug_calls_about(&env, &[&perm_token]), 1);
}

/// The user token hands out a new token (the old one died), but it lacks the permission too: it is
/// not written, and the failure counts once.
#[tokio::test]
async fn a_reissued_token_without_pages_messaging_is_not_written() {
    let env = TestEnv::new().await;
    let (ch, user, _) = env.healthy_channel("47301").await;
    let old = env.stored_page_token(ch).await;
    env.sim.revoke_page_scope("47301", "pages_messaging");
    env.sim.kill_page_token("47301", &user, 190, Some(460), "password changed");

    let job = needing_messaging(ch);
    let outcome = env.pipeline().process(&job).await.expect("stores");
    let Outcome::ConfirmedFailure { counted, error, .. } = outcome else { panic!("{outcome:?}") };
    assert_eq!((counted.count, counted.flagged, error.kind), (1, false, ErrorKind::Permission));
    assert_eq!(env.stored_page_token(ch).await, old);
    let reissued = env.sim.page_token("47301", &user).expect("minted by /me/accounts");
    assert_ne!(reissued, old);
    assert_eq!(debug_calls_about(&env, &[&reissued]), 1, "the new token was held to the same check");

    // Run again (a crash before its ack): still counted once.
    let again = env.pipeline().process(&job).await.expect("stores");
    assert!(matches!(again, Outcome::ConfirmedFailure { counted, .. } if !counted.newly_counted), "{again:?}");
    assert_eq!(env.flags(ch).await.authorization_error_count, 1);
}

#[tokio::test]
async fn a_debug_token_outage_is_never_counted() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("47401").await;
    env.sim.revoke_page_scope("47401", "pages_messaging");
    let _: () = env.redis.clone().set(env.flag_keys().authorization_error_count(ch), 1).await.expect("set");
    for fault in [FaultKind::ServerError, FaultKind::Html] {
        env.sim.inject(Fault::new(fault.clone(), Matcher::PathContains("/debug_token".into())));
        let outcome = env.pipeline().process(&needing_messaging(ch)).await.expect("stores");
        env.sim.clear_faults();
        let Outcome::Retry { error, .. } = &outcome else { panic!("{fault:?}: {outcome:?}") };
        assert_eq!(error.kind, ErrorKind::Transient, "{fault:?}");
        let flags = env.flags(ch).await;
        assert_eq!((flags.authorization_error_count, flags.reauthorization_required), (1, false), "{fault:?}");
        let state = store::load_state(&env.db, ch).await.expect("db").expect("row");
        assert_eq!(state.status, "retrying", "{fault:?}");
    }
}

/// Without FB_APP_ID there is no app token, so no `debug_token`: the check is skipped, and the log
/// says why.
#[tokio::test]
async fn without_the_app_token_the_scope_check_is_skipped_and_says_why() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("47501").await;
    env.sim.revoke_page_scope("47501", "pages_messaging");
    // The secret stays for the proofs the simulator requires; the app id alone is missing.
    let settings = GraphSettings { app_id: None, ..GraphSettings::from_config(&env.config) };
    let pipeline = shared::pipeline::Pipeline { graph: GraphClient::new(settings).expect("client"), ..env.pipeline() };
    let (captured, _guard) = logs::capture();
    assert_eq!(pipeline.process(&needing_messaging(ch)).await.expect("stores"), Outcome::Healthy);
    assert_eq!(env.sim.count_where(|r| r.path == "/debug_token"), 0);
    let text = captured.text();
    assert!(text.contains("debug_token needs the app token"), "{text}");
}
