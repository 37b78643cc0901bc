//! Chatwoot's own credentials on Chatwoot's database: its users' access tokens on the API and the
//! dashboard (administrator acts, agent looks), and the Facebook app's id and secret from its
//! `installation_configs` in both stored forms, proven by the `appsecret_proof` Graph receives.
//! Rows are inserted as Chatwoot's Rails writes them.

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use shared::{config::Config, secret::Secret, store::installation};
use sqlx::PgPool;
use tests::TestEnv;

use crate::dashboard::{Dash, PASSWORD_CHANGED, block, flagged_channels, make_refreshable};

const ADMIN: &str = "credentials-admin-token-for-tests";
const AGENT: i32 = 0;
const ADMINISTRATOR: i32 = 1;

/// `accounts` as `Account.create!(name:)` leaves it.
async fn chatwoot_account(db: &PgPool, name: &str) -> i32 {
    sqlx::query_scalar(
        "INSERT INTO accounts (name, created_at, updated_at, locale, feature_flags, limits, custom_attributes, status, internal_attributes, settings)
         VALUES ($1, timezone('utc', now()), timezone('utc', now()), 0, 0, '{}'::jsonb, '{}'::jsonb, 0, '{}'::jsonb, '{}'::jsonb)
         RETURNING id",
    )
    .bind(name)
    .fetch_one(db)
    .await
    .expect("account")
}

/// A confirmed e-mail user, as Devise writes one.
async fn chatwoot_user(db: &PgPool, name: &str) -> i64 {
    let email = format!("{}@example.com", name.to_lowercase().replace(' ', "."));
    let id: i32 = sqlx::query_scalar(
        "INSERT INTO users (provider, uid, encrypted_password, name, email, confirmed_at, pubsub_token, availability,
                            ui_settings, custom_attributes, created_at, updated_at)
         VALUES ('email', $1, '$2a$11$abcdefghijklmnopqrstuu3ZyGnO4OZxBDwF8yqcMMBmuEAhj0mEu', $2, $1,
                 timezone('utc', now()), $3, 0, '{}'::jsonb, '{}'::jsonb, timezone('utc', now()), timezone('utc', now()))
         RETURNING id",
    )
    .bind(&email)
    .bind(name)
    .bind(base58(24))
    .fetch_one(db)
    .await
    .expect("user");
    i64::from(id)
}

async fn membership(db: &PgPool, account: i32, user: i64, role: i32) {
    sqlx::query(
        "INSERT INTO account_users (account_id, user_id, role, created_at, updated_at, availability, auto_offline)
         VALUES ($1, $2, $3, timezone('utc', now()), timezone('utc', now()), 0, true)",
    )
    .bind(i64::from(account))
    .bind(user)
    .bind(role)
    .execute(db)
    .await
    .expect("account user");
}

/// An access token as `has_secure_token` makes it (24 base58 characters, stored as it is).
async fn access_token(db: &PgPool, owner_type: &str, owner_id: i64) -> String {
    let token = base58(24);
    sqlx::query(
        "INSERT INTO access_tokens (owner_type, owner_id, token, created_at, updated_at)
         VALUES ($1, $2, $3, timezone('utc', now()), timezone('utc', now()))",
    )
    .bind(owner_type)
    .bind(owner_id)
    .bind(&token)
    .execute(db)
    .await
    .expect("access token");
    token
}

fn base58(n: usize) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
    (0..n).map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())])).collect()
}

/// An `installation_configs` row with `serialized_value` as Chatwoot stored it.
async fn installation_config(db: &PgPool, name: &str, serialized_value: Value) {
    sqlx::query(
        "INSERT INTO installation_configs (name, serialized_value, locked, created_at, updated_at)
         VALUES ($1, $2, true, timezone('utc', now()), timezone('utc', now()))",
    )
    .bind(name)
    .bind(serialized_value)
    .execute(db)
    .await
    .expect("installation config");
}

/// The JSON string older Chatwoot versions stored: Psych's dump of a HashWithIndifferentAccess.
fn legacy_yaml(scalar: &str) -> Value {
    json!(format!("--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess\nvalue: {scalar}\n"))
}

struct Api {
    http: Client,
    base: String,
}

impl Api {
    async fn call(&self, method: Method, path: &str, token: &str, body: Option<&Value>) -> (StatusCode, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base)).header("api_access_token", token);
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

fn status_path(account: i32, inbox: i64) -> String {
    format!("/api/v1/accounts/{account}/callbacks/facebook_token_status/{inbox}")
}

fn refresh_path(account: i32, inbox: i64) -> String {
    format!("/api/v1/accounts/{account}/callbacks/refresh_facebook_token/{inbox}?wait=30")
}

fn report_path(account: i32, inbox: i64) -> String {
    format!("/api/v1/accounts/{account}/inboxes/{inbox}/facebook_auth_failures")
}

fn auth_failure() -> Value {
    json!({"error": {"message": "Error validating access token", "type": "OAuthException", "code": 190, "error_subcode": 460}})
}

fn assert_error_body(body: &Value, error: &str) {
    assert_eq!(body["error"], error, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
}

#[tokio::test]
async fn chatwoot_user_tokens_on_the_api() {
    let env = TestEnv::chatwoot(|c| c.admin_api_token = Some(Secret::new(ADMIN))).await;
    let acme = chatwoot_account(&env.db, "Acme").await;
    let other = chatwoot_account(&env.db, "Other").await;
    let (ada, bob, carol) = (
        chatwoot_user(&env.db, "Ada Admin").await,
        chatwoot_user(&env.db, "Bob Agent").await,
        chatwoot_user(&env.db, "Carol Other").await,
    );
    membership(&env.db, acme, ada, ADMINISTRATOR).await;
    membership(&env.db, acme, bob, AGENT).await;
    membership(&env.db, other, carol, ADMINISTRATOR).await;
    let admin_token = access_token(&env.db, "User", ada).await;
    let agent_token = access_token(&env.db, "User", bob).await;
    let bot_token = access_token(&env.db, "AgentBot", 1).await;
    let platform_token = access_token(&env.db, "PlatformApp", 1).await;

    assert_eq!(acme, 1, "healthy_channel puts its channel in account 1");
    let (ch, _, _) = env.healthy_channel("91001").await;
    let inbox = env.inbox_of(ch).await;
    let elsewhere = env.inbox_of(env.insert_channel(other, "91002", "t", "u").await).await;
    let server = env.serve_api().await;
    let worker = env.spawn_worker();
    let api = Api { http: Client::new(), base: server.base.clone() };

    // Administrator: looks and acts.
    let (code, body) = api.call(Method::GET, &status_path(acme, inbox), &admin_token, None).await;
    assert_eq!((code, &body["inbox_id"]), (StatusCode::OK, &json!(inbox)), "{body}");
    let (code, body) = api.call(Method::POST, &refresh_path(acme, inbox), &admin_token, None).await;
    match code {
        StatusCode::OK => assert_eq!(body["token_valid"], true, "{body}"),
        StatusCode::ACCEPTED => assert!(body["status_url"].is_string(), "{body}"),
        other => panic!("administrator refresh answered {other}: {body}"),
    }
    let (code, body) = api.call(Method::POST, &report_path(acme, inbox), &admin_token, Some(&auth_failure())).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");

    // Agent: looks, may not act.
    let (code, body) = api.call(Method::GET, &status_path(acme, inbox), &agent_token, None).await;
    assert_eq!((code, &body["channel_id"]), (StatusCode::OK, &json!(ch)), "{body}");
    let (code, body) = api.call(Method::POST, &refresh_path(acme, inbox), &agent_token, None).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_error_body(&body, "forbidden");
    let (code, body) = api.call(Method::POST, &report_path(acme, inbox), &agent_token, Some(&auth_failure())).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert_error_body(&body, "forbidden");

    // Another account's inbox does not exist for either of them.
    for token in [&admin_token, &agent_token] {
        for (method, path, report) in [
            (Method::GET, status_path(other, elsewhere), None),
            (Method::POST, refresh_path(other, elsewhere), None),
            (Method::POST, report_path(other, elsewhere), Some(auth_failure())),
        ] {
            let (code, body) = api.call(method, &path, token, report.as_ref()).await;
            assert_eq!(code, StatusCode::NOT_FOUND, "{path}: {body}");
            assert_error_body(&body, "not_found");
        }
    }
    // Carol administers the other account and sees its inbox, not Acme's.
    let carol_token = access_token(&env.db, "User", carol).await;
    assert_eq!(api.call(Method::GET, &status_path(other, elsewhere), &carol_token, None).await.0, StatusCode::OK);
    assert_eq!(api.call(Method::GET, &status_path(acme, inbox), &carol_token, None).await.0, StatusCode::NOT_FOUND);

    // Tokens of a bot or a platform app are no person's: refused outright.
    for token in [&bot_token, &platform_token] {
        let (code, body) = api.call(Method::GET, &status_path(acme, inbox), token, None).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{body}");
        assert_error_body(&body, "unauthorized");
    }
    // The queue stays the admin token's.
    assert_eq!(api.call(Method::GET, "/api/v1/queue", &admin_token, None).await.0, StatusCode::FORBIDDEN);

    // The role is read at each request: a promoted agent may act at once.
    sqlx::query("UPDATE account_users SET role = 1, updated_at = timezone('utc', now()) WHERE user_id = $1")
        .bind(bob)
        .execute(&env.db)
        .await
        .expect("promote");
    let (code, body) = api.call(Method::POST, &report_path(acme, inbox), &agent_token, Some(&auth_failure())).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");

    // The other token kinds work as before on Chatwoot's database.
    let (_, account_token) = shared::store::create_api_token(&env.db, i64::from(acme)).await.expect("token");
    assert_eq!(api.call(Method::GET, &status_path(acme, inbox), account_token.expose(), None).await.0, StatusCode::OK);
    assert_eq!(api.call(Method::GET, &status_path(other, elsewhere), ADMIN, None).await.0, StatusCode::OK);

    worker.stop().await.expect("worker stops");
    server.shutdown().await.expect("clean stop");
}

#[tokio::test]
async fn chatwoot_user_tokens_sign_in_to_the_dashboard() {
    let env = TestEnv::chatwoot(|_| {}).await;
    let acme = chatwoot_account(&env.db, "Acme").await;
    assert_eq!(acme, 1, "flagged_channels puts its channels in account 1");
    let (ada, bob) = (chatwoot_user(&env.db, "Ada Admin").await, chatwoot_user(&env.db, "Bob Agent").await);
    membership(&env.db, acme, ada, ADMINISTRATOR).await;
    membership(&env.db, acme, bob, AGENT).await;
    let admin_token = access_token(&env.db, "User", ada).await;
    let agent_token = access_token(&env.db, "User", bob).await;
    let bot_token = access_token(&env.db, "AgentBot", 1).await;

    let server = env.serve_api().await;
    let worker = env.spawn_worker();
    let flagged = flagged_channels(&env, &[("92001", 460, PASSWORD_CHANGED)]).await;
    let (ch, inbox, _) = flagged[0].clone();
    let dash = Dash::new(&server.base);
    let action = format!("action=\"/dashboard/inboxes/{inbox}/refresh\"");

    assert_eq!(dash.login(&bot_token, "").await.status(), StatusCode::UNAUTHORIZED, "a bot cannot sign in");

    // The agent sees the inbox and its banner, with the button disabled.
    let agent = dash.session(&agent_token).await;
    let (code, page) = dash.get("/", Some(&agent), None).await;
    assert_eq!(code, StatusCode::OK);
    assert!(page.contains(&format!("Chatwoot user {bob}")), "{page}");
    let row = block(&page, inbox).expect("the agent sees the inbox");
    assert!(row.contains("Reconnection required") && row.contains("disabled"), "{row}");
    assert!(!row.contains(&action), "{row}");
    assert!(!page.contains(&agent_token), "the token is not in the page");
    let resp = dash.refresh(inbox, Some(&agent), true).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let body: Value = resp.json().await.expect("json");
    assert_error_body(&body, "forbidden");
    assert!(env.flags(ch).await.reauthorization_required, "the agent's press changed nothing");

    // The administrator presses it and the inbox works again.
    make_refreshable(&env, ch, "92001").await;
    let admin = dash.session(&admin_token).await;
    let (_, page) = dash.get("/", Some(&admin), None).await;
    assert!(block(&page, inbox).expect("inbox").contains(&action), "{page}");
    let resp = dash.refresh(inbox, Some(&admin), true).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["result"], "refreshed", "{body}");
    assert!(!env.flags(ch).await.reauthorization_required);

    // Resetting a Chatwoot token (its profile's "reset access token") ends that session only.
    sqlx::query("UPDATE access_tokens SET token = $1, updated_at = timezone('utc', now()) WHERE owner_type = 'User' AND owner_id = $2")
        .bind(base58(24))
        .bind(bob)
        .execute(&env.db)
        .await
        .expect("reset token");
    let (_, page) = dash.get("/", Some(&agent), None).await;
    assert!(page.contains("name=\"api_access_token\""), "the agent's session ended");
    let (_, page) = dash.get("/", Some(&admin), None).await;
    assert!(block(&page, inbox).is_some(), "the administrator's session goes on");

    worker.stop().await.expect("worker stops");
    server.shutdown().await.expect("clean stop");
}

/// A Chatwoot database whose app credentials live only in `installation_configs`.
async fn env_without_app_credentials() -> TestEnv {
    TestEnv::chatwoot(|c| {
        c.fb_app_id = None;
        c.fb_app_secret = None;
        c.admin_api_token = Some(Secret::new(ADMIN));
    })
    .await
}

fn sim_app(env: &TestEnv) -> (String, String) {
    let o = env.sim.options();
    (o.app_id.clone(), o.app_secret.clone().expect("the simulator checks proofs"))
}

/// Every call the simulator got carried a valid proof, and there was at least one.
fn assert_all_proofs_valid(env: &TestEnv) {
    let calls = env.sim.requests();
    assert!(!calls.is_empty(), "no Graph call was made");
    assert!(calls.iter().all(|r| r.proof_valid == Some(true)), "{calls:?}");
}

#[tokio::test]
async fn the_json_form_gives_serve_and_check_all_the_app() {
    let env = env_without_app_credentials().await;
    let (app_id, secret) = sim_app(&env);
    installation_config(&env.db, "FB_APP_ID", json!({"value": app_id})).await;
    installation_config(&env.db, "FB_APP_SECRET", json!({"value": secret})).await;
    let (ch, _, _) = env.healthy_channel("93001").await;
    let inbox = env.inbox_of(ch).await;

    // `producer serve` validates in its own process with `?check=true`.
    let server = env.serve_api().await;
    let api = Api { http: Client::new(), base: server.base.clone() };
    let (code, body) = api.call(Method::GET, &format!("{}?check=true", status_path(1, inbox)), ADMIN, None).await;
    assert_eq!((code, &body["token_valid"]), (StatusCode::OK, &json!(true)), "{body}");
    assert_all_proofs_valid(&env);
    server.shutdown().await.expect("clean stop");

    env.sim.reset_log();
    let (code, out) = producer::check_all::check_all(&env.config, true).await;
    assert_eq!(code, producer::check_all::EXIT_OK, "{out}");
    assert_all_proofs_valid(&env);
    assert!(!out.contains(&secret));
}

#[tokio::test]
async fn the_legacy_yaml_form_gives_the_worker_the_app() {
    let env = env_without_app_credentials().await;
    let (app_id, secret) = sim_app(&env);
    // Psych quotes a string of digits (it would read back as an Integer) and leaves a plain one be.
    installation_config(&env.db, "FB_APP_ID", legacy_yaml(&format!("'{app_id}'"))).await;
    installation_config(&env.db, "FB_APP_SECRET", legacy_yaml(&secret)).await;
    let (ch, user, _) = env.healthy_channel("94001").await;
    env.sim.kill_page_token("94001", &user, 190, Some(463), "Error validating access token: Session has expired");
    let inbox = env.inbox_of(ch).await;

    let server = env.serve_api().await;
    let worker = env.spawn_worker();
    let api = Api { http: Client::new(), base: server.base.clone() };
    let (code, body) = api.call(Method::POST, &refresh_path(1, inbox), ADMIN, None).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!((&body["refreshed"], &body["token_valid"]), (&json!(true), &json!(true)), "{body}");
    assert!(env.sim.count_where(|r| r.path == "/me/accounts") > 0, "the worker refreshed through the user token");
    assert_all_proofs_valid(&env);
    worker.stop().await.expect("worker stops");
    server.shutdown().await.expect("clean stop");
}

#[tokio::test]
async fn the_environment_wins_over_installation_configs() {
    let env = TestEnv::chatwoot(|_| {}).await;
    installation_config(&env.db, "FB_APP_ID", json!({"value": "999999"})).await;
    installation_config(&env.db, "FB_APP_SECRET", legacy_yaml("not-the-app-secret")).await;
    env.healthy_channel("95001").await;

    let (code, out) = producer::check_all::check_all(&env.config, true).await;
    assert_eq!(code, producer::check_all::EXIT_OK, "{out}");
    assert_all_proofs_valid(&env);

    // Each variable on its own: the environment's id, the table's secret.
    let mut config = Config { fb_app_secret: None, ..env.config.clone() };
    let sources = installation::apply_app_credentials(&env.db, &mut config).await.expect("readable");
    assert_eq!(sources, [installation::Source::Environment, installation::Source::InstallationConfigs]);
    assert_eq!(config.fb_app_id, env.config.fb_app_id);
    assert_eq!(config.fb_app_secret.as_ref().map(Secret::expose), Some("not-the-app-secret"));
}

#[tokio::test]
async fn an_unreadable_row_is_a_clear_error_naming_it() {
    let env = env_without_app_credentials().await;
    installation_config(&env.db, "FB_APP_ID", json!({"value": "1234567890"})).await;
    installation_config(&env.db, "FB_APP_SECRET", json!("hunter2-not-yaml")).await;

    let mut config = env.config.clone();
    let e = installation::apply_app_credentials(&env.db, &mut config).await.expect_err("refused").to_string();
    assert!(e.contains("installation_configs") && e.contains("FB_APP_SECRET"), "{e}");
    assert!(!e.contains("hunter2"), "the stored value is not echoed: {e}");

    let e = shared::worker::WorkerState::connect(std::sync::Arc::new(env.config.clone()), tests::env::fast_timings())
        .await
        .err()
        .expect("the worker does not start on it")
        .to_string();
    assert!(e.contains("FB_APP_SECRET") && !e.contains("hunter2"), "{e}");
    let (code, out) = producer::check_all::check_all(&env.config, true).await;
    assert_eq!(code, producer::check_all::EXIT_ERROR, "{out}");
    assert!(out.contains("FB_APP_SECRET") && !out.contains("hunter2"), "{out}");
}
