//! Webhook subscriptions: after a token write and once a day, a page that lost this app's
//! subscription gets it back with Chatwoot's field list; one that has it is left alone; failures
//! are retried (from Postgres, by whichever worker) and never touch the token write.

use std::time::Duration;

use redis::AsyncCommands;
use reqwest::Client;
use serde_json::Value;
use shared::{
    graph::CHATWOOT_SUBSCRIBED_FIELDS,
    job::{BatchJob, Reason, RefreshJob},
    pipeline::Outcome,
    secret::Secret,
    store,
};
use simulator::LoggedRequest;
use tests::{TestEnv, logs, wait::until};

const ADMIN: &str = "subscriptions-admin-token";

fn chatwoot_fields() -> Vec<String> {
    CHATWOOT_SUBSCRIBED_FIELDS.map(str::to_owned).to_vec()
}

fn is_read(page: &str) -> impl Fn(&LoggedRequest) -> bool + '_ {
    move |r| r.method == "GET" && r.path == format!("/{page}/subscribed_apps")
}

fn is_subscribe(page: &str) -> impl Fn(&LoggedRequest) -> bool + '_ {
    move |r| r.method == "POST" && r.path == format!("/{page}/subscribed_apps")
}

/// The channel's row in fb_page_subscriptions: (state, retry_attempts, retry due, resubscribed_at set).
async fn row(env: &TestEnv, ch: i64) -> Option<(String, i32, bool, bool)> {
    sqlx::query_as(
        "SELECT state, retry_attempts, retry_at IS NOT NULL, resubscribed_at IS NOT NULL
         FROM fb_page_subscriptions WHERE channel_id = $1",
    )
    .bind(i32::try_from(ch).expect("id"))
    .fetch_optional(&env.db)
    .await
    .expect("db")
}

/// `subscribe` events of the channel: (outcome, reason), oldest first.
async fn events(env: &TestEnv, ch: i64) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT outcome, reason FROM fb_token_events WHERE channel_id = $1 AND step = 'subscribe' ORDER BY id",
    )
    .bind(i32::try_from(ch).expect("id"))
    .fetch_all(&env.db)
    .await
    .expect("db")
}

/// A channel whose page token is dead and whose page lost this app's subscription.
async fn refreshable_unsubscribed(env: &TestEnv, page: &str) -> (i64, String) {
    let (ch, user, _) = env.healthy_channel(page).await;
    env.sim.kill_page_token(page, &user, 190, Some(460), "Error validating access token: password changed");
    env.sim.drop_subscription(page);
    env.sim.reset_log();
    (ch, user)
}

#[tokio::test]
async fn a_refreshed_page_that_lost_its_subscription_is_subscribed_again_with_chatwoots_fields() {
    let env = TestEnv::new().await;
    let (ch, user) = refreshable_unsubscribed(&env, "301001").await;
    let pipeline = env.pipeline();
    let job = RefreshJob::new(ch, Reason::Cron);
    let (captured, _guard) = logs::capture();
    assert_eq!(pipeline.process(&job).await.expect("stores"), Outcome::Refreshed);
    let text = captured.text();
    assert!(text.contains("Successfully refreshed Facebook token for page 301001"), "{text}");
    assert!(text.contains("Re-subscribed Facebook page 301001 to the app's webhooks"), "{text}");

    let new_token = env.stored_page_token(ch).await;
    assert_eq!(Some(new_token.clone()), env.sim.page_token("301001", &user));
    let log = env.sim.requests();
    let read = log.iter().find(|r| is_read("301001")(r)).expect("subscribed_apps read");
    let subscribe = log.iter().find(|r| is_subscribe("301001")(r)).expect("subscribe call");
    assert_eq!(env.sim.count_where(is_subscribe("301001")), 1);
    for call in [read, subscribe] {
        assert_eq!(call.access_token.as_deref(), Some(new_token.as_str()), "with the new token");
        assert_eq!(call.proof_valid, Some(true));
    }
    assert_eq!(
        subscribe.query.get("subscribed_fields").map(String::as_str),
        Some(
            "feed,messages,message_deliveries,message_echoes,message_reads,standby,messaging_handovers,messaging_postbacks"
        )
    );
    assert!(read.at < subscribe.at);
    assert_eq!(env.sim.app_subscription("301001"), Some(chatwoot_fields()));

    assert_eq!(row(&env, ch).await, Some(("resubscribed".into(), 0, false, true)));
    assert_eq!(events(&env, ch).await, vec![("resubscribed".to_owned(), "cron".to_owned())]);
    let metrics = shared::metrics::render(&pipeline.metrics);
    assert!(metrics.contains("fb_token_subscription_checks_total{outcome=\"resubscribed\"} 1"), "{metrics}");
    // Checked today with the new token: the daily gate is closed.
    let gate: Option<String> =
        env.redis.clone().get(shared::keys::RedisKeys::of(&env.config).subscription_checked(ch)).await.expect("gate");
    assert!(gate.is_some());
}

#[tokio::test]
async fn the_worker_and_a_batch_sweep_resubscribe_what_they_refreshed() {
    let env = TestEnv::new().await;
    let (single, _) = refreshable_unsubscribed(&env, "313001").await;
    let state = env.worker_state().await;
    let report =
        shared::worker::handler::handle_job(&state, &RefreshJob::new(single, Reason::Cron)).await.expect("job runs");
    assert_eq!(report.outcome, "refreshed");
    assert_eq!(env.sim.count_where(is_subscribe("313001")), 1);
    assert_eq!(env.sim.count_where(is_read("313001")), 1, "and the daily check saw it was just done");

    // Two pages of one user refreshed by a batch's sweep: their reads go in one Graph batch.
    let user_token = env.sim.add_user("u313");
    let mut ids = Vec::new();
    for page in ["313101", "313102"] {
        env.sim.add_page(page, "p");
        let token = env.sim.grant("u313", page);
        ids.push(env.insert_channel(1, page, &token, &user_token).await);
        env.sim.kill_page_token(page, "u313", 190, Some(460), "password changed");
        env.sim.drop_subscription(page);
    }
    env.sim.reset_log();
    shared::worker::batch::handle_batch(&state, &BatchJob::new(ids.clone(), Reason::Cron)).await.expect("batch runs");
    assert_eq!(env.status_count("refreshed").await, 3);
    let reads = env.sim.count_where(|r| r.batch_item && r.method == "GET" && r.path.ends_with("/subscribed_apps"));
    assert_eq!(reads, 2, "one batch read for both");
    for (page, ch) in ["313101", "313102"].into_iter().zip(ids) {
        assert_eq!(env.sim.app_subscription(page), Some(chatwoot_fields()));
        let read =
            env.sim.requests().into_iter().find(|r| r.batch_item && r.path == format!("/{page}/subscribed_apps"));
        assert_eq!(read.and_then(|r| r.access_token), Some(env.stored_page_token(ch).await), "with its new token");
    }
}

#[tokio::test]
async fn an_already_subscribed_page_is_left_alone() {
    let env = TestEnv::new().await;
    let (ch, user, _) = env.healthy_channel("302001").await;
    env.sim.kill_page_token("302001", &user, 190, Some(463), "expired");
    let other_app = env.sim.subscriptions("302001");
    env.sim.reset_log();
    assert_eq!(env.pipeline().process(&RefreshJob::new(ch, Reason::Cron)).await.expect("stores"), Outcome::Refreshed);
    assert_eq!(env.sim.count_where(is_read("302001")), 1);
    assert_eq!(env.sim.count_where(|r| r.method == "POST" && r.path.ends_with("/subscribed_apps")), 0, "no POST");
    assert_eq!(env.sim.subscriptions("302001"), other_app);
    assert_eq!(row(&env, ch).await, Some(("subscribed".into(), 0, false, false)));
    assert!(events(&env, ch).await.is_empty(), "nothing for an operator to see");
}

#[tokio::test]
async fn an_app_subscribed_without_messages_is_subscribed_again() {
    let env = TestEnv::new().await;
    let (ch, user, _) = env.healthy_channel("303001").await;
    env.sim.kill_page_token("303001", &user, 190, Some(463), "expired");
    let app = env.sim.options().app_id.clone();
    env.sim.set_subscription("303001", &app, &["feed", "message_reads"]);
    env.sim.set_subscription("303001", "777", &CHATWOOT_SUBSCRIBED_FIELDS);
    assert_eq!(env.pipeline().process(&RefreshJob::new(ch, Reason::Cron)).await.expect("stores"), Outcome::Refreshed);
    assert_eq!(env.sim.count_where(is_subscribe("303001")), 1, "another app's messages are not ours");
    assert_eq!(env.sim.app_subscription("303001"), Some(chatwoot_fields()));
}

#[tokio::test]
async fn a_failing_subscription_is_retried_and_never_undoes_the_token_write() {
    let env = TestEnv::new().await;
    let (ch, user) = refreshable_unsubscribed(&env, "304001").await;
    let _: () = env.redis.clone().set(env.flag_keys().authorization_error_count(ch), 1).await.expect("set");
    // The first two subscribe calls fail as Graph's outages do.
    env.sim.fail_subscribe("304001", 2, "Service temporarily unavailable", Some(2));

    let (captured, guard) = logs::capture();
    let outcome = env.pipeline().process(&RefreshJob::new(ch, Reason::SendFailure)).await.expect("stores");
    drop(guard);
    assert_eq!(outcome, Outcome::Refreshed, "the job's outcome is the token's");
    let new_token = env.stored_page_token(ch).await;
    let text = captured.text();
    assert!(
        text.contains("Webhook re-subscription failed for page 304001: Service temporarily unavailable; will retry"),
        "{text}"
    );
    assert!(!text.contains(&new_token), "no token in the logs");
    assert_eq!(Some(new_token.clone()), env.sim.page_token("304001", &user));
    assert!(env.sim.is_token_valid_for_page("304001", &new_token));
    assert_eq!(env.flags(ch).await, Default::default(), "flags cleared as before");
    let state = store::load_state(&env.db, ch).await.expect("db").expect("row");
    assert_eq!((state.status.as_str(), state.token_valid), ("refreshed", Some(true)));
    assert_eq!(row(&env, ch).await, Some(("missing".into(), 1, true, false)), "recorded, a retry due");
    assert_eq!(env.sim.app_subscription("304001"), None);

    // A worker (another process, as far as the row knows) picks the retry up from Postgres.
    let worker = env.spawn_worker();
    until(Duration::from_secs(20), "re-subscribed by a retry", || async {
        row(&env, ch).await.is_some_and(|r| r.0 == "resubscribed")
    })
    .await;
    worker.stop().await.expect("worker stops");
    assert_eq!(env.sim.count_where(is_subscribe("304001")), 3, "two failures, then the one that worked");
    assert_eq!(env.sim.app_subscription("304001"), Some(chatwoot_fields()));
    assert_eq!(row(&env, ch).await, Some(("resubscribed".into(), 0, false, true)));
    let outcomes: Vec<String> = events(&env, ch).await.into_iter().map(|(o, _)| o).collect();
    assert_eq!(outcomes, ["transient", "transient", "resubscribed"]);
    // Still the token this job wrote, still refreshed.
    assert_eq!(env.stored_page_token(ch).await, new_token);
    let state = store::load_state(&env.db, ch).await.expect("db").expect("row");
    assert_eq!(state.status, "refreshed");
}

#[tokio::test]
async fn retries_stop_after_the_last_attempt_and_leave_it_to_the_daily_check() {
    let env = TestEnv::with(|c| c.retry.max_attempts = 2).await;
    let (ch, _) = refreshable_unsubscribed(&env, "305001").await;
    env.sim.fail_subscribe(
        "305001",
        200,
        "(#200) Requires pages_manage_metadata permission to manage the object",
        None,
    );
    let pipeline = env.pipeline();
    assert_eq!(pipeline.process(&RefreshJob::new(ch, Reason::Cron)).await.expect("stores"), Outcome::Refreshed);
    assert_eq!(row(&env, ch).await, Some(("missing".into(), 1, true, false)));
    until(Duration::from_secs(10), "the last attempt", || async {
        pipeline.retry_due_subscriptions(50).await.expect("stores");
        row(&env, ch).await.is_some_and(|r| !r.2)
    })
    .await;
    assert_eq!(row(&env, ch).await, Some(("missing".into(), 2, false, false)), "state and attempts kept, none due");
    assert_eq!(env.sim.count_where(is_subscribe("305001")), 2);
    let status = status_of(&env, ch).await;
    assert_eq!(status.subscription.state, "missing");
    let error = status.subscription.last_error.expect("the error is kept");
    assert_eq!((error.code, error.kind.as_deref()), (Some(200), Some("permission")));
}

#[tokio::test]
async fn a_rate_limited_subscription_pauses_the_page_and_uses_no_attempt() {
    let env = TestEnv::new().await;
    let (ch, _) = refreshable_unsubscribed(&env, "312001").await;
    env.sim.fail_subscribe("312001", 32, "Page request limit reached", Some(1));
    assert_eq!(env.pipeline().process(&RefreshJob::new(ch, Reason::Cron)).await.expect("stores"), Outcome::Refreshed);
    assert_eq!(row(&env, ch).await, Some(("missing".into(), 0, true, false)), "no attempt used");
    let due: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT retry_at FROM fb_page_subscriptions WHERE channel_id = $1")
            .bind(ch as i32)
            .fetch_one(&env.db)
            .await
            .expect("db");
    let wait = (due - chrono::Utc::now()).num_seconds();
    assert!((50..=60).contains(&wait), "after the limit's 60 s: {wait}");
    let pause = shared::keys::RedisKeys::of(&env.config).pause_page("312001");
    let ttl: i64 = env.redis.clone().pttl(pause).await.expect("pttl");
    assert!(ttl > 50_000, "every worker keeps away from the page: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_never_retry_one_page_twice() {
    let env = TestEnv::new().await;
    let (ch, _) = refreshable_unsubscribed(&env, "306001").await;
    env.sim.fail_subscribe("306001", 2, "Service temporarily unavailable", Some(1));
    assert_eq!(env.pipeline().process(&RefreshJob::new(ch, Reason::Cron)).await.expect("stores"), Outcome::Refreshed);
    until(Duration::from_secs(10), "the retry is due", || async {
        sqlx::query_scalar::<_, bool>("SELECT retry_at <= now() FROM fb_page_subscriptions WHERE channel_id = $1")
            .bind(ch as i32)
            .fetch_one(&env.db)
            .await
            .expect("db")
    })
    .await;
    let (a, b) = (env.pipeline(), env.pipeline());
    let (ra, rb) = tokio::join!(a.retry_due_subscriptions(50), b.retry_due_subscriptions(50));
    assert_eq!(ra.expect("stores") + rb.expect("stores"), 1, "one of them claimed it");
    assert_eq!(env.sim.count_where(is_subscribe("306001")), 2, "the failed one, and one retry");
    assert_eq!(row(&env, ch).await.map(|r| r.0), Some("resubscribed".into()));
}

#[tokio::test]
async fn the_daily_check_resubscribes_a_healthy_page_once_within_a_day() {
    let env = TestEnv::new().await;
    let (ch, _, _) = env.healthy_channel("307001").await;
    env.sim.drop_subscription("307001");
    let state = env.worker_state().await;
    let report =
        shared::worker::handler::handle_job(&state, &RefreshJob::new(ch, Reason::Cron)).await.expect("job runs");
    assert_eq!(report.outcome, "healthy");
    assert_eq!(env.sim.count_where(is_read("307001")), 1);
    assert_eq!(env.sim.count_where(is_subscribe("307001")), 1);
    assert_eq!(env.sim.app_subscription("307001"), Some(chatwoot_fields()));
    assert_eq!(row(&env, ch).await, Some(("resubscribed".into(), 0, false, true)));
    assert_eq!(events(&env, ch).await, vec![("resubscribed".to_owned(), "cron".to_owned())]);
    let ttl: i64 =
        env.redis.clone().ttl(shared::keys::RedisKeys::of(&env.config).subscription_checked(ch)).await.expect("ttl");
    assert!((86_000..=86_400).contains(&ttl), "gated for a day: {ttl}");

    // Lost again within the day: the next healthy job makes no subscription call.
    env.sim.drop_subscription("307001");
    let report =
        shared::worker::handler::handle_job(&state, &RefreshJob::new(ch, Reason::Cron)).await.expect("job runs");
    assert_eq!(report.outcome, "healthy");
    assert_eq!(env.sim.count_where(|r| r.path.ends_with("/subscribed_apps")), 2, "no call within 24 h");
}

#[tokio::test]
async fn the_daily_check_of_a_batch_reads_every_page_in_one_graph_batch() {
    let env = TestEnv::new().await;
    let ids = env.seed_healthy(5, 308000).await;
    env.sim.drop_subscription("308003");
    env.sim.reset_log();
    let state = env.worker_state().await;
    let batch = BatchJob::new(ids.clone(), Reason::Cron);
    shared::worker::batch::handle_batch(&state, &batch).await.expect("batch runs");
    assert_eq!(env.sim.count_where(|r| r.path == "/" && !r.batch_item), 2, "the validations, then the reads");
    let reads = env.sim.count_where(|r| r.batch_item && r.path.ends_with("/subscribed_apps") && r.method == "GET");
    assert_eq!(reads, 5);
    assert_eq!(env.sim.count_where(|r| !r.batch_item && r.method == "GET" && r.path.ends_with("/subscribed_apps")), 0);
    assert_eq!(env.sim.count_where(|r| r.method == "POST" && r.path.ends_with("/subscribed_apps")), 1);
    assert_eq!(env.sim.app_subscription("308003"), Some(chatwoot_fields()));
    let states: Vec<String> =
        sqlx::query_scalar("SELECT state FROM fb_page_subscriptions WHERE channel_id = ANY($1) ORDER BY channel_id")
            .bind(ids.iter().map(|&i| i as i32).collect::<Vec<_>>())
            .fetch_all(&env.db)
            .await
            .expect("db");
    assert_eq!(states, ["subscribed", "subscribed", "subscribed", "resubscribed", "subscribed"]);

    // The next cycle the same day: one validation batch and nothing else.
    env.sim.reset_log();
    shared::worker::batch::handle_batch(&state, &BatchJob::new(ids, Reason::Cron)).await.expect("batch runs");
    assert_eq!(env.sim.request_count(), 1);
    assert_eq!(env.sim.count_where(|r| r.path.ends_with("/subscribed_apps")), 0);
}

#[tokio::test]
async fn a_proactive_exchange_checks_the_renewed_pages() {
    let env = TestEnv::new().await;
    let (ch, _, user_token) = env.healthy_channel("309001").await;
    let now = chrono::Utc::now().timestamp();
    env.sim.set_user_token_expiry(&user_token, now + 5 * 86_400, now + 80 * 86_400);
    env.sim.drop_subscription("309001");
    let state = env.worker_state().await;
    let report =
        shared::worker::handler::handle_job(&state, &RefreshJob::new(ch, Reason::Cron)).await.expect("job runs");
    assert_eq!(report.outcome, "healthy");
    assert_ne!(env.stored_user_token(ch).await, user_token, "exchanged");
    let page_token = env.stored_page_token(ch).await;
    let subscribe = env.sim.requests().into_iter().find(|r| is_subscribe("309001")(r)).expect("subscribed");
    assert_eq!(subscribe.access_token.as_deref(), Some(page_token.as_str()));
    assert_eq!(env.sim.count_where(is_read("309001")), 1, "the daily check saw it was just checked");
    assert_eq!(events(&env, ch).await, vec![("resubscribed".to_owned(), "proactive".to_owned())]);
}

#[tokio::test]
async fn without_fb_app_id_nothing_is_called_and_the_state_says_why() {
    let env = TestEnv::with(|c| c.fb_app_id = None).await;
    let (ch, _) = refreshable_unsubscribed(&env, "310001").await;
    assert_eq!(env.pipeline().process(&RefreshJob::new(ch, Reason::Cron)).await.expect("stores"), Outcome::Refreshed);
    assert_eq!(env.sim.count_where(|r| r.path.ends_with("/subscribed_apps")), 0);
    assert_eq!(row(&env, ch).await, Some(("unknown".into(), 0, false, false)));
    let status = status_of(&env, ch).await;
    let error = status.subscription.last_error.expect("why");
    assert!(error.message.contains("FB_APP_ID"), "{}", error.message);
    assert_eq!(events(&env, ch).await, vec![("no_app_id".to_owned(), "cron".to_owned())]);
}

async fn status_of(env: &TestEnv, ch: i64) -> shared::status::InboxStatus {
    let inbox = env.inbox_of(ch).await;
    shared::status::inbox_status(&env.db, &mut env.redis.clone(), &env.flag_keys(), None, inbox)
        .await
        .expect("stores")
        .expect("inbox")
}

#[tokio::test]
async fn the_status_body_and_the_dashboard_show_the_subscription() {
    let env = TestEnv::with(|c| c.admin_api_token = Some(Secret::new(ADMIN))).await;
    let (fixed, _) = refreshable_unsubscribed(&env, "311001").await;
    let (_, user_b, _) = env.healthy_channel("311002").await;
    let never = env.healthy_channel("311003").await.0;
    let pipeline = env.pipeline();
    assert_eq!(pipeline.process(&RefreshJob::new(fixed, Reason::Cron)).await.expect("stores"), Outcome::Refreshed);
    // A page whose subscribe keeps failing, after its token was refreshed.
    let b = sqlx::query_scalar::<_, i32>("SELECT id FROM channel_facebook_pages WHERE page_id = '311002'")
        .fetch_one(&env.db)
        .await
        .expect("db");
    env.sim.kill_page_token("311002", &user_b, 190, Some(460), "password changed");
    env.sim.drop_subscription("311002");
    env.sim.fail_subscribe(
        "311002",
        200,
        "(#200) Requires pages_manage_metadata permission to manage the object",
        None,
    );
    assert_eq!(
        pipeline.process(&RefreshJob::new(i64::from(b), Reason::Cron)).await.expect("stores"),
        Outcome::Refreshed
    );

    let server = env.serve_api().await;
    let http = Client::new();
    let status = |ch: i64| {
        let (http, base) = (http.clone(), server.base.clone());
        let env = &env;
        async move {
            let inbox = env.inbox_of(ch).await;
            let url = format!("{base}/api/v1/accounts/1/callbacks/facebook_token_status/{inbox}");
            let resp = http.get(url).header("api_access_token", ADMIN).send().await.expect("status");
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.expect("json")
        }
    };
    let body = status(fixed).await;
    assert_eq!(body["status"], "refreshed", "the contract's fields are as they were");
    let sub = &body["subscription"];
    assert_eq!(sub["state"], "resubscribed", "{body}");
    for at in ["checked_at", "resubscribed_at"] {
        assert!(sub[at].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{at}: {sub}");
    }
    assert_eq!((&sub["last_error"], &sub["next_retry_at"]), (&Value::Null, &Value::Null));

    let body = status(i64::from(b)).await;
    let sub = &body["subscription"];
    assert_eq!((sub["state"].as_str(), body["status"].as_str()), (Some("missing"), Some("refreshed")), "{body}");
    assert_eq!(sub["last_error"]["code"], 200);
    assert!(sub["last_error"]["message"].as_str().is_some_and(|m| m.contains("pages_manage_metadata")), "{sub}");
    assert!(sub["next_retry_at"].is_string());
    assert!(!body.to_string().contains(&env.stored_page_token(i64::from(b)).await), "no token in the body");

    let body = status(never).await;
    assert_eq!(body["subscription"]["state"], "unknown");
    assert_eq!(body["subscription"]["checked_at"], Value::Null);

    let (code, doc) = {
        let resp = http.get(format!("{}/api/openapi.json", server.base)).send().await.expect("openapi");
        (resp.status(), resp.json::<Value>().await.expect("json"))
    };
    assert_eq!(code, 200);
    assert_eq!(
        doc.pointer("/components/schemas/Status/properties/subscription/$ref"),
        Some(&Value::from("#/components/schemas/Subscription"))
    );
    assert!(doc.pointer("/components/schemas/Subscription/properties/state/enum").is_some());

    // The dashboard says it per inbox.
    let dash = crate::dashboard::Dash::new(&server.base);
    let cookie = dash.session(ADMIN).await;
    let (_, page) = dash.get("/", Some(&cookie), Some("en")).await;
    let fixed_block = crate::dashboard::block(&page, env.inbox_of(fixed).await).expect("inbox block");
    assert!(fixed_block.contains("data-subscription=\"resubscribed\""), "{fixed_block}");
    let failing_block = crate::dashboard::block(&page, env.inbox_of(i64::from(b)).await).expect("inbox block");
    assert!(failing_block.contains("data-subscription=\"missing\""), "{failing_block}");
    assert!(failing_block.contains("pages_manage_metadata"), "{failing_block}");
    let never_block = crate::dashboard::block(&page, env.inbox_of(never).await).expect("inbox block");
    assert!(!never_block.contains("data-subscription"), "{never_block}");
    server.shutdown().await.expect("clean stop");
}
