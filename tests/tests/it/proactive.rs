//! Proactive refresh: user-token expiry read with debug_token, exchanged inside the window, a
//! proactive job scheduled for when it enters it, and the data-access warning.

use chrono::Utc;
use shared::job::{Reason, RefreshJob};
use tests::TestEnv;

async fn run_job(state: &shared::worker::WorkerState, channel: i64, reason: Reason) -> String {
    let report = shared::worker::handler::handle_job(state, &RefreshJob::new(channel, reason)).await.expect("job runs");
    report.outcome.to_string()
}

#[tokio::test]
async fn a_user_token_expiring_within_the_window_is_exchanged_and_pages_renewed() {
    let env = TestEnv::new().await;
    let (ch, user, user_token) = env.healthy_channel("201001").await;
    let now = Utc::now().timestamp();
    env.sim.set_user_token_expiry(&user_token, now + 5 * 86_400, now + 80 * 86_400);
    let state = env.worker_state().await;
    assert_eq!(run_job(&state, ch, Reason::Cron).await, "healthy");
    let new_user_token = env.stored_user_token(ch).await;
    assert_ne!(new_user_token, user_token, "user token exchanged");
    assert_eq!(env.sim.count_where(|r| r.path == "/oauth/access_token"), 1);
    let page_token = env.stored_page_token(ch).await;
    assert_eq!(Some(page_token.clone()), env.sim.page_token("201001", &user));
    assert!(env.sim.is_token_valid_for_page("201001", &page_token));
    let expires: Option<chrono::DateTime<Utc>> =
        sqlx::query_scalar("SELECT expires_at FROM fb_token_states WHERE channel_id = $1")
            .bind(ch as i32)
            .fetch_one(&env.db)
            .await
            .expect("db");
    assert!(expires.is_some_and(|e| e > Utc::now() + chrono::Duration::days(50)), "new expiry stored: {expires:?}");
    // Checked once a day per user token: the next job does not call debug_token again.
    let debug_calls = env.sim.count_where(|r| r.path == "/debug_token");
    assert_eq!(run_job(&state, ch, Reason::Cron).await, "healthy");
    assert_eq!(env.sim.count_where(|r| r.path == "/debug_token"), debug_calls);
}

#[tokio::test]
async fn a_later_expiry_schedules_one_proactive_job() {
    let env = TestEnv::new().await;
    let (ch, _, user_token) = env.healthy_channel("202001").await;
    let now = Utc::now().timestamp();
    env.sim.set_user_token_expiry(&user_token, now + 30 * 86_400, now + 80 * 86_400);
    let state = env.worker_state().await;
    assert_eq!(run_job(&state, ch, Reason::Cron).await, "healthy");
    assert_eq!(env.stored_user_token(ch).await, user_token, "not exchanged outside the window");
    let q = shared::keys::RedisKeys::of(&env.config).queue();
    let mut conn = env.redis.clone();
    let scheduled: Vec<(String, f64)> =
        redis::AsyncCommands::zrange_withscores(&mut conn, format!("{q}:scheduled"), 0, -1).await.expect("zrange");
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    let due = scheduled[0].1 as i64;
    let expected = now + 20 * 86_400;
    assert!((due - expected).abs() < 120, "due {due}, expected about {expected}");
    // A forced proactive job checks now and does not schedule a second one.
    assert_eq!(run_job(&state, ch, Reason::Proactive).await, "healthy");
    let n: u64 = redis::AsyncCommands::zcard(&mut conn, format!("{q}:scheduled")).await.expect("zcard");
    assert_eq!(n, 1);
}

#[tokio::test]
async fn data_access_expiring_soon_shows_a_warning_in_the_api() {
    let env = TestEnv::with(|c| c.admin_api_token = Some(shared::secret::Secret::new("adm"))).await;
    let (ch, _, user_token) = env.healthy_channel("203001").await;
    let now = Utc::now().timestamp();
    env.sim.set_user_token_expiry(&user_token, 0, now + 3 * 86_400);
    let state = env.worker_state().await;
    assert_eq!(run_job(&state, ch, Reason::Cron).await, "healthy");
    let server = env.serve_api().await;
    let inbox = env.inbox_of(ch).await;
    let body: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/accounts/1/callbacks/facebook_token_status/{inbox}", server.base))
        .header("api_access_token", "adm")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["status"], "healthy", "{body}");
    assert_eq!(body["warning"], "data_access_expiring", "{body}");
    assert!(body["data_access_expires_at"].is_string(), "{body}");
    server.shutdown().await.expect("stop");
}
